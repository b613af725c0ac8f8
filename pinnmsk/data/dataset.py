"""Load a whole dataset from its spec: EMG → excitation envelopes, labels in SI units, at a common
rate; windows for the CNN; leak-free splits; the musculoskeletal model the spec describes.

Everything here runs once on the host (NumPy); the arrays it returns feed jitted code.
"""

from __future__ import annotations

import dataclasses
import sys
import time as _time

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import dynamics, emg, geometry, muscle
from pinnmsk.data import opensim
from pinnmsk.data.opensim import DataError
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
    spec: DataSpec
    trials: list
    subjects: tuple
    normaliser_v: np.ndarray  # (S, M) per subject: envelope at excitation 1 [V]
    model: MskModel
    dropped_samples: int = 0
    rest_v: np.ndarray | None = None  # (S, M) envelope at excitation 0 [V]; None: zeros

    @property
    def rate_hz(self) -> float:
        return self.spec.labels.rate_hz

    def split(self) -> dict:
        """{'train': [...], 'validation': [...], 'test': [...]} lists of trials (no overlap)."""
        return split_trials(self.spec, self.trials)


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


# --------------------------------------------------------------------------- model from spec


def build_model(spec: DataSpec) -> MskModel:
    """The body, muscles and geometry a spec describes (geometry fitted from its length table)."""
    body_cls = {"pendulum": dynamics.Pendulum, "two_link": dynamics.TwoLinkArm}[spec.body.model]
    p = dict(spec.body.params)
    if spec.body.model == "pendulum":
        for key in ("mass_kg", "com_m", "inertia_kgm2"):
            if key not in p:
                raise DataError(f"{spec.path}: field 'body.{key}' is missing; add it [SI units]")
    body = body_cls(**{k: jnp.float32(v) for k, v in p.items()})
    ms = spec.muscles
    params = muscle.MuscleParams.create(
        f_max_n=[m.f_max_n for m in ms], l_opt_m=[m.l_opt_m for m in ms],
        l_ts_m=[m.l_ts_m for m in ms], phi_opt_rad=[m.phi_opt_rad for m in ms])
    g = spec.geometry
    if g.source == "muscle_analysis":
        table = opensim.read_table(spec.resolve(g.length_table))
        lengths = table.select(spec.muscle_names)
        if len(spec.labels.coordinates) == 1:
            q = table.time[:, None]
        else:  # multivariate: coordinates are columns of the table
            q = table.select(spec.labels.coordinates)
        geo = geometry.fit_polynomial(q, lengths, g.degree)
    else:
        n = len(spec.labels.coordinates)
        exps = geometry.monomial_exponents(n, g.degree)
        coef = np.asarray([g.coefficients_m[m] for m in spec.muscle_names], float)
        if coef.shape[1] != len(exps) or len(g.centre_rad) != n or len(g.scale_rad) != n:
            raise DataError(f"{spec.path}: field 'geometry.coefficients_m' needs {len(exps)} "
                            f"coefficients per muscle and centre_rad/scale_rad {n} values each for "
                            f"degree {g.degree} in {n} coordinate(s)")
        geo = geometry.PolynomialGeometry(jnp.asarray(coef, jnp.float32),
                                          jnp.asarray(g.centre_rad, jnp.float32),
                                          jnp.asarray(g.scale_rad, jnp.float32), exps)
    return MskModel(body, params, geo)


# --------------------------------------------------------------------------- loading


def _check_time(path: str, t: np.ndarray, rate_hz: float, what: str) -> None:
    if len(t) < 2:
        raise DataError(f"{path}: {what} has fewer than 2 samples")
    d = np.diff(t)
    if not np.all(np.isfinite(t)) or np.any(d <= 0):
        i = int(np.argmax(~(d > 0))) if np.any(d <= 0) else int(np.argmax(~np.isfinite(t)))
        raise DataError(f"{path}: time column is not strictly increasing at row {i + 1} "
                        f"(t = {t[i]:.6g} then {t[i + 1]:.6g}); sort the rows or remove duplicates")
    measured = 1.0 / np.median(d)
    if abs(measured - rate_hz) > 0.01 * rate_hz:
        raise DataError(f"{path}: time column implies {measured:.6g} Hz but the spec says "
                        f"{rate_hz:g} Hz ({what}); fix the rate in the data spec")


def _nonfinite_runs(path, values, columns, what, allow: bool) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any() and not allow:
        r, c = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: {int(bad.any(axis=1).sum())} row(s) of {what} contain NaN/Inf, first at row "
            f"{r + 1} column '{columns[c]}'; clean the file or set windows.drop_nonfinite = true "
            "to drop the affected windows")
    return bad.any(axis=1)


def _interp_nonfinite(values: np.ndarray, bad_rows: np.ndarray) -> np.ndarray:
    if not bad_rows.any():
        return values
    out = values.copy()
    idx = np.arange(len(values))
    for c in range(values.shape[1]):
        ok = np.isfinite(values[:, c])
        out[:, c] = np.interp(idx, idx[ok], values[ok, c]) if ok.any() else 0.0
    return out


def _load_trial(spec: DataSpec, ts, env_filter, envelope_fn, min_samples: int):
    allow = spec.windows.drop_nonfinite
    rate = spec.labels.rate_hz
    # --- EMG
    e_path = spec.resolve(ts.emg)
    e_tab = opensim.read_table(e_path)
    channels = list(spec.emg.channels)
    for c in channels:
        if c not in e_tab.columns:
            raise DataError(f"{e_path}: no EMG column '{c}' named in emg.channels "
                            f"(columns: {', '.join(e_tab.columns)}); fix the data spec")
    _check_time(e_path, e_tab.time, spec.emg.sampling_rate_hz, "emg.sampling_rate_hz")
    raw = e_tab.select(channels)
    bad_emg = _nonfinite_runs(e_path, raw, channels, "EMG", allow)
    raw = _interp_nonfinite(raw, bad_emg)
    if len(raw) <= emg.padlen(env_filter.bandpass_sos) + 1 or \
            len(raw) <= emg.padlen(env_filter.lowpass_sos) + 1:
        raise DataError(f"{e_path}: only {len(raw)} EMG samples, too short for the filters; "
                        "use longer trials")
    envelope = np.asarray(envelope_fn(jnp.asarray(raw, jnp.float32)))

    # --- kinematics
    k_path = spec.resolve(ts.kinematics)
    k_tab = opensim.read_table(k_path)
    _check_time(k_path, k_tab.time, rate, "labels.rate_hz")
    units = spec.labels.coordinate_units
    q = k_tab.select(spec.labels.coordinates)
    if units == "degrees" or (units == "file" and k_tab.in_degrees):
        q = np.deg2rad(q)
    bad_q = _nonfinite_runs(k_path, q, spec.labels.coordinates, "joint angles", allow)

    # --- overlap and common time base (label times inside the EMG range)
    lo = max(e_tab.time[0], k_tab.time[0])
    hi = min(e_tab.time[-1], k_tab.time[-1])
    if hi <= lo:
        raise DataError(f"{k_path}: label times [{k_tab.time[0]:.3f}, {k_tab.time[-1]:.3f}] s do "
                        f"not overlap EMG times [{e_tab.time[0]:.3f}, {e_tab.time[-1]:.3f}] s in "
                        f"{e_path}; check that both files belong to the same trial")
    keep = (k_tab.time >= lo - 1e-9) & (k_tab.time <= hi + 1e-9)
    t = k_tab.time[keep]
    if len(t) < min_samples:
        raise DataError(f"{k_path}: only {len(t)} label samples overlap the EMG; a trial needs "
                        f"at least {min_samples} (window length + 1); use longer trials or a "
                        "shorter windows.length_s")
    env_t = np.stack([np.interp(t, e_tab.time, envelope[:, c]) for c in range(envelope.shape[1])],
                     axis=1)
    # An interpolated gap smears over the envelope low-pass's support: widen it by half a
    # low-pass period on each side before marking label samples invalid.
    if bad_emg.any():
        half = int(np.ceil(0.5 * spec.emg.sampling_rate_hz / spec.emg.lowpass_hz))
        bad_emg = np.convolve(bad_emg.astype(float), np.ones(2 * half + 1), mode="same") > 0
    emg_bad_t = np.interp(t, e_tab.time, bad_emg.astype(float)) > 0
    valid = ~(bad_q[keep] | emg_bad_t)
    q = _interp_nonfinite(q[keep], ~valid)

    forces = None
    if ts.forces:
        f_path = spec.resolve(ts.forces)
        f_tab = opensim.read_table(f_path)
        _check_time(f_path, f_tab.time, rate, "labels.rate_hz")
        fv = f_tab.select(spec.muscle_names)
        bad_f = _nonfinite_runs(f_path, fv, spec.muscle_names, "muscle forces", allow)
        fv = _interp_nonfinite(fv, bad_f)
        forces = np.stack([np.interp(t, f_tab.time, fv[:, j]) for j in range(fv.shape[1])], 1)
        valid &= ~(np.interp(t, f_tab.time, bad_f.astype(float)) > 0)
    # Envelope columns in muscle order (the spec guarantees one channel per muscle).
    order = [channels.index(spec.channel_of[m]) for m in spec.muscle_names]
    return t, env_t[:, order], q, forces, valid


def load_dataset(spec: DataSpec, progress: bool = False) -> Dataset:
    """Read every trial of ``spec``; errors are ``DataError`` naming the file and field."""
    cfg = emg.EnvelopeConfig(fs_hz=spec.emg.sampling_rate_hz, bandpass_hz=spec.emg.bandpass_hz,
                             bandpass_order=spec.emg.bandpass_order, lowpass_hz=spec.emg.lowpass_hz,
                             lowpass_order=spec.emg.lowpass_order)
    try:
        env_filter = emg.EnvelopeFilter.from_config(cfg)
    except ValueError as e:
        raise DataError(f"{spec.path}: field 'emg' filter settings: {e}") from None
    envelope_fn = jax.jit(lambda x: env_filter.offline(x, validate=False))
    model = build_model(spec)
    min_samples = int(round(spec.windows.length_s * spec.labels.rate_hz)) + 1
    subjects = tuple(dict.fromkeys(t.subject for t in spec.trials))
    loaded = []
    t0 = _time.time()
    for i, ts in enumerate(spec.trials):
        loaded.append((ts, *_load_trial(spec, ts, env_filter, envelope_fn, min_samples)))
        if progress:
            print(f"  loaded {ts.id} ({i + 1}/{len(spec.trials)}, {_time.time() - t0:.1f} s)",
                  file=sys.stderr, flush=True)

    # Normalisers: MVC values, or a robust maximum per subject over its training trials
    # (EMG only, no labels; all its trials when a subject has none in training).
    m_names = spec.muscle_names
    train_ids = {ts.id for ts in split_trials(spec, spec.trials)["train"]}
    norm = np.zeros((len(subjects), len(m_names)))
    rest = np.tile([spec.emg.rest_v.get(spec.channel_of[m], 0.0) for m in m_names],
                   (len(subjects), 1))
    for s, subj in enumerate(subjects):
        if spec.emg.normalisation == "mvc":
            norm[s] = [spec.emg.mvc_v[spec.channel_of[m]] for m in m_names]
            continue
        mine = [x for x in loaded if x[0].subject == subj]
        use = [x for x in mine if x[0].id in train_ids] or mine
        env = np.concatenate([x[2][x[5]] for x in use], axis=0)
        norm[s] = emg.robust_max(env, spec.emg.robust_quantile)
        low = norm[s] <= rest[s]
        if np.any(low):
            c = spec.channel_of[m_names[int(np.argmax(low))]]
            raise DataError(f"{spec.path}: field 'emg.rest_v' for channel '{c}' is not below "
                            f"the channel's robust maximum ({norm[s][low][0]:.3g} V) for subject "
                            f"'{subj}'; lower it")
    trials, dropped = [], 0
    for ts, t, env, q, forces, valid in loaded:
        s = subjects.index(ts.subject)
        exc = emg.normalise(env, norm[s], rest[s])
        trials.append(Trial(ts.id, s, t, exc.astype(np.float32), q.astype(np.float32),
                            None if forces is None else forces.astype(np.float32), valid, env))
        dropped += int((~valid).sum())
    return Dataset(spec, trials, subjects, norm, model, dropped, rest)


# --------------------------------------------------------------------------- splits and windows


def split_trials(spec: DataSpec, trials) -> dict:
    """Partition trials into train/validation/test by trial id or by subject (no overlap)."""
    # Trial ids are "subject/name".
    key = (lambda t: t.id) if spec.split.by == "trial" else (lambda t: t.id.rsplit("/", 1)[0])
    test, val = set(spec.split.test), set(spec.split.validation)
    out = {"train": [], "validation": [], "test": []}
    for t in trials:
        k = key(t)
        out["test" if k in test else "validation" if k in val else "train"].append(t)
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
