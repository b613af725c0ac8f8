"""Evaluation of trained parameters, pure (no files): validation scores for model selection,
test metrics pooled / per trial / per subject, paired comparisons with λ = 0, the torque budget
along the recorded motion and the identified parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import diagnostics, metrics, physio, train
from pinnmsk.data import dataset as ds_lib

if TYPE_CHECKING:  # prepare builds Prepared; runner imports this module
    from pinnmsk.prepare import Prepared


def validation_scorer(prep: Prepared, sweep: bool, batch: int = 1024):
    """``score(net_variables) -> (K,)``: the validation data loss at τ = 0, mean over windows of
    Σ_j ((q̂_j − q_j)/σ_q,j)²/n (+ the same for forces where they are labelled); the criterion
    for the best epoch and for λ of a sweep. None when there is no validation data."""
    v = prep.val
    if v is None or len(v) == 0:
        return None
    c = prep.consts
    n = len(v)
    pad = (-n) % batch
    emg = jnp.asarray(np.concatenate([v.emg, np.repeat(v.emg[-1:], pad, 0)]))
    q = jnp.asarray(np.concatenate([v.q[:, -1], np.repeat(v.q[-1:, -1], pad, 0)]))
    has_f = v.has_forces & np.isfinite(v.forces[:, -1]).all(1)
    f = jnp.asarray(np.nan_to_num(np.concatenate([v.forces[:, -1],
                                                  np.repeat(v.forces[-1:, -1], pad, 0)])))
    w = jnp.asarray(np.concatenate([np.ones(n), np.zeros(pad)]), jnp.float32)
    wf = jnp.asarray(np.concatenate([has_f, np.zeros(pad, bool)]), jnp.float32)
    predict = train.make_predict(prep.net)

    def score(variables):
        total = 0.0
        for lo in range(0, n + pad, batch):
            sl = slice(lo, lo + batch)
            qh, fh = predict(variables, emg[sl])
            eq = jnp.mean(((qh - q[sl]) / c.sigma_q) ** 2, axis=-1)
            ef = jnp.mean(((fh - f[sl]) / c.sigma_f) ** 2, axis=-1)
            total = total + jnp.sum(w[sl] * eq + wf[sl] * ef)
        return total / n

    fn = jax.jit(jax.vmap(score) if sweep else score)
    return lambda variables: np.atleast_1d(np.asarray(jax.device_get(fn(variables)), float))


def validation_by_trial(prep: Prepared, params) -> np.ndarray:
    """The validation score of :func:`validation_scorer` per validation trial (V,): the same
    loss, averaged over each trial's windows (for paired comparisons between models)."""
    c = prep.consts
    out = []
    for tr in prep.val_trials:
        w = ds_lib.make_windows([tr], prep.window, 1)
        qh, fh = train.predict_windows(prep.predict, params["net"], w.emg)
        loss = np.mean(((qh - w.q[:, -1]) / np.asarray(c.sigma_q)) ** 2, axis=-1)
        has_f = prep.val.has_forces.any() and tr.forces_n is not None
        if has_f:
            loss = loss + np.mean(((fh - w.forces[:, -1]) / np.asarray(c.sigma_f)) ** 2, -1)
        out.append(float(np.mean(loss)))
    return np.asarray(out)


def paired_vs_baseline(scores: np.ndarray, baseline: np.ndarray) -> dict:
    """Per-trial validation scores of a model against the λ = 0 baseline's (V,): the mean
    difference (negative: the model is better), its standard error over trials, t = mean / SE,
    and whether it is beyond noise (t < −2)."""
    d = np.asarray(scores, float) - np.asarray(baseline, float)
    n = len(d)
    se = float(np.std(d, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    t = float(np.mean(d) / se) if n > 1 and se > 0 else float("nan")
    return {"mean_difference": float(np.mean(d)), "standard_error": se, "t": t,
            "n_trials": n, "better_beyond_noise": bool(np.isfinite(t) and t < -2.0)}


def across_seeds(blocks: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds of every number in the test blocks'
    pooled "angle" and "force" metrics: {"angle": {coord: {"r2": {"mean", "sd", "per_seed"}}}}.
    """
    def walk(items):
        if isinstance(items[0], dict):
            return {k: walk([b[k] for b in items]) for k in items[0]
                    if all(isinstance(b, dict) and k in b for b in items)}
        x = np.asarray(items, float)
        return {"mean": float(np.mean(x)),
                "sd": float(np.std(x, ddof=1)) if len(x) > 1 else float("nan"),
                "per_seed": x.tolist()}

    return {k: walk([b[k] for b in blocks]) for k in ("angle", "force")
            if all(k in b for b in blocks)}


def paired_over_seeds(scores: list, baselines: list) -> dict:
    """:func:`paired_vs_baseline` over every (seed, validation trial) pair: ``scores`` and
    ``baselines`` hold one (V,) array per seed. The pairs are treated as independent, so the
    standard error is an optimistic one where seeds agree trial by trial."""
    return {**paired_vs_baseline(np.concatenate(scores), np.concatenate(baselines)),
            "n_seeds": len(scores)}


def evaluate(prep: Prepared, params, trials=None) -> tuple[dict, list]:
    """Metrics over ``trials`` (default: test) at τ = 0, pooled, per trial and per subject, and
    per-trial predictions for plots."""
    trials = prep.test_trials if trials is None else trials
    spec = prep.data.spec
    per_trial = []
    for tr in trials:
        w = ds_lib.make_windows([tr], prep.window, 1)
        q, f = train.predict_windows(prep.predict, params["net"], w.emg)
        per_trial.append({"id": tr.id, "subject": prep.data.subjects[tr.subject],
                          "time_s": tr.time_s[w.end_index], "q_pred": q, "q_true": w.q[:, -1],
                          "f_pred": f,
                          "f_true": w.forces[:, -1] if tr.forces_n is not None else None})

    def block(items):
        has_f = all(p["f_true"] is not None for p in items)
        cat = lambda k: np.concatenate([p[k] for p in items])
        return metrics.evaluation_metrics(cat("q_pred"), cat("q_true"), spec.labels.coordinates,
                                        cat("f_pred") if has_f else None,
                                        cat("f_true") if has_f else None, spec.muscle_names)

    out = block(per_trial)
    out["per_trial"] = {p["id"]: block([p]) for p in per_trial}
    subjects = list(dict.fromkeys(p["subject"] for p in per_trial))
    out["per_subject"] = {s: block([p for p in per_trial if p["subject"] == s])
                          for s in subjects}
    return out, per_trial


def torque_budgets(prep: Prepared, params, per_trial) -> dict:
    """{trial id: :func:`pinnmsk.diagnostics.torque_budget`} of the predicted forces along each
    trial's recorded motion, with the subject's identified model and residual torque."""
    scales = physio.physio_scales(params["physio"], prep.consts.bounds)
    out = {}
    for item in per_trial:
        s = prep.data.subjects.index(item["subject"])
        model = physio.subject_model(prep.data.models, scales, s)
        t, q = item["time_s"], item["q_true"].astype(np.float64)
        qd, qdd = diagnostics.derivatives(t, q)
        res = None
        if prep.consts.residual_torque:
            coef = params["physio"]["residual_torque"][s]
            res = np.asarray(jax.vmap(lambda a, b: physio.residual_torque(
                coef, a, b, prep.consts.tau_scale, prep.consts.residual_knots_rad))(
                    jnp.asarray(q, jnp.float32), jnp.asarray(qd, jnp.float32)))
        out[item["id"]] = diagnostics.torque_budget(model, q, qd, qdd, np.asarray(item["f_pred"]),
                                                    res)
    return out


def identified_params(prep: Prepared, params, truth: dict | None = None) -> dict:
    """Subject-specific parameters: scales of the subject's nominal values and absolute values
    per muscle, the EMG gain and delay (or, for a muscle without a channel, its identified
    constant activation); with the truth where ``truth`` ({subject:
    :func:`pinnmsk.data.loading.true_scales`}) has it."""
    scales = jax.device_get(physio.physio_scales(params["physio"], prep.consts.bounds))
    units = {"f_max": "f_max_n", "l_opt": "l_opt_m", "l_ts": "l_ts_m"}
    measured = prep.data.spec.measured
    out = {}
    for s, subj in enumerate(prep.data.subjects):
        m = prep.data.model_of(s).muscles
        nominal = {"f_max": np.asarray(m.f_max_n), "l_opt": np.asarray(m.l_opt_m),
                   "l_ts": np.asarray(m.l_ts_m)}
        true = (truth or {}).get(subj)
        out[subj] = {}
        for i, mus in enumerate(prep.data.spec.muscle_names):
            d = {}
            for k in ("f_max", "l_opt", "l_ts"):
                d[f"{k}_scale"] = float(scales[k][s, i])
                d[units[k]] = float(scales[k][s, i] * nominal[k][i])
                if true is not None:
                    d[f"{units[k]}_true"] = float(true[mus][k])
            if not measured[i]:
                d["unmeasured_activation"] = float(scales["unmeasured_activation"][s, i])
            else:
                d["emg_gain"] = float(scales["emg_gain"][s, i])
                d["delay_s"] = float(scales["delay_s"][s, i])
            d["activation_shape_a"] = float(scales["shape_a"][s, i])
            out[subj][mus] = d
    return out
