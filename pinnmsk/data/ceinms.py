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
