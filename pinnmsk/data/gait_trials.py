"""A CEINMS gait data spec and its trials: the spec (:func:`load_gait_spec`: the lab folder,
the subject XML, the degrees of freedom and the split) and each trial's tables read onto one
time base (:func:`load_gait_trial`: excitations, musculotendon lengths, moment arms and
inverse-dynamics moments), with the file readers of :mod:`pinnmsk.data.ceinms`.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pinnmsk.data.ceinms import read_storage, read_subject, read_trials_list
from pinnmsk.data.opensim import Table
from pinnmsk.errors import DataError


@dataclasses.dataclass(frozen=True)
class GaitSpec:
    """A ``format = "ceinms"`` data spec (see data_specs/README.md), paths resolved.

    Attributes:
      subject, calibrated_subject: subject XML paths (the second optional: CEINMS's result).
      dofs: degrees of freedom as the dofSet names them; each trial has ``<dof>Ma.txt`` and
        ``<dof>Torque.txt``.
      units: the muscle-tendon units modelled (the dofSet's, in mtuSet order).
      excitations: unit -> {EMG channel: weight}; units absent get no excitation (left out).
      moment_sign: per dof, the factor that turns the file's moment into pinnmsk's convention.
      train, validation, test: trial folder names (validation is a part of train).
    """

    path: str
    root: str
    subject: str
    calibrated_subject: str | None
    pennation_unit: str
    dofs: tuple
    units: tuple
    excitations: dict
    moment_sign: dict
    train: tuple
    validation: tuple
    test: tuple


def load_gait_spec(path: str) -> GaitSpec:
    """Read and check a ``format = "ceinms"`` spec at ``path``."""
    from pinnmsk.data.toml_fields import _Fields, read_toml

    top = _Fields(path, read_toml(path), "")
    fmt = top.get("format", str)
    if fmt != "ceinms":
        raise DataError(f"{path}: field 'format' is {fmt!r}; this reader takes \"ceinms\"")
    root = os.path.normpath(os.path.join(os.path.dirname(path), top.get("root", str)))
    if not os.path.isdir(root):
        raise DataError(f"{path}: field 'root' names {root}, which is not a folder; fix it")
    sub = lambda p: os.path.join(root, p)
    subject = sub(top.get("subject", str))
    calibrated = top.get("calibrated_subject", str, None)
    unit = top.get("pennation_unit", ("choice", ("deg", "rad")), "deg")
    dofs = top.get("dofs", ("list", str))
    sign = top.get("moment_sign", ("map", float), {})
    for d in sign:
        if d not in dofs:
            raise DataError(f"{path}: field 'moment_sign.{d}' names no dof of 'dofs'")
    if any(abs(v) != 1.0 for v in sign.values()):
        raise DataError(f"{path}: field 'moment_sign' takes 1 or -1 per dof")
    ex_fields = top.sub("excitations")
    excitations = {}
    for name, v in ex_fields.table.items():
        ex_fields.used.add(name)
        if isinstance(v, str):
            excitations[name] = {v: 1.0}
        elif isinstance(v, dict) and v and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0
                for w in v.values()):
            excitations[name] = {k: float(w) for k, w in v.items()}
        else:
            raise DataError(f"{path}: field 'excitations.{name}' must be a channel name or a "
                            f"table of channel = positive weight, got {v!r}")
    split = top.sub("split")

    def trials(key):
        v = split.get(key, "names")
        if len(v) == 1 and v[0].endswith(".txt"):
            listed = read_trials_list(sub(v[0]))
            if not listed:
                raise DataError(f"{sub(v[0])}: lists no trial; fix 'split.{key}' in {path}")
            return listed
        return v

    train, test = trials("train"), trials("test")
    validation = split.get("validation", "names", ())
    for name in validation:
        if name not in train:
            raise DataError(f"{path}: field 'split.validation' names '{name}', which is not a "
                            "training trial (validation is a part of the training trials)")
    overlap = set(train) & set(test)
    if overlap:
        raise DataError(f"{path}: trial '{sorted(overlap)[0]}' is in both split.train and "
                        "split.test; a test trial must stay unseen")
    split.finish()
    top.finish()
    subj = read_subject(subject, unit)
    units = []
    for d in dofs:
        if d not in subj.dofs:
            raise DataError(f"{subject}: no dof '{d}' in its <dofSet> (dofs: "
                            f"{', '.join(subj.dofs)}); fix field 'dofs' in {path}")
        units += [u for u in subj.dofs[d] if u not in units]
    units = tuple(u for u in subj.names if u in units)
    for name in excitations:
        if name not in units:
            raise DataError(f"{path}: field 'excitations.{name}' names a unit that crosses none "
                            f"of the dofs (units: {', '.join(units)})")
    return GaitSpec(path, root, subject, sub(calibrated) if calibrated else None, unit,
                    tuple(dofs), units, excitations, {d: sign.get(d, 1.0) for d in dofs},
                    tuple(train), tuple(validation), tuple(test))


@dataclasses.dataclass(frozen=True)
class GaitTrial:
    """One trial on the musculotendon table's time base (T samples, M units, D dofs).

    Attributes:
      name: the trial folder's name.
      time_s: (T,) sample times [s].
      excitation: (S, M) excitations in the order CEINMS feeds its activation filter: every EMG
        sample before the first sample time, then at each sample time the first EMG sample at
        or after it (S - T lead-in samples; a unit with no channel reads 0).
      l_mt_m: (T, M) musculotendon lengths [m].
      moment_arm_m: (T, D, M) moment arms [m] (0 for a unit not crossing a dof).
      moment_nm: (T, D) measured joint moments [N m], signs as ``moment_sign`` says.
    """

    name: str
    time_s: np.ndarray
    excitation: np.ndarray
    excitation_time_s: np.ndarray
    l_mt_m: np.ndarray
    moment_arm_m: np.ndarray
    moment_nm: np.ndarray


def _columns(tab: Table, names, path: str, what: str) -> np.ndarray:
    missing = [n for n in names if n not in tab.columns]
    if missing:
        raise DataError(f"{path}: no column '{missing[0]}' ({what}); columns: "
                        f"{', '.join(tab.columns)}")
    return tab.values[:, [tab.columns.index(n) for n in names]]


def _check_times(src_t, t, path, what):
    """The table's times must be lmt.txt's (CEINMS's files share one time base)."""
    if len(src_t) != len(t) or np.max(np.abs(src_t - t)) > 1e-6:
        raise DataError(f"{path}: its time column does not match lmt.txt's ({what} must be "
                        "sampled at the musculotendon lengths' times); re-export them together")


def load_gait_trial(spec: GaitSpec, name: str) -> GaitTrial:
    """The trial folder ``name`` under the spec's root, in ``spec.units`` / ``spec.dofs`` order."""
    folder = os.path.join(spec.root, name)
    if not os.path.isdir(folder):
        raise DataError(f"{spec.path}: trial '{name}' has no folder {folder}; fix the split")
    lmt_path = os.path.join(folder, "lmt.txt")
    lmt = read_storage(lmt_path)
    t = lmt.time
    l_mt = _columns(lmt, spec.units, lmt_path, "a modelled unit's musculotendon length")
    if np.any(l_mt <= 0):
        raise DataError(f"{lmt_path}: a musculotendon length is <= 0; are these metres?")
    arms = np.zeros((len(t), len(spec.dofs), len(spec.units)))
    moments = np.zeros((len(t), len(spec.dofs)))
    for j, d in enumerate(spec.dofs):
        ma_path = os.path.join(folder, f"{d}Ma.txt")
        tq_path = ma_path[:-len("Ma.txt")] + "Torque.txt"
        ma = read_storage(ma_path)
        cols = [u for u in ma.columns if u in spec.units]
        _check_times(ma.time, t, ma_path, "moment arms")
        vals = _columns(ma, cols, ma_path, "moment arm")
        for k, u in enumerate(cols):
            arms[:, j, spec.units.index(u)] = vals[:, k]
        tq = read_storage(tq_path)
        if len(tq.columns) != 1:
            raise DataError(f"{tq_path}: expected one moment column, found "
                            f"{', '.join(tq.columns)}")
        _check_times(tq.time, t, tq_path, "the joint moment")
        moments[:, j] = spec.moment_sign[d] * tq.values[:, 0]
    emg_path = os.path.join(folder, "emg.txt")
    emg = read_storage(emg_path)
    channels = sorted({c for m in spec.excitations.values() for c in m})
    raw = _columns(emg, channels, emg_path, "an EMG channel the spec's excitations name")
    if emg.time[0] > t[0] + 1e-9 or emg.time[-1] < t[-1] - 1e-9:
        raise DataError(f"{emg_path}: EMG covers {emg.time[0]:.3f}-{emg.time[-1]:.3f} s, "
                        f"the musculotendon lengths {t[0]:.3f}-{t[-1]:.3f} s; the EMG must "
                        "cover every sample time")
    weights = np.zeros((len(channels), len(spec.units)))
    for u, mapping in spec.excitations.items():
        for c, w in mapping.items():
            weights[channels.index(c), spec.units.index(u)] = w
    lead = np.flatnonzero(emg.time < t[0] - 1e-9)
    at = np.searchsorted(emg.time, t - 1e-9, side="left")
    rows = np.concatenate([lead, at])
    excitation = raw[rows] @ weights
    return GaitTrial(name, t, excitation.astype(np.float32), emg.time[rows],
                     l_mt.astype(np.float32),
                     arms.astype(np.float32), moments.astype(np.float32))
