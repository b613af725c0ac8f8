"""Read a CEINMS lab folder as it is: trial tables and the subject's muscle-tendon XML.

The layout (CEINMS's own test data, and what labs export for it):
  - ``<trial>/emg.txt``, ``lmt.txt``, ``R_<dof>Ma.txt``, ``R_<dof>Torque.txt``: a line
    ``datacolumns N``, a line ``datarows R``, then a tab-separated table whose first column is
    ``time`` [s]; EMG as normalised envelopes (excitations, 0-1), musculotendon lengths [m],
    moment arms [m] of the muscles crossing ``<dof>``, the inverse-dynamics moment [N m].
  - a subject XML (``mtuDefault``: the curves as point lists, damping, fibre length change with
    activation; ``mtuSet``: per muscle-tendon unit c1, c2, shape factor, optimal fibre length,
    pennation angle, tendon slack length, F_max, strength coefficient; ``dofSet``: the units
    crossing each degree of freedom).
Pennation angles are degrees in these files unless the element says ``unit="rad"``; CEINMS
converts them (``SetupDataStructure::createMuscles``).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from pinnmsk.data.opensim import Table, _parse_table, _read_lines, read_xml
from pinnmsk.errors import DataError


def read_storage(path: str) -> Table:
    """A CEINMS table: ``datacolumns N`` / ``datarows R`` then a TSV with a ``time`` column.
    The counts are checked, so a truncated or edited file is named rather than half-read."""
    lines = _read_lines(path)
    counts = {}
    for ln in lines[:2]:
        parts = ln.split()
        if len(parts) == 2 and parts[0] in ("datacolumns", "datarows"):
            try:
                counts[parts[0]] = int(parts[1])
            except ValueError:
                pass
    if set(counts) != {"datacolumns", "datarows"}:
        raise DataError(f"{path}: no 'datacolumns N' / 'datarows R' header in its first two "
                        "lines; is this a CEINMS trial table?")
    tab = _parse_table(path, lines[2:], "\t", {}, False)
    if tab.index_label.lower() != "time":
        raise DataError(f"{path}: its first column is '{tab.index_label}', not 'time'")
    if len(tab.columns) + 1 != counts["datacolumns"] or len(tab.time) != counts["datarows"]:
        raise DataError(f"{path}: the header says {counts['datacolumns']} columns and "
                        f"{counts['datarows']} rows, the table has {len(tab.columns) + 1} and "
                        f"{len(tab.time)} (a truncated or edited file?); re-export it")
    if len(tab.time) < 2 or np.any(np.diff(tab.time) <= 0):
        raise DataError(f"{path}: its time column is not strictly increasing; re-export it")
    if not np.isfinite(tab.values).all():
        r, c = np.argwhere(~np.isfinite(tab.values))[0]
        raise DataError(f"{path}: column '{tab.columns[c]}' is not finite at data row {r + 1}; "
                        "repair the file")
    return tab


@dataclasses.dataclass(frozen=True)
class Subject:
    """A CEINMS subject: per muscle-tendon unit (M,) arrays in ``names`` order, SI units.

    Attributes:
      names: the units' names.
      f_max_n, l_opt_m, l_ts_m, pennation_rad: F_max [N], optimal fibre length [m], tendon
        slack length [m], pennation at optimal fibre length [rad].
      strength: the strength coefficient (F_max multiplier).
      c1, c2, shape_factor: the activation model's recursive-filter coefficients and its
        non-linear shape factor (Lloyd & Besier 2003).
      damping: fibre damping (force per normalised velocity, F_max units).
      percentage_change: optimal fibre length change with activation (l_opt (p (1 - a) + 1)).
      em_delay_s: electromechanical delay [s].
      curves: name -> (x, y) point lists (activeForceLength, passiveForceLength,
        forceVelocity, tendonForceStrain).
      dofs: degree of freedom -> names of the units crossing it.
    """

    path: str
    names: tuple
    f_max_n: np.ndarray
    l_opt_m: np.ndarray
    l_ts_m: np.ndarray
    pennation_rad: np.ndarray
    strength: np.ndarray
    c1: np.ndarray
    c2: np.ndarray
    shape_factor: np.ndarray
    damping: np.ndarray
    percentage_change: float
    em_delay_s: float
    curves: dict
    dofs: dict

    def select(self, names) -> "Subject":
        """The subject restricted to (and ordered as) ``names``."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise DataError(f"{self.path}: no muscle-tendon unit '{missing[0]}' in its mtuSet "
                            f"(units: {', '.join(self.names)}); fix the name in the data spec")
        idx = [self.names.index(n) for n in names]
        arrays = {f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        return dataclasses.replace(self, names=tuple(names), **arrays)


_CURVES = ("activeForceLength", "passiveForceLength", "forceVelocity", "tendonForceStrain")


def _text(el, tag: str, path: str, where: str) -> str:
    child = el.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{path}: {where} has no <{tag}>; add it")
    return child.text.strip()


def _number(el, tag: str, path: str, where: str) -> float:
    text = _text(el, tag, path, where)
    try:
        v = float(text)
    except ValueError:
        raise DataError(f"{path}: {where} <{tag}> = {text!r} is not a number") from None
    if not np.isfinite(v):
        raise DataError(f"{path}: {where} <{tag}> = {text!r} is not finite")
    return v


def read_subject(path: str, pennation_unit: str = "deg") -> Subject:
    """The subject XML at ``path``. ``pennation_unit``: the unit of <pennationAngle> where the
    element does not say (``unit="deg"``/``"rad"``); these files write degrees."""
    root = read_xml(path, "the subject path")
    default = root.find("mtuDefault")
    if default is None:
        raise DataError(f"{path}: no <mtuDefault> (curves, damping); is this a CEINMS subject?")
    curves = {}
    for c in default.findall("curve"):
        name = _text(c, "name", path, "a <curve>")
        try:
            x = np.array(_text(c, "xPoints", path, f"curve '{name}'").split(), float)
            y = np.array(_text(c, "yPoints", path, f"curve '{name}'").split(), float)
        except ValueError:
            raise DataError(f"{path}: curve '{name}' has a point that is not a number") from None
        if len(x) != len(y) or len(x) < 2 or np.any(np.diff(x) <= 0):
            raise DataError(f"{path}: curve '{name}' needs as many yPoints as xPoints (>= 2), "
                            "with xPoints strictly increasing")
        curves[name] = (x, y)
    for name in _CURVES:
        if name not in curves:
            raise DataError(f"{path}: <mtuDefault> has no curve '{name}'; add its point list")
    damping_default = _number(default, "damping", path, "<mtuDefault>")
    delay = _number(default, "emDelay", path, "<mtuDefault>")
    change = _number(default, "percentageChange", path, "<mtuDefault>")
    rows = []
    mtus = root.findall("mtuSet/mtu")
    if not mtus:
        raise DataError(f"{path}: <mtuSet> lists no <mtu>; is this a CEINMS subject?")
    for m in mtus:
        name = _text(m, "name", path, "an <mtu>")
        where = f"mtu '{name}'"
        pen = m.find("pennationAngle")
        unit = (pen.get("unit") if pen is not None else None) or pennation_unit
        phi = _number(m, "pennationAngle", path, where)
        phi_rad = np.deg2rad(phi) if unit == "deg" else phi
        if not 0.0 <= phi_rad < np.pi / 2:
            raise DataError(f"{path}: {where} <pennationAngle> = {phi:g} {unit} is not in "
                            "[0, 90) degrees; check its unit (attribute unit=\"deg\"/\"rad\")")
        row = {"name": name, "pennation_rad": phi_rad,
               "damping": _number(m, "damping", path, where) if m.find("damping") is not None
               else damping_default}
        for tag, key in (("maxIsometricForce", "f_max_n"), ("optimalFibreLength", "l_opt_m"),
                         ("tendonSlackLength", "l_ts_m"), ("strengthCoefficient", "strength"),
                         ("c1", "c1"), ("c2", "c2"), ("shapeFactor", "shape_factor")):
            row[key] = _number(m, tag, path, where)
        for key in ("f_max_n", "l_opt_m", "l_ts_m", "strength"):
            if row[key] <= 0:
                raise DataError(f"{path}: {where} has {key} = {row[key]:g}; it must be > 0")
        if not (-1 < row["c1"] < 1 and -1 < row["c2"] < 1):
            raise DataError(f"{path}: {where} has c1 = {row['c1']:g}, c2 = {row['c2']:g}; the "
                            "recursive filter is stable only for both in (-1, 1)")
        rows.append(row)
    names = tuple(r["name"] for r in rows)
    if len(set(names)) != len(names):
        raise DataError(f"{path}: a muscle-tendon unit is listed twice in <mtuSet>")
    dofs = {}
    for d in root.findall("dofSet/dof"):
        name = _text(d, "name", path, "a <dof>")
        members = _text(d, "mtuNameSet", path, f"dof '{name}'").split()
        unknown = [x for x in members if x not in names]
        if unknown:
            raise DataError(f"{path}: dof '{name}' names '{unknown[0]}', which <mtuSet> lacks")
        dofs[name] = tuple(members)
    arr = lambda k: np.array([r[k] for r in rows], float)
    return Subject(path, names, arr("f_max_n"), arr("l_opt_m"), arr("l_ts_m"),
                   arr("pennation_rad"), arr("strength"), arr("c1"), arr("c2"),
                   arr("shape_factor"), arr("damping"), change, delay, curves, dofs)


def read_trials_list(path: str) -> tuple:
    """Trial folder names listed in a CEINMS ``trials.txt`` (a ``noTrials: N`` line is skipped)."""
    lines = [ln.strip() for ln in _read_lines(path)]
    return tuple(ln for ln in lines if ln and not ln.lower().startswith("notrials"))


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
