"""Declarative dataset specs (TOML): parsing, type checking and path resolution
(:func:`load_spec`; the types are :mod:`pinnmsk.data.spec_types`, the TOML plumbing
:mod:`pinnmsk.data.toml_fields`).

Every field is documented in ``data_specs/README.md``. A spec is read into frozen dataclasses;
a wrong or missing field raises :class:`~pinnmsk.errors.DataError` with one line naming the
spec file, the field and the fix. Relative file paths resolve against ``root``, which itself
resolves against the spec file's folder.
"""

from __future__ import annotations

import os

import numpy as np

from pinnmsk import bodies, muscle_models
from pinnmsk.data import person_spec
from pinnmsk.data.spec_types import (ActivationSpec, BodySpec, DataSpec, EmgSpec, GeometrySpec,
                                     LabelSpec, MuscleSpec, SplitSpec, TextSpec, TrialSpec,
                                     WindowSpec)
from pinnmsk.data.spec_checks import check_channel_values, check_held, check_sources, subjects_of
from pinnmsk.data.toml_fields import _Fields, _table_list, from_table, read_toml
from pinnmsk.errors import DataError


# Widths of the Gaussian prior on identified scales (fractions of the lab's model): F_max is
# the least known (±30 %: specific tension and PCSA vary that much between subjects), lengths
# scale with the segment (±5 %).
_PRIOR_WIDTHS = {"f_max": 0.3, "l_opt": 0.05, "l_ts": 0.05}
_ID_DEFAULTS = {"f_max": (0.5, 1.5), "l_opt": (0.8, 1.2), "l_ts": (0.95, 1.05),
                "emg_gain": (0.05, 1.0), "delay_s": (0.01, 0.1),
                "unmeasured_activation": (0.0, 0.3)}


def load_spec(path: str, require_root: bool = True) -> DataSpec:
    """Parse and type-check a TOML data spec. Raises ``DataError`` on any problem.

    ``require_root=False`` accepts a ``root`` folder that does not exist (inference from a
    trained run reads none of the spec's data files)."""
    path = os.path.abspath(path)
    raw = read_toml(path)
    top = _Fields(path, raw, "")
    name = top.get("name", str)
    root = os.path.normpath(os.path.join(os.path.dirname(path), top.get("root", str, ".")))
    if require_root and not os.path.isdir(root):
        raise DataError(f"{path}: field 'root' = {top.table.get('root', '.')!r} is not a folder "
                        f"({root}); it resolves against the spec's own folder")
    osim = top.get("osim", str, None)
    tendon = top.get("tendon", ("choice", muscle_models.names()), "rigid")

    e = top.sub("emg")
    emg = from_table(EmgSpec, e)
    if not emg.outlier_z > 10:
        raise DataError(f"{path}: field 'emg.outlier_z' = {emg.outlier_z} must be > 10 (robust "
                        "SDs; real sEMG bursts reach ~60)")
    if emg.mvc_window_s <= 0 or emg.rest_skip_s < 0:
        raise DataError(f"{path}: fields 'emg.mvc_window_s' must be > 0 and 'emg.rest_skip_s' "
                        ">= 0 [s]")
    check_channel_values(path, "emg.mvc_v", emg.mvc_v, emg.channels)
    check_channel_values(path, "emg.rest_v", emg.rest_v, emg.channels)

    lab = top.sub("labels")
    labels = from_table(LabelSpec, lab)
    for key in ("rate_hz", "file_rate_hz"):
        v = getattr(labels, key)
        if v is not None and not (np.isfinite(v) and v > 0):
            raise DataError(f"{path}: field 'labels.{key}' = {v} must be a positive rate [Hz]")
    if labels.file_rate_hz is not None:
        ratio = labels.file_rate_hz / labels.rate_hz
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
            raise DataError(f"{path}: field 'labels.file_rate_hz' = {labels.file_rate_hz:g} must "
                            f"be a whole multiple of labels.rate_hz = {labels.rate_hz:g}")

    tx = top.sub("text", required=False)
    text = from_table(TextSpec, tx)
    if not labels.coordinates:
        raise DataError(f"{path}: field 'labels.coordinates' is empty; name the joint coordinates")

    b = top.sub("body")
    model = b.get("model", ("choice", tuple(bodies.BODIES)))
    kind = bodies.BODIES[model]
    n_dof = kind.n_dof
    params = {k: b.get(k, float if k not in kind.per_joint or n_dof == 1 else ("per_joint", n_dof))
              for k in kind.fields if k in b.table}
    b.finish()
    if n_dof != len(labels.coordinates):
        raise DataError(f"{path}: field 'body.model' = '{model}' has {n_dof} coordinate(s) but "
                        f"labels.coordinates names {len(labels.coordinates)}; make them agree")

    muscles = _table_list(top, raw, "muscles", "muscle", lambda f: MuscleSpec(
        f.get("name", str), f.get("f_max_n", float, None), f.get("l_opt_m", float, None),
        f.get("l_ts_m", float, None), f.get("phi_opt_rad", float, None),
        f.get("osim_name", str, None)))
    names = [m.name for m in muscles]
    driven = {}
    for col, group in emg.channels.items():
        for mus in group:
            if mus not in names:
                raise DataError(f"{path}: field 'emg.channels.{col}' maps to unknown muscle "
                                f"'{mus}' (muscles: {', '.join(names)}); fix the name")
            if mus in driven:
                raise DataError(f"{path}: field 'emg.channels' drives muscle '{mus}' from two "
                                f"channels ('{driven[mus]}' and '{col}'); a muscle has one")
            driven[mus] = col
    unmapped = [m for m in names if m not in driven]
    notes = []
    if len(unmapped) == len(names):
        raise DataError(f"{path}: field 'emg.channels' drives none of the muscles; map at least "
                        "one EMG channel to a muscle")
    if unmapped and emg.unmeasured == "drop":
        muscles = [m for m in muscles if m.name in driven]
        notes.append(f"muscles without an EMG channel left out of the model (emg.unmeasured = "
                     f"\"drop\"): {', '.join(unmapped)}; the joint torque lacks their share")
    elif unmapped:
        notes.append(f"muscles without an EMG channel get an identified constant activation in "
                     f"identification.unmeasured_activation (emg.unmeasured = \"identify\"): "
                     f"{', '.join(unmapped)}")
    grouped = {c: g for c, g in emg.channels.items() if len(g) > 1}
    for c, g in grouped.items():
        notes.append(f"channel '{c}' drives the muscle group {', '.join(g)}")

    idf = top.sub("identification", required=False)
    ident = {k: idf.get(k, ("pair",), v) for k, v in _ID_DEFAULTS.items()}
    widths = idf.get("prior_width", ("map", float), {})
    idf.finish()
    for k, v in widths.items():
        if k not in _PRIOR_WIDTHS:
            raise DataError(f"{path}: field 'identification.prior_width' names '{k}'; known: "
                            f"{', '.join(_PRIOR_WIDTHS)}")
        if not (np.isfinite(v) and v > 0):
            raise DataError(f"{path}: field 'identification.prior_width.{k}' = {v} must be > 0 "
                            "(a fraction of the nominal value, e.g. 0.3)")
    ident["prior_width"] = {**_PRIOR_WIDTHS, **widths}
    lo, hi = ident["emg_gain"]
    if not 0 < lo <= hi:
        raise DataError(f"{path}: field 'identification.emg_gain' = [{lo}, {hi}] must satisfy "
                        "0 < low <= high, e.g. [0.05, 1.0]")
    lo, hi = ident["unmeasured_activation"]
    if not 0 <= lo <= hi <= 1:
        raise DataError(f"{path}: field 'identification.unmeasured_activation' = [{lo}, {hi}] "
                        "must satisfy 0 <= low <= high <= 1 (activation), e.g. [0.0, 0.3]")
    lo, hi = ident["delay_s"]
    if not 0 <= lo <= hi <= 0.5:
        raise DataError(f"{path}: field 'identification.delay_s' = [{lo}, {hi}] must satisfy "
                        "0 <= low <= high <= 0.5 [s], e.g. [0.01, 0.1]")
    for k in ("f_max", "l_opt", "l_ts"):
        lo, hi = ident[k]
        if not 0 < lo <= 1 <= hi:
            raise DataError(f"{path}: field 'identification.{k}' = [{lo}, {hi}] must bracket 1 "
                            "(fractions of the nominal value), e.g. [0.5, 1.5]")

    act = top.sub("activation", required=False)
    activation = from_table(ActivationSpec, act)
    if not (0 < activation.tau_act_s <= 1 and 0 < activation.tau_deact_s <= 1):
        raise DataError(f"{path}: fields 'activation.tau_act_s'/'tau_deact_s' must be in (0, 1] "
                        "[s] (De Groote 2016: 0.015 / 0.060)")

    g = top.sub("geometry")
    src = g.get("source", ("choice", ("muscle_analysis", "polynomial")))
    geometry = GeometrySpec(
        src, g.get("degree", int, 5),
        length_table=g.get("length_table", str, None) if src == "muscle_analysis" else None,
        motion=g.get("motion", str, None),
        moment_arm_tables=g.get("moment_arm_tables", ("map", str), {}),
        centre_rad=g.get("centre_rad", ("list", float), ()),
        scale_rad=g.get("scale_rad", ("list", float), ()),
        coefficients_m=g.get("coefficients_m", ("map", ("list", float)), {}),
        held_coordinates_rad=g.get("held_coordinates_rad", ("map", float), {}),
    )
    g.finish()
    check_held(path, "geometry.held_coordinates_rad", geometry.held_coordinates_rad,
                labels.coordinates, src)
    if src == "polynomial":
        for mname in names:
            if mname not in geometry.coefficients_m:
                raise DataError(f"{path}: field 'geometry.coefficients_m' has no entry for muscle "
                                f"'{mname}'; add its polynomial coefficients")

    n_q = len(labels.coordinates)

    def trial(f: _Fields) -> TrialSpec:
        ts = TrialSpec(f.get("subject", str), f.get("name", str), f.get("emg", str),
                       f.get("kinematics", str), f.get("forces", str, None),
                       f.get("coordinate_sign", ("list", float), ()),
                       f.get("coordinate_offset_rad", ("list", float), ()),
                       f.get("rename_columns", ("map", str), {}))
        for key in ("coordinate_sign", "coordinate_offset_rad"):
            v = getattr(ts, key)
            if v and len(v) != n_q:
                raise f._err(key, f"must hold {n_q} value(s), one per labels.coordinates")
        if any(x not in (-1.0, 1.0) for x in ts.coordinate_sign):
            raise f._err("coordinate_sign", f"= {list(ts.coordinate_sign)} must hold 1 or -1")
        if any(not np.isfinite(x) for x in ts.coordinate_offset_rad):
            raise f._err("coordinate_offset_rad", "must hold finite angles [rad]")
        return ts

    trials = _table_list(top, raw, "trials", "trial", trial)
    ids = [t.id for t in trials]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{path}: trial '{dup}' is listed twice under [[trials]]; rename one")

    s = top.sub("split", required=False)
    split = from_table(SplitSpec, s)
    if not 0.0 <= split.validation_fraction < 0.9:
        raise DataError(f"{path}: field 'split.validation_fraction' = "
                        f"{split.validation_fraction} must be in [0, 0.9) (0: no validation)")
    if not 0.0 <= split.test_fraction < 0.9:
        raise DataError(f"{path}: field 'split.test_fraction' = {split.test_fraction} must be in "
                        "[0, 0.9) (0: test trials are named in split.test)")
    if split.test and split.test_fraction > 0:
        raise DataError(f"{path}: fields 'split.test' and 'split.test_fraction' both given; "
                        "name test trials or hold out the end of every trial, not both")
    known = set(ids) if split.by == "trial" else {t.subject for t in trials}
    for field in ("test", "validation"):
        for item in getattr(split, field):
            if item not in known:
                raise DataError(f"{path}: field 'split.{field}' names unknown "
                                f"{'trial' if split.by == 'trial' else 'subject'} '{item}' "
                                f"(known: {', '.join(sorted(known))})")
    if not split.test and split.test_fraction == 0:
        raise DataError(f"{path}: field 'split.test' is empty; name the test trials or subjects "
                        "(or hold out the end of every trial with split.test_fraction)")

    w = top.sub("windows", required=False)
    windows = from_table(WindowSpec, w)
    if windows.stride < 1 or windows.length_s <= 0 or not 0 <= windows.history_s <= windows.length_s:
        raise DataError(f"{path}: fields 'windows.*' need stride >= 1, length_s > 0 and "
                        "0 <= history_s <= length_s")
    subjects = subjects_of(top, raw, emg.channels, {t.subject for t in trials},
                         labels.coordinates, src)
    check_sources(path, emg, muscles, geometry, subjects, {t.subject for t in trials}, osim)
    person = person_spec.parse(top.sub("person", required=False),
                               geometry.held_coordinates_rad)
    top.finish()
    return DataSpec(path, name, root, emg, labels, BodySpec(model, params), tuple(muscles),
                    ident, geometry, tuple(trials), split, windows, tuple(subjects), activation,
                    text, osim, tendon, tuple(notes), person)
