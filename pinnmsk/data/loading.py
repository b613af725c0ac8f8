"""Load a whole dataset from its spec's files: EMG → excitation envelopes, labels in SI units at
a common rate, MVC/rest normalisers from their recordings, the musculoskeletal model the spec
and its OpenSim files describe, and a sample's simulated truth. The pure steps (checks, filters,
splits, windows) are in :mod:`pinnmsk.data.dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time as _time

import jax.numpy as jnp
import numpy as np

from pinnmsk import bodies, emg, geometry, msk, muscle
from pinnmsk.data import opensim
from pinnmsk.data.checks import (EnvelopeFn, _check_angle_units, _check_duplicates,
                                 _check_range, _check_time, _interp_nonfinite, _nonfinite_runs,
                                 _to_label_rate, check_emg_levels, check_live_channels,
                                 check_moving_angles, check_outliers, check_within_geometry,
                                 clipped_channels, emg_levels, in_muscle_order, linear_drift,
                                 mvc_value, rest_value)
from pinnmsk.data.dataset import Dataset, Trial, split_trials
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
        vals = opensim.read_osim_muscles(spec.resolve(osim), osim_names)
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
    q = opensim.grid_coordinates(table, list(coords) + list(held), motion)  # (N, n + held)
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
        if not opensim.same_rows(table, arm_tab):
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


def _read(spec: DataSpec, path: str, rate_hz: float, rename: dict | None = None
          ) -> opensim.Table:
    """Any data file of the spec; ``rate_hz`` is the row rate of a text export (no time column);
    ``rename`` maps the file's column names to the spec's (a trial's ``rename_columns``)."""
    tab = opensim.read_table(path, rate_hz, spec.text.incomplete_rows, spec.text.columns)
    if rename:
        unknown = [c for c in rename if c not in tab.columns]
        if unknown:
            raise DataError(f"{path}: rename_columns names column '{unknown[0]}', which the file "
                            f"lacks (columns: {', '.join(tab.columns)}); fix the trial's "
                            "rename_columns")
        tab = dataclasses.replace(tab, columns=tuple(rename.get(c, c) for c in tab.columns))
    return tab


def _read_emg(spec: DataSpec, path: str, channels, allow_nonfinite: bool, rename=None):
    """(table, raw (T, C) in ``channels`` order, bad rows (T,)) of one EMG file, checked."""
    tab = _read(spec, path, spec.emg.sampling_rate_hz, rename)
    for c in channels:
        if c not in tab.columns:
            raise DataError(f"{path}: no EMG column '{c}' named in emg.channels "
                            f"(columns: {', '.join(tab.columns)}); fix the data spec")
    _check_time(path, tab.time, spec.emg.sampling_rate_hz, "emg.sampling_rate_hz")
    raw = tab.select(list(channels))
    if spec.emg.outliers == "drop":  # outliers become gaps, handled as NaN samples are
        raw = np.where(emg.amplitude_outliers(np.nan_to_num(raw), spec.emg.outlier_z), np.nan,
                       raw)
        allow_nonfinite = True
    bad = _nonfinite_runs(path, raw, list(channels), "EMG", allow_nonfinite)
    raw = _interp_nonfinite(raw, bad)
    check_live_channels(path, raw, list(channels))
    return tab, check_outliers(spec, path, raw, list(channels)), bad


def _load_trial(spec: DataSpec, ts, envelope_fn: EnvelopeFn, min_samples: int):
    allow = spec.windows.drop_nonfinite
    rate = spec.labels.rate_hz
    # --- EMG
    e_path = spec.resolve(ts.emg)
    channels = list(spec.emg.channels)
    e_tab, raw, bad_emg = _read_emg(spec, e_path, channels, allow, ts.rename_columns)
    envelope = envelope_fn(e_path, raw)

    # --- kinematics
    k_path = spec.resolve(ts.kinematics)
    file_rate = spec.labels.file_rate_hz or rate
    k_tab = _read(spec, k_path, file_rate, ts.rename_columns)
    _check_time(k_path, k_tab.time, file_rate,
                "labels.file_rate_hz" if spec.labels.file_rate_hz else "labels.rate_hz")
    units = spec.labels.coordinate_units
    q = k_tab.select(spec.labels.coordinates)
    _check_range(k_path, q, spec.labels.coordinates, "joint angles")
    if units == "file":
        _check_angle_units(k_path, q, spec.labels.coordinates, k_tab.in_degrees,
                           k_tab.time[-1] - k_tab.time[0])
    if units == "degrees" or (units == "file" and k_tab.in_degrees):
        q = np.deg2rad(q)
    if ts.coordinate_sign:
        q = q * np.asarray(ts.coordinate_sign)[None]
    if ts.coordinate_offset_rad:
        q = q + np.asarray(ts.coordinate_offset_rad)[None]
    bad_q = _nonfinite_runs(k_path, q, spec.labels.coordinates, "joint angles", allow)
    if file_rate != rate:
        k_tab, q, bad_q = _to_label_rate(k_tab, q, bad_q, file_rate, rate)

    # --- overlap and common time base (label times inside the EMG range)
    lo = max(e_tab.time[0], k_tab.time[0])
    hi = min(e_tab.time[-1], k_tab.time[-1])
    if hi <= lo:
        raise DataError(f"{k_path}: label times [{k_tab.time[0]:.3f}, {k_tab.time[-1]:.3f}] s do "
                        f"not overlap EMG times [{e_tab.time[0]:.3f}, {e_tab.time[-1]:.3f}] s in "
                        f"{e_path}; check that both files belong to the same trial")
    keep = (k_tab.time >= lo - 1e-9) & (k_tab.time <= hi + 1e-9)
    lost_s = (k_tab.time[-1] - k_tab.time[0]) - (hi - lo)
    if lost_s > max(1.0, 0.1 * (k_tab.time[-1] - k_tab.time[0])):
        raise DataError(f"{k_path}: only {hi - lo:.2f} s of its {k_tab.time[-1] - k_tab.time[0]:.2f}"
                        f" s of labels lie within the EMG recording {e_path} "
                        f"({e_tab.time[0]:.2f}-{e_tab.time[-1]:.2f} s): {lost_s:.2f} s of labels "
                        "would be dropped; check that the files belong together, or trim the "
                        "kinematics to the EMG")
    t = k_tab.time[keep]
    check_moving_angles(k_path, q[keep], spec.labels.coordinates)
    notes = []
    for c, d in zip(spec.labels.coordinates, linear_drift(t, q[keep])):
        if d > 0.4:
            notes.append(f"{k_path}: '{c}' trends steadily by {100 * d:.0f} % of the range of its "
                         "motion over the trial: a drifting goniometer? (angles are trained as "
                         "recorded)")
    unused = (lo - e_tab.time[0]) + (e_tab.time[-1] - hi)
    if unused > max(0.05, 2.0 / rate):
        notes.append(f"{e_path}: {unused:.2f} s of its {e_tab.time[-1] - e_tab.time[0]:.2f} s of "
                     f"EMG lie outside the labels of {k_path} ({k_tab.time[0]:.2f}-"
                     f"{k_tab.time[-1]:.2f} s) and are not used")
    if lost_s > 2.0 / rate:
        notes.append(f"{k_path}: {lost_s:.2f} s of labels lie outside the EMG of {e_path} and "
                     "are not used")
    clipped = clipped_channels(raw)
    if clipped:
        notes.append(f"{e_path}: EMG column(s) {', '.join(channels[c] for c in clipped)} sit at "
                     "their extreme value in over 0.1 % of samples: clipped at the amplifier's "
                     "range? their envelope is underestimated where they saturate")
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
        f_tab = _read(spec, f_path, rate, ts.rename_columns)
        _check_time(f_path, f_tab.time, rate, "labels.rate_hz")
        fv = f_tab.select(spec.muscle_names)
        _check_range(f_path, fv, spec.muscle_names, "muscle forces")
        bad_f = _nonfinite_runs(f_path, fv, spec.muscle_names, "muscle forces", allow)
        fv = _interp_nonfinite(fv, bad_f)
        forces = np.stack([np.interp(t, f_tab.time, fv[:, j]) for j in range(fv.shape[1])], 1)
        valid &= ~(np.interp(t, f_tab.time, bad_f.astype(float)) > 0)
    return t, in_muscle_order(spec, env_t), q, forces, valid, notes


def _recording_envelope(spec: DataSpec, rel: str, channels, envelope_fn: EnvelopeFn):
    path = spec.resolve(rel)
    _, raw, _ = _read_emg(spec, path, channels, allow_nonfinite=False)
    return path, envelope_fn(path, raw)


def _normalisers(spec: DataSpec, subjects, trials, envelope_fn: EnvelopeFn, window: int):
    """(mvc (S, M), rest (S, M), sources) per subject, muscle order.

    MVC: typed ``mvc_v`` (subject's, then dataset-wide) or the peak moving mean of the subject's
    MVC recordings (the largest over recordings that name the channel); without MVC
    (``robust_max``) a high quantile of the subject's training envelopes. Rest: typed
    ``rest_v`` or the mean envelope of the subject's rest recording, else 0.
    """
    e = spec.emg
    chans = list(e.channels)
    fs = e.sampling_rate_hz
    train = split_trials(spec, trials, window)["train"]
    mvc = np.zeros((len(subjects), len(chans)))
    rest = np.zeros((len(subjects), len(chans)))
    sources = {}
    for s, subj in enumerate(subjects):
        sub = spec.subject(subj)
        src = {}
        # rest first: the robust maximum must exceed it
        if sub.rest:
            path, env = _recording_envelope(spec, sub.rest, chans, envelope_fn)
            try:
                rest[s] = rest_value(env, fs, e.rest_skip_s)
            except ValueError as err:
                raise DataError(f"{path}: {err}; use a longer rest recording") from None
            src["rest"] = {c: sub.rest for c in chans}
        else:
            src["rest"] = {}
        for i, c in enumerate(chans):
            if c in sub.rest_v or c in e.rest_v:
                rest[s, i] = sub.rest_v.get(c, e.rest_v.get(c))
                src["rest"][c] = "typed"
            src["rest"].setdefault(c, "none (0)")
        if e.normalisation == "mvc":
            best = np.full(len(chans), -np.inf)
            src["mvc"] = {}
            for rec in sub.mvc:
                path, env = _recording_envelope(spec, rec.file, chans, envelope_fn)
                try:
                    peak = mvc_value(env, fs, e.mvc_window_s)
                except ValueError as err:
                    raise DataError(f"{path}: {err}; use a longer MVC recording or a shorter "
                                    "emg.mvc_window_s") from None
                for c in rec.channels:
                    i = chans.index(c)
                    if peak[i] > best[i]:
                        best[i], src["mvc"][c] = peak[i], rec.file
            for i, c in enumerate(chans):
                if c in sub.mvc_v or (c in e.mvc_v and c not in src["mvc"]):
                    best[i] = sub.mvc_v.get(c, e.mvc_v.get(c))
                    src["mvc"][c] = "typed"
            mine = [t for t in train if t.subject == s]
            if mine:  # an MVC recorded with other gains (another day, another amplifier)
                over = emg_levels(spec, mine).max(0) / best
                if over.max() > 2.0:
                    c = chans[int(np.argmax(over))]
                    raise DataError(
                        f"{spec.resolve(src['mvc'].get(c, spec.path))}: subject '{subj}' "
                        f"exceeds its MVC on channel '{c}' by {over.max():.3g}x in the training "
                        "trials (95th percentile of the envelope): the MVC was recorded with "
                        "other gains or units (another day or amplifier?); record it with the "
                        "trials' settings, type emg.mvc_v, or use emg.normalisation = "
                        "\"robust_max\"")
            mvc[s] = best
        else:
            mine = [t for t in train if t.subject == s] or [t for t in trials if t.subject == s]
            env = np.concatenate([t.raw_envelope[t.valid] for t in mine], axis=0)  # muscle order
            # each channel's column: that of the first muscle it drives
            first = [spec.muscle_names.index(e.channels[c][0]) for c in chans]
            mvc[s] = emg.robust_max(env, e.robust_quantile)[first]
            src["mvc"] = {c: f"robust max ({e.robust_quantile:g} quantile of training EMG)"
                          for c in chans}
        busy = (rest[s] > 0.5 * mvc[s]) & (rest[s] < mvc[s])
        if np.any(busy):
            c = chans[int(np.argmax(busy))]
            raise DataError(f"{spec.resolve(sub.rest) if sub.rest else spec.path}: subject "
                            f"'{subj}' reads {100 * rest[s][busy][0] / mvc[s][busy][0]:.0f} % of "
                            f"its maximum on channel '{c}' at rest: the muscle was not relaxed "
                            "(or the rest and MVC files are mixed up); record rest relaxed, or "
                            "type emg.rest_v")
        low = mvc[s] <= rest[s]
        if np.any(low):
            c = chans[int(np.argmax(low))]
            raise DataError(f"{spec.path}: channel '{c}' of subject '{subj}' has a resting value "
                            f"({rest[s][low][0]:.3g} V) not below its maximum "
                            f"({mvc[s][low][0]:.3g} V, {src['mvc'][c]}); check the rest and MVC "
                            "recordings or values")
        sources[subj] = {"mvc_v": dict(zip(chans, mvc[s].tolist())), "mvc_source": src["mvc"],
                         "rest_v": dict(zip(chans, rest[s].tolist())),
                         "rest_source": src["rest"]}
    # muscles without a channel: normaliser 1, rest 0 (their excitation column stays 0)
    return in_muscle_order(spec, mvc, 1.0), in_muscle_order(spec, rest), sources


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
        t, env, q, forces, valid, trial_notes = _load_trial(spec, ts, envelope_fn, min_samples)
        s = subjects.index(ts.subject)
        for n in trial_notes:
            log(f"  note: {n}")
        notes += trial_notes
        trials.append(Trial(ts.id, s, t, env, q.astype(np.float32),
                            None if forces is None else forces.astype(np.float32), valid, env))
        dropped += int((~valid).sum())
        log(f"  loaded {ts.id} ({i + 1}/{len(spec.trials)}, {_time.time() - t0:.1f} s)")
    _check_duplicates(spec, trials)
    for ts, tr in zip(spec.trials, trials):  # after the duplicates: a copy is named as one
        geo = msk.select(models, tr.subject).geometry
        check_within_geometry(spec.resolve(ts.kinematics), tr.q_rad, spec.labels.coordinates,
                              geo.centre_rad, geo.scale_rad)
    check_emg_levels(spec, trials)
    norm, rest, sources = _normalisers(spec, subjects, trials, envelope_fn, window)
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
