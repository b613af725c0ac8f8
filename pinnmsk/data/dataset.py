"""A loaded dataset and what is computed from it, without files: the trial, dataset and window
types, leak-free splits (by trial, by subject, a new subject's calibration recordings) and
windows for the CNN. Checks of loaded arrays are :mod:`pinnmsk.data.checks`; reading a spec's
files is :mod:`pinnmsk.data.loading`.

Everything here runs once on the host (NumPy); the arrays it returns feed jitted code.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pinnmsk import msk
from pinnmsk.errors import DataError
from pinnmsk.data.spec import DataSpec
from pinnmsk.msk import MskModel


@dataclasses.dataclass
class Trial:
    """One trial at the label rate.

    Attributes:
      id: ``subject/name``.
      subject: subject index into ``Dataset.subjects``.
      time_s: (T,) label times [s].
      excitation: (T, M) normalised EMG envelope in [0, 1], one column per muscle.
      q_rad: (T, n) joint angles [rad].
      forces_n: (T, M) muscle forces [N], or ``None`` when the trial has no force file.
      valid: (T,) False where EMG or labels had NaN/Inf (only with ``drop_nonfinite``).
      raw_envelope: (T, C) envelope before normalisation [V] (per EMG channel, muscle order).
    """

    id: str
    subject: int
    time_s: np.ndarray
    excitation: np.ndarray
    q_rad: np.ndarray
    forces_n: np.ndarray | None
    valid: np.ndarray
    raw_envelope: np.ndarray


@dataclasses.dataclass
class Dataset:
    """A loaded dataset.

    Attributes:
      models: the subjects' musculoskeletal models stacked on a leading axis (S, ...): each
        subject's own muscle parameters and geometry where the spec gives them.
      normaliser_v, rest_v: (S, M) envelope at excitation 1 and at excitation 0 [V].
      normalisation: per subject and channel, where those values came from (for metrics.json).
      geometry_report: per subject, the fitted geometry's check against MomentArm tables.
      load_notes: what loading noticed but did not refuse (EMG outside the labels, clipping).
      held_geometry: {subject: the length polynomial over the recorded then the held
        coordinates, or None where the geometry holds none} (:mod:`pinnmsk.person`).
    """

    spec: DataSpec
    trials: list
    subjects: tuple
    normaliser_v: np.ndarray
    models: MskModel
    dropped_samples: int = 0
    rest_v: np.ndarray | None = None
    normalisation: dict = dataclasses.field(default_factory=dict)
    geometry_report: dict = dataclasses.field(default_factory=dict)
    load_notes: list = dataclasses.field(default_factory=list)
    held_geometry: dict = dataclasses.field(default_factory=dict)

    @property
    def rate_hz(self) -> float:
        return self.spec.labels.rate_hz

    @property
    def window(self) -> int:
        """Model window length in label samples."""
        return int(round(self.spec.windows.length_s * self.rate_hz))

    def model_of(self, s: int) -> MskModel:
        """Subject ``s``'s model (unstacked)."""
        return msk.select(self.models, s)

    def split(self) -> dict:
        """{'train': [...], 'validation': [...], 'test': [...]} lists of trials (no overlap)."""
        return split_trials(self.spec, self.trials, self.window)


@dataclasses.dataclass
class Windows:
    """Stacked training examples.

    Attributes:
      emg: (N, W, M) excitation windows ending at each label time (inclusive).
      q: (N, H, n) joint angles over the last H label samples (the window's end last).
      forces: (N, H, M) forces over the same samples (NaN where the trial has no labels).
      has_forces: (N,) whether forces are labelled.
      subject: (N,) subject index.
      trial: (N,) index into the trial list the windows came from.
      end_index: (N,) sample index of the window end within its trial.
    """

    emg: np.ndarray
    q: np.ndarray
    forces: np.ndarray
    has_forces: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    end_index: np.ndarray

    def __len__(self) -> int:
        return len(self.emg)


def _part(tr: Trial, lo: int, hi: int, suffix: str) -> Trial:
    """Samples [lo, hi) of a trial, as a trial of its own (id ``<id><suffix>``)."""
    cut = lambda a: None if a is None else a[lo:hi]
    return dataclasses.replace(tr, id=tr.id + suffix, time_s=tr.time_s[lo:hi],
                               excitation=cut(tr.excitation), q_rad=cut(tr.q_rad),
                               forces_n=cut(tr.forces_n), valid=cut(tr.valid),
                               raw_envelope=cut(tr.raw_envelope))


def split_trials(spec: DataSpec, trials, window: int = 0) -> dict:
    """Partition trials into train/validation/test by trial id or by subject (no overlap).

    With no validation trials named and ``split.validation_fraction`` f > 0, validation is the
    last f of every training trial (time-blocked, ``<id>@val``); its training part (``<id>``)
    ends ``window`` samples earlier, so no window of one part sees samples of the other.
    """
    key = (lambda t: t.id) if spec.split.by == "trial" else (lambda t: t.id.rsplit("/", 1)[0])
    test, val = set(spec.split.test), set(spec.split.validation)
    out = {"train": [], "validation": [], "test": []}
    ft = spec.split.test_fraction
    for t in trials:
        k = key(t)
        if ft > 0:  # leave the last segment of every trial out: test = its last ft
            n = len(t.time_s)
            cut = int(round(n * (1.0 - ft)))
            if not (n - cut > window and cut - window > window):
                raise DataError(f"{spec.path}: trial '{t.id}' ({n} label samples) is too short to "
                                f"hold out its last {ft:g} as test with {window}-sample windows; "
                                "lower split.test_fraction or windows.length_s")
            out["test"].append(_part(t, cut, n, "@test"))
            t = _part(t, 0, cut - window, "")
        out["test" if k in test else "validation" if k in val else "train"].append(t)
    f = spec.split.validation_fraction
    if not val and f > 0:
        train = []
        for t in out["train"]:
            n = len(t.time_s)
            cut = int(round(n * (1.0 - f)))
            if n - cut > window and cut - window > window:
                train.append(_part(t, 0, cut - window, ""))
                out["validation"].append(_part(t, cut, n, "@val"))
            else:
                train.append(t)
        out["train"] = train
    return out


def leave_subject_out(parts: dict, s: int) -> tuple[dict, dict]:
    """(fold, calibration) of a split ``parts`` (:func:`split_trials`) for new subject ``s``.

    fold: the other subjects' train and validation parts, and ``s``'s test part as test (the
    other subjects' test parts are not in it). calibration: ``s``'s train and validation parts
    ({"train", "validation"}), the recordings a lab would have of the person before the test;
    what a calibration may use. No trial is in both.
    """
    mine = lambda k: [t for t in parts[k] if t.subject == s]
    others = lambda k: [t for t in parts[k] if t.subject != s]
    fold = {"train": others("train"), "validation": others("validation"), "test": mine("test")}
    return fold, {"train": mine("train"), "validation": mine("validation")}


def first_seconds(calibration: dict, seconds: float, rate_hz: float, window: int,
                  validation_fraction: float = 0.2) -> dict:
    """The first ``seconds`` of a subject's calibration recordings (train then validation
    parts, trial by trial, in time order) as {"train", "validation"}: the last
    ``validation_fraction`` of them validates (time-blocked, ``window`` samples apart).
    ``seconds`` ≤ 0 or beyond what there is: ``calibration`` unchanged."""
    trials = calibration["train"] + calibration["validation"]
    total = sum(len(t.time_s) for t in trials) / rate_hz
    if seconds <= 0 or seconds >= total:
        return calibration
    n_keep = int(round(seconds * rate_hz))
    n_val = int(round(validation_fraction * n_keep))
    kept, left = [], n_keep
    for t in calibration["train"]:
        if left <= 0:
            break
        take = min(left, len(t.time_s))
        kept.append(_part(t, 0, take, "") if take < len(t.time_s) else t)
        left -= take
    out = {"train": [], "validation": []}
    val_left = n_val
    for t in reversed(kept):  # validation: the end of what was kept
        n = len(t.time_s)
        if val_left > window and n - val_left > 2 * window:
            out["validation"].insert(0, _part(t, n - val_left, n, "@val"))
            out["train"].insert(0, _part(t, 0, n - val_left - window, ""))
            val_left = 0
        else:
            out["train"].insert(0, t)
    if not out["train"] or not out["validation"]:
        raise DataError(f"{seconds:g} s of calibration recordings hold no train and validation "
                        f"parts of {window}-sample windows; calibrate from more seconds")
    return out


def make_windows(trials, window: int, history: int, stride: int = 1,
                 n_muscles: int | None = None) -> Windows:
    """Windows of ``window`` samples ending at every ``stride``-th label time of each trial.

    Only windows fully inside a trial and free of invalid samples are kept, so a window never
    mixes trials (and never mixes splits, when called per split).
    """
    if history > window:
        raise ValueError(f"history ({history}) must not exceed the window ({window})")
    emg_w, q_w, f_w, has_f, subj, tri, ends = [], [], [], [], [], [], []
    for k, tr in enumerate(trials):
        T = len(tr.time_s)
        end = np.arange(window - 1, T, stride)
        if len(end) == 0:
            continue
        bad = np.concatenate([[0], np.cumsum(~tr.valid)])
        ok = (bad[end + 1] - bad[end + 1 - window]) == 0
        end = end[ok]
        idx = end[:, None] + np.arange(-window + 1, 1)[None]
        hidx = end[:, None] + np.arange(-history + 1, 1)[None]
        emg_w.append(tr.excitation[idx])
        q_w.append(tr.q_rad[hidx])
        m = tr.excitation.shape[1] if n_muscles is None else n_muscles
        if tr.forces_n is not None:
            f_w.append(tr.forces_n[hidx])
        else:
            f_w.append(np.full((len(end), history, m), np.nan, np.float32))
        has_f.append(np.full(len(end), tr.forces_n is not None))
        subj.append(np.full(len(end), tr.subject, np.int32))
        tri.append(np.full(len(end), k, np.int32))
        ends.append(end.astype(np.int32))
    if not emg_w:
        raise DataError("no complete window fits in the given trials; use longer trials or a "
                        "shorter windows.length_s")
    cat = lambda xs: np.concatenate(xs, axis=0)
    return Windows(cat(emg_w), cat(q_w), cat(f_w), cat(has_f), cat(subj), cat(tri), cat(ends))
