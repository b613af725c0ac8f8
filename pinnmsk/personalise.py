"""The model of the person (:mod:`pinnmsk.person`) applied to a loaded dataset: each subject's
training motion and EMG gathered (:func:`motion_of`), the identification run for all subjects
at once and its report (:func:`personalise`), which ``prepare`` and ``experiments.diagnose``
read.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from pinnmsk import diagnostics, geometry, msk, ode
from pinnmsk.data.person_spec import PARAMETERS
from pinnmsk.person import Motion, identify, person_model, priors_for, terms_all


def motion_of(data, trials, delay_s: float, unmeasured: np.ndarray) -> tuple[Motion, np.ndarray]:
    """The :class:`Motion` of ``trials`` (each subject's concatenated, padded; derivatives by
    :func:`pinnmsk.diagnostics.derivatives`) and N_eff (S,) before the correlation time."""
    rate = data.rate_hz
    shift = int(round(delay_s * rate))
    per = []
    for s in range(len(data.subjects)):
        mine = [t for t in trials if t.subject == s]
        parts = []
        for t in mine:
            qd, qdd = diagnostics.derivatives(t.time_s, t.q_rad.astype(np.float64))
            u = np.concatenate([np.repeat(t.excitation[:1], shift, 0), t.excitation])[:len(t.q_rad)]
            start = np.zeros(len(t.q_rad))
            start[0] = 1.0
            parts.append((t.q_rad, qd, qdd, u, start, np.ones(len(t.q_rad))))
        per.append([np.concatenate(x) for x in zip(*parts)] if parts else None)
    length = max(len(p[0]) for p in per if p is not None)
    n, m = data.model_of(0).n_coords, data.model_of(0).n_muscles
    cols = []
    for p in per:
        if p is None:  # a subject without training trials: nothing to fit (all padding)
            p = [np.zeros((1, n)), np.zeros((1, n)), np.zeros((1, n)), np.zeros((1, m)),
                 np.ones(1), np.zeros(1)]
        pad = length - len(p[0])
        cols.append([np.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)) for x in p])
    arrays = [jnp.asarray(np.stack(c), jnp.float32) for c in zip(*cols)]
    seconds = np.asarray([c[5].sum() / rate for c in cols])
    unmeasured = np.broadcast_to(np.asarray(unmeasured, np.float32), (len(cols), m))
    return Motion(*arrays, jnp.asarray(unmeasured)), seconds


def personalise(data, trials, tendon: str):
    """(``data`` with each subject's identified model, report) from the training ``trials``;
    ``data`` unchanged where its spec has no ``[person]`` table (report None)."""
    person = data.spec.person
    if person is None:
        return data, None
    spec = data.spec
    ident = spec.identification
    held_names = list(spec.geometry.held_coordinates_rad)
    held_geo = None
    if held_names and all(data.held_geometry.get(s) is not None for s in data.subjects):
        held_geo = ode.tree_stack([data.held_geometry[s] for s in data.subjects])
    held = np.asarray([spec.geometry.held_coordinates_rad[c] for c in held_names], np.float32)
    if held_geo is None:
        held = np.zeros(0, np.float32)
    base = data.models
    n, m = data.model_of(0).n_coords, data.model_of(0).n_muscles
    priors = priors_for(person, held, ident["emg_gain"], m, n)
    unmeasured = np.where(spec.measured, np.nan, 0.5 * sum(ident["unmeasured_activation"]))
    motion, seconds = motion_of(data, trials, 0.5 * sum(ident["delay_s"]), unmeasured)
    n_eff = jnp.asarray(np.maximum(seconds / person.correlation_s, 1.0), jnp.float32)
    vals, sd = identify(base, held_geo, motion, priors, n_eff, person, 1.0 / data.rate_hz,
                        tendon)
    vals = {k: np.asarray(v, float) for k, v in vals.items()}
    sd = {k: np.asarray(v, float) for k, v in sd.items()}
    centre = {k: np.broadcast_to(np.asarray(t[0]), vals[k].shape)
              for k, t in priors.table.items()}
    models = []
    for s, subj in enumerate(data.subjects):
        own = {k: jnp.asarray(v[s], jnp.float32) for k, v in vals.items()}
        model, _ = person_model(data.model_of(s), None, own)
        if held_geo is not None:
            model = model.replace(geometry=geometry.hold(
                data.held_geometry[subj], range(n), {n + i: float(own["held"][i])
                                                     for i in range(len(held))}))
        models.append(model)
    fitted = _fit_report(base, held_geo, motion, priors, vals, centre, person,
                         1.0 / data.rate_hz, tendon)
    report = {"identified": list(person.identify), "tendon": tendon,
              "subjects": {}}
    names = {"held": held_names, "l_ts": list(spec.muscle_names),
             "passive_strain": list(spec.muscle_names), "f_max": list(spec.muscle_names),
             "emg_gain": list(spec.muscle_names), "stiffness": list(spec.labels.coordinates)}
    units = {"held": "rad", "l_ts": "scale of the lab's", "passive_strain": "strain",
             "f_max": "scale of the lab's", "emg_gain": "per unit envelope",
             "stiffness": "N m/rad added"}
    for s, subj in enumerate(data.subjects):
        rows = {}
        for k in PARAMETERS:
            if not np.any(np.asarray(priors.free[k]) > 0):
                continue
            t = np.asarray(priors.table[k])
            rows[k] = {"unit": units[k], "names": names[k],
                       "prior": {"centre": t[0].tolist(), "width": t[1].tolist(),
                                 "bounds": [t[2].tolist(), t[3].tolist()]},
                       "posterior": vals[k][s].tolist(), "posterior_sd": sd[k][s].tolist()}
        report["subjects"][subj] = {"parameters": rows, "training_s": float(seconds[s]),
                                    **{k: v[s] for k, v in fitted.items()}}
    out = dataclasses.replace(data, models=msk.stack(models))
    return out, report


def _fit_report(base, held_geo, motion, priors, vals, centre, person, dt_s, tendon) -> dict:
    """Per subject (lists over S): torque RMS the motion needs, the residual RMS with the lab's
    model and with the identified one, and each one's peak force / F_max per muscle."""
    out = {}
    for tag, v in (("lab", centre), ("identified", vals)):
        own = {k: jnp.asarray(x, jnp.float32) for k, x in v.items()}  # (S, size) each
        t = jax.tree_util.tree_map(np.asarray, terms_all(own, base, held_geo, motion, dt_s,
                                                          tendon))
        w = np.asarray(motion.weight) > 0  # (S, T)
        rms = lambda x: [float(np.sqrt(np.mean(x[s][w[s]] ** 2))) for s in range(len(w))]
        if tag == "lab":
            out["need_rms_nm"] = rms(t["need"])
        out[f"residual_rms_nm_{tag}"] = rms(t["need"] - t["muscle"])
        out[f"peak_force_over_f_max_{tag}"] = [
            (np.nanmax(t["forces"][s][w[s]], 0) / t["f_max"][s]).tolist() for s in range(len(w))]
    return out
