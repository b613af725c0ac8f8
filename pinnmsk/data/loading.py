"""Load a whole dataset from its spec's files: the trials and normalisers
(:mod:`pinnmsk.data.recordings`: EMG → excitation envelopes, labels in SI units at a common
rate, MVC/rest normalisers), the musculoskeletal model the spec and its OpenSim files describe,
and a sample's simulated truth. The pure steps (checks, filters, splits, windows) are in
:mod:`pinnmsk.data.dataset`.
"""

from __future__ import annotations

import json
import os
import sys
import time as _time

import jax.numpy as jnp
import numpy as np

from pinnmsk import bodies, emg, geometry, msk, muscle
from pinnmsk.data import opensim, osim_model
from pinnmsk.data.checks import EnvelopeFn, check_within_geometry
from pinnmsk.data.trial_checks import check_duplicates, check_emg_levels
from pinnmsk.data.dataset import Dataset, Trial
from pinnmsk.data.recordings import load_trial, normalisers
from pinnmsk.errors import DataError
from pinnmsk.data.spec import DataSpec
from pinnmsk.msk import MskModel


# --------------------------------------------------------------------------- model from spec


def _muscle_params(spec: DataSpec, subject: str) -> tuple[muscle.MuscleParams, str]:
    """The subject's nominal muscle parameters: from its ``.osim`` where the spec names one,
    else from ``[[muscles]]``. Returns (params, source description)."""
    sub = spec.subject(subject)
    names = spec.muscle_names
    osim = sub.osim or spec.osim
    if osim:
        osim_names = [m.osim_name or m.name for m in spec.muscles]
        vals = osim_model.read_osim_muscles(spec.resolve(osim), osim_names)
        rows = [vals[n] for n in osim_names]
        source = osim
    else:
        rows = [{k: getattr(m, k) for k in ("f_max_n", "l_opt_m", "l_ts_m", "phi_opt_rad")}
                for m in spec.muscles]
        source = "[[muscles]]"
    for n, r in zip(names, rows):
        for k in ("f_max_n", "l_opt_m", "l_ts_m"):
            if not (np.isfinite(r[k]) and r[k] > 0):
                raise DataError(f"{spec.path if source == '[[muscles]]' else spec.resolve(source)}"
                                f": muscle '{n}' has {k} = {r[k]}; it must be a positive number")
        phi = r["phi_opt_rad"] or 0.0
        if not 0.0 <= phi < np.pi / 2:
            raise DataError(f"{spec.path}: muscle '{n}' pennation {phi} rad must be in [0, pi/2)")
    params = muscle.MuscleParams.create(
        f_max_n=[r["f_max_n"] for r in rows], l_opt_m=[r["l_opt_m"] for r in rows],
        l_ts_m=[r["l_ts_m"] for r in rows], phi_opt_rad=[r["phi_opt_rad"] or 0.0 for r in rows],
        tau_act_s=spec.activation.tau_act_s, tau_deact_s=spec.activation.tau_deact_s)
    return params, source


def _geometry(spec: DataSpec, subject: str) -> tuple[geometry.PolynomialGeometry, dict, object]:
    """The subject's length polynomial (fitted to its MuscleAnalysis table), a report of the
    fitted moment arms against the MomentArm tables the spec names: {coordinate: max error [m]},
    and the polynomial over the recorded and the held coordinates (None when none is held)."""
    g, sub = spec.geometry, spec.subject(subject)
    coords = spec.labels.coordinates
    if g.source != "muscle_analysis":
        n = len(coords)
        exps = geometry.monomial_exponents(n, g.degree)
        coef = np.asarray([g.coefficients_m[m] for m in spec.muscle_names], float)
        if coef.shape[1] != len(exps) or len(g.centre_rad) != n or len(g.scale_rad) != n:
            raise DataError(f"{spec.path}: field 'geometry.coefficients_m' needs {len(exps)} "
                            f"coefficients per muscle and centre_rad/scale_rad {n} values each for "
                            f"degree {g.degree} in {n} coordinate(s)")
        return geometry.PolynomialGeometry(jnp.asarray(coef, jnp.float32),
                                           jnp.asarray(g.centre_rad, jnp.float32),
                                           jnp.asarray(g.scale_rad, jnp.float32),
                                           geometry.as_static(exps)), {}, None
    table_path = spec.resolve(sub.length_table or g.length_table)
    motion_rel = sub.motion if sub.length_table else (sub.motion or g.motion)
    motion = opensim.read_table(spec.resolve(motion_rel)) if motion_rel else None
    table = opensim.read_table(table_path)
    held = {**g.held_coordinates_rad, **sub.held_coordinates_rad}
    q = osim_model.grid_coordinates(table, list(coords) + list(held), motion)  # (N, n + held)
    lengths = table.select(spec.muscle_names)
    try:
        geo = geometry.fit_polynomial(q, lengths, g.degree)
    except ValueError as e:
        raise DataError(f"{table_path}: {e}") from None
    report = {}
    arm_tables = sub.moment_arm_tables or g.moment_arm_tables
    fitted = np.asarray(geometry.moment_arms_along(geo, jnp.asarray(q, jnp.float32))) \
        if arm_tables else None  # (N, M, n + held): the fit's quality over the whole table
    for c, rel in arm_tables.items():
        if c in held:
            continue  # not modelled: the muscles' torque about it is not used
        if c not in coords:
            raise DataError(f"{spec.path}: field 'moment_arm_tables' names coordinate '{c}', "
                            f"which is not in labels.coordinates ({', '.join(coords)})")
        arm_tab = opensim.read_table(spec.resolve(rel))
        if not osim_model.same_rows(table, arm_tab):
            raise DataError(f"{arm_tab.path}: its rows do not match the Length table "
                            f"{table_path} ({len(arm_tab.time)} vs {len(table.time)} rows); give "
                            "the MomentArm table of the same analysis")
        err = np.abs(fitted[:, :, coords.index(c)] - arm_tab.select(spec.muscle_names))
        report[c] = float(err.max())
    if held:
        lo, hi = q[:, len(coords):].min(0), q[:, len(coords):].max(0)
        for (c, v), a, b in zip(held.items(), lo, hi):
            if not a - 1e-6 <= v <= b + 1e-6:
                raise DataError(f"{table_path}: held coordinate '{c}' = {v:.4g} rad lies outside "
                                f"the table's range {a:.4g}..{b:.4g} rad; hold it inside, or "
                                "give a table that covers it")
        full = geo
        geo = geometry.hold(geo, range(len(coords)),
                            {len(coords) + i: v for i, v in enumerate(held.values())})
        return geo, report, full
    return geo, report, None


def build_model(spec: DataSpec, subject: str | None = None) -> MskModel:
    """One subject's model (default: the first subject of the spec's trials)."""
    subject = subject or spec.trials[0].subject
    return msk.select(build_models(spec, [subject])[0], 0)


def build_models(spec: DataSpec, subjects) -> tuple[MskModel, dict]:
    """Each subject's body, muscles and geometry, stacked (S, ...), and a report per subject
    {"muscles": source, "moment_arm_max_error_m": {coordinate: m}, "held_geometry": the length
    polynomial over the recorded then the held coordinates, or None}."""
    kind = bodies.BODIES[spec.body.model]
    body_cls = kind.resolve()
    p = dict(spec.body.params)
    for key in kind.required:
        if key not in p:
            raise DataError(f"{spec.path}: field 'body.{key}' is missing; add it [SI units]")
    for key, v in p.items():
        a = np.asarray(v, float)
        if not np.isfinite(a).all() or ((a < 0).any() and key not in kind.signed):
            raise DataError(f"{spec.path}: field 'body.{key}' = {v} must be a finite value >= 0")
    body = body_cls(**{k: jnp.asarray(v, jnp.float32) for k, v in p.items()})
    models, report = [], {}
    cache = {}
    for subj in subjects:
        params, source = _muscle_params(spec, subj)
        sub = spec.subject(subj)
        key = (sub.length_table, sub.motion, tuple(sorted(sub.moment_arm_tables.items())),
               tuple(sorted(sub.held_coordinates_rad.items())))
        if key not in cache:
            cache[key] = _geometry(spec, subj)
        geo, arms, full = cache[key]
        models.append(MskModel(body, params, geo))
        report[subj] = {"muscles": source, "moment_arm_max_error_m": arms, "held_geometry": full}
    return msk.stack(models), report


def load_dataset(spec: DataSpec, progress: bool = False) -> Dataset:
    """Read every trial of ``spec``; errors are ``DataError`` naming the file and field."""
    log = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)
    envelope_fn = EnvelopeFn(spec)
    for note in spec.notes:
        log(f"  note: {note}")
    subjects = tuple(dict.fromkeys(t.subject for t in spec.trials))
    models, geo_report = build_models(spec, subjects)
    held_geometry = {subj: rep.pop("held_geometry") for subj, rep in geo_report.items()}
    for subj, rep in geo_report.items():
        for c, err in rep["moment_arm_max_error_m"].items():
            log(f"  geometry {subj}: fitted moment arms vs the MomentArm table ({c}): max error "
                f"{1e3 * err:.3f} mm")
    window = int(round(spec.windows.length_s * spec.labels.rate_hz))
    min_samples = window + 1
    trials, dropped, notes = [], 0, []
    t0 = _time.time()
    for i, ts in enumerate(spec.trials):
        t, env, q, forces, valid, trial_notes = load_trial(spec, ts, envelope_fn, min_samples)
        s = subjects.index(ts.subject)
        for n in trial_notes:
            log(f"  note: {n}")
        notes += trial_notes
        trials.append(Trial(ts.id, s, t, env, q.astype(np.float32),
                            None if forces is None else forces.astype(np.float32), valid, env))
        dropped += int((~valid).sum())
        log(f"  loaded {ts.id} ({i + 1}/{len(spec.trials)}, {_time.time() - t0:.1f} s)")
    check_duplicates(spec, trials)
    for ts, tr in zip(spec.trials, trials):  # after the duplicates: a copy is named as one
        geo = msk.select(models, tr.subject).geometry
        check_within_geometry(spec.resolve(ts.kinematics), tr.q_rad, spec.labels.coordinates,
                              geo.centre_rad, geo.scale_rad)
    check_emg_levels(spec, trials)
    norm, rest, sources = normalisers(spec, subjects, trials, envelope_fn, window)
    for tr in trials:
        tr.excitation = emg.normalise(tr.raw_envelope, norm[tr.subject], rest[tr.subject],
                                      spec.emg.rest_subtraction == "quadrature"
                                      ).astype(np.float32)
    return Dataset(spec, trials, subjects, norm, models, dropped, rest, sources, geo_report,
                   notes, held_geometry)


def true_scales(spec, subject: str) -> dict | None:
    """A simulated subject's true muscle parameters {muscle: {f_max, l_opt, l_ts}} in SI units,
    when the dataset ships its simulation truth (``model.json``, for tests and diagnostics only):
    ``<root>/<subject>/model.json`` (OpenSim samples: "muscles" lists the simulated muscles as
    they are, already scaled by "scale"; arm26 also lists the generic "nominal_muscles") or
    ``<root>/model.json`` (``experiments.simulate``: nominal spec values × per-subject scales)."""
    own = os.path.join(spec.root, subject, "model.json")
    try:
        if os.path.exists(own):
            with open(own) as f:
                doc = json.load(f)
            return {m["name"]: {"f_max": m["max_isometric_force"],
                                "l_opt": m["optimal_fiber_length"],
                                "l_ts": m["tendon_slack_length"]}
                    for m in doc["muscles"]}
        with open(os.path.join(spec.root, "model.json")) as f:
            doc = json.load(f)
        sc = doc["subjects"][subject]["scales"]
        return {m.name: {"f_max": m.f_max_n * sc["f_max"][i], "l_opt": m.l_opt_m * sc["l_opt"][i],
                         "l_ts": m.l_ts_m * sc["l_ts"][i]} for i, m in enumerate(spec.muscles)}
    except (OSError, ValueError, KeyError, AttributeError, TypeError, IndexError):
        return None
