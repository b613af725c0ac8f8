"""A lab's OpenSim model and MuscleAnalysis grids as pinnmsk reads them: each muscle's
parameters from a scaled ``.osim`` (:func:`read_osim_muscles`), and the coordinate grid a
MuscleAnalysis table covers (:func:`grid_coordinates`, :func:`same_rows`).
"""

from __future__ import annotations

import numpy as np

from pinnmsk.data.opensim import Table, read_xml, to_radians
from pinnmsk.errors import DataError


# Muscle classes whose parameters mean what pinnmsk's Hill model means by them.
OSIM_MUSCLE_CLASSES = ("Millard2012EquilibriumMuscle", "DeGrooteFregly2016Muscle",
                       "Thelen2003Muscle")


_OSIM_FIELDS = {"f_max_n": "max_isometric_force", "l_opt_m": "optimal_fiber_length",
                "l_ts_m": "tendon_slack_length", "phi_opt_rad": "pennation_angle_at_optimal"}


def read_osim_muscles(path: str, names) -> dict:
    """Muscle parameters of ``names`` from an OpenSim model file (XML; no OpenSim needed).

    Returns {name: {"f_max_n", "l_opt_m", "l_ts_m", "phi_opt_rad", "class"}} in SI units, for
    the muscle classes in :data:`OSIM_MUSCLE_CLASSES`. Raises ``DataError`` for a missing file,
    a muscle the model lacks and a muscle of another class.
    """
    root = read_xml(path, "the 'osim' path")
    found = {}
    for el in root.iter():
        if el.get("name") in names and el.tag.endswith("Muscle"):
            found.setdefault(el.get("name"), el)
    out = {}
    for name in names:
        el = found.get(name)
        if el is None:
            raise DataError(f"{path}: the model has no muscle named '{name}'; fix the muscle name "
                            "in the data spec or give its parameters under [[muscles]]")
        if el.tag not in OSIM_MUSCLE_CLASSES:
            raise DataError(f"{path}: muscle '{name}' is a {el.tag}, which pinnmsk does not read; "
                            f"supported: {', '.join(OSIM_MUSCLE_CLASSES)} (or give its "
                            "parameters under [[muscles]])")
        vals = {"class": el.tag}
        for key, tag in _OSIM_FIELDS.items():
            node = el.find(tag)
            if node is None or not (node.text or "").strip():
                if key == "phi_opt_rad":
                    vals[key] = 0.0
                    continue
                raise DataError(f"{path}: muscle '{name}' has no <{tag}>; fix the model")
            try:
                vals[key] = float(node.text.split()[0])
            except ValueError:
                raise DataError(f"{path}: muscle '{name}' <{tag}> = {node.text!r} is not a "
                                "number") from None
        out[name] = vals
    return out


def same_rows(a: Table, b: Table) -> bool:
    """Whether two tables have the same rows (count and times): e.g. a MuscleAnalysis table
    and the motion, or the other MuscleAnalysis table, of the same analysis."""
    return len(a.time) == len(b.time) and bool(
        np.max(np.abs(a.time - b.time)) <= 1e-6 * max(1.0, np.ptp(a.time)))


def grid_coordinates(table: Table, coordinates, motion: "Table | None") -> np.ndarray:
    """The coordinates (N, n) [rad] at which a MuscleAnalysis table's rows were computed.

    OpenSim's Analyze tool writes time-indexed tables; the coordinates are in the motion file it
    ran on (``motion``), matched by time and converted by that file's ``inDegrees``. A grid table
    (coordinates as columns, or a 1-DOF table whose first column is the angle) needs no motion;
    its own ``inDegrees`` is honoured.
    """
    coordinates = list(coordinates)
    if motion is not None:
        missing = [c for c in coordinates if c not in motion.columns]
        if missing:
            raise DataError(f"{motion.path}: no coordinate column '{missing[0]}' (columns: "
                            f"{', '.join(motion.columns)}); the MuscleAnalysis motion must hold "
                            "the spec's coordinates")
        if not same_rows(table, motion):
            raise DataError(f"{table.path}: {len(table.time)} rows at times "
                            f"{table.time[0]:g}..{table.time[-1]:g} s do not match the "
                            f"{len(motion.time)} rows of its motion {motion.path} "
                            f"({motion.time[0]:g}..{motion.time[-1]:g} s); give the motion "
                            "file the Analyze tool was run on")
        return to_radians(motion, coordinates)
    if all(c in table.columns for c in coordinates):
        return to_radians(table, coordinates)
    if len(coordinates) == 1 and table.index_label == coordinates[0]:
        q = table.time[:, None]
        return np.deg2rad(q) if table.in_degrees else q
    raise DataError(f"{table.path}: the table is indexed by '{table.index_label}' and has no "
                    f"coordinate column ({', '.join(coordinates)}); set geometry.motion to the "
                    "motion file the Analyze tool was run on (e.g. "
                    "muscle_analysis/range_of_motion.mot), or, for a grid table over one "
                    f"coordinate, name its first column '{coordinates[0]}'")
