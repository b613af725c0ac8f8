"""The parts of a data spec that tie its tables together: the per-subject tables
(:func:`subjects_of`: files, held coordinates, channel values per subject) and the checks across
fields (channels named in per-channel values, held coordinates, the sources each geometry and
model field needs). Each raises a :class:`~pinnmsk.errors.DataError` naming the file, the field
and the fix; :func:`pinnmsk.data.spec.load_spec` calls them.
"""

from __future__ import annotations

import numpy as np

from pinnmsk.data.spec_types import EmgSpec, GeometrySpec, MvcRecording, SubjectSpec
from pinnmsk.data.toml_fields import _Fields, _table_list
from pinnmsk.errors import DataError


def check_channel_values(path: str, field: str, values: dict, channels: dict) -> None:
    for c, v in values.items():
        if c not in channels:
            raise DataError(f"{path}: field '{field}' names channel '{c}', which is not in "
                            f"emg.channels ({', '.join(channels)}); fix the name")
        if not np.isfinite(v) or v < 0:
            raise DataError(f"{path}: field '{field}' = {v} for channel '{c}' must be a finite "
                            "value >= 0 [V]")


def subjects_of(top: _Fields, raw: dict, channels: dict, known: set, coordinates,
              geometry_source: str) -> list:
    """The optional ``[[subjects]]`` tables (per-subject model, MuscleAnalysis and MVC/rest)."""
    if "subjects" not in raw:
        return []

    def build(f: _Fields) -> SubjectSpec:
        mvc = []
        for i, rec in enumerate(f.get("mvc", ("list", ("map_any",)), ())):
            where = f"{f.prefix}mvc[{i}]"
            if set(rec) - {"file", "channels"} or "file" not in rec or "channels" not in rec:
                raise DataError(f"{top.path}: field '{where}' must be a table "
                                "{ file = \"...\", channels = [\"...\"] }")
            chans = rec["channels"]
            if not isinstance(rec["file"], str) or not isinstance(chans, list) or not chans:
                raise DataError(f"{top.path}: field '{where}' needs a file path and a non-empty "
                                "list of channels")
            for c in chans:
                if c not in channels:
                    raise DataError(f"{top.path}: field '{where}.channels' names channel '{c}', "
                                    f"which is not in emg.channels ({', '.join(channels)}); fix "
                                    "the name")
            mvc.append(MvcRecording(rec["file"], tuple(chans)))
        sub = SubjectSpec(
            f.get("name", str), f.get("osim", str, None), f.get("length_table", str, None),
            f.get("motion", str, None), f.get("moment_arm_tables", ("map", str), {}),
            tuple(mvc), f.get("rest", str, None), f.get("mvc_v", ("map", float), {}),
            f.get("rest_v", ("map", float), {}), f.get("held_coordinates_rad", ("map", float), {}))
        if sub.name not in known:
            raise DataError(f"{top.path}: field '{f.prefix}name' = '{sub.name}' is no subject of "
                            f"the [[trials]] (subjects: {', '.join(sorted(known))})")
        check_held(top.path, f"{f.prefix}held_coordinates_rad", sub.held_coordinates_rad,
                    coordinates, geometry_source)
        check_channel_values(top.path, f"{f.prefix}mvc_v", sub.mvc_v, channels)
        check_channel_values(top.path, f"{f.prefix}rest_v", sub.rest_v, channels)
        return sub

    subjects = _table_list(top, raw, "subjects", "subject", build)
    names = [s.name for s in subjects]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{top.path}: subject '{dup[0]}' has two [[subjects]] tables; merge them")
    return subjects


def check_held(path: str, field: str, held: dict, coordinates, source: str) -> None:
    """Held coordinates must be table coordinates the labels do not name, at finite values."""
    for c, v in held.items():
        if c in coordinates:
            raise DataError(f"{path}: field '{field}' holds '{c}', which labels.coordinates "
                            "names; a coordinate is either recorded or held, not both")
        if not np.isfinite(v) or abs(v) > 4 * np.pi:
            raise DataError(f"{path}: field '{field}' = {v} for '{c}' is not an angle in "
                            "radians; give it in radians")
    if held and source != "muscle_analysis":
        raise DataError(f"{path}: field '{field}' needs geometry.source = \"muscle_analysis\" "
                        "(a table over the held coordinates too)")


def check_sources(path: str, emg: EmgSpec, muscles, geometry: GeometrySpec, subjects,
                   subject_names: set, osim: str | None = None) -> None:
    """Every subject has MVC values (with ``mvc``), muscle parameters and a length table."""
    by_name = {s.name: s for s in subjects}
    for subj in sorted(subject_names):
        s = by_name.get(subj, SubjectSpec(subj))
        if emg.normalisation == "mvc":
            covered = set(emg.mvc_v) | set(s.mvc_v) | {c for r in s.mvc for c in r.channels}
            missing = [c for c in emg.channels if c not in covered]
            if missing:
                raise DataError(
                    f"{path}: channel '{missing[0]}' of subject '{subj}' has no MVC value: name "
                    "an MVC recording for it ([[subjects]] mvc = [{ file = ..., channels = "
                    f"[\"{missing[0]}\"] }}]), type it in emg.mvc_v, or set emg.normalisation "
                    "= \"robust_max\"")
        elif s.mvc or s.mvc_v:
            raise DataError(f"{path}: subject '{subj}' names MVC values but emg.normalisation is "
                            "\"robust_max\"; set emg.normalisation = \"mvc\" to use them")
        if s.osim is None and osim is None:
            for m in muscles:
                for k in ("f_max_n", "l_opt_m", "l_ts_m"):
                    if getattr(m, k) is None:
                        raise DataError(f"{path}: muscle '{m.name}' has no {k} for subject "
                                        f"'{subj}'; add it under [[muscles]] or give the "
                                        "subject's model ([[subjects]] osim = ...)")
        if geometry.source == "muscle_analysis" and not (s.length_table or geometry.length_table):
            raise DataError(f"{path}: field 'geometry.length_table' is missing for subject "
                            f"'{subj}'; add it (or [[subjects]] length_table)")
