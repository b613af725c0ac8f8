"""Joint moments from EMG on gait trials: the EMG-driven model with a subject's parameters, and
those parameters identified by pinnmsk from training trials' measured moments (no network).

A trial here is :class:`pinnmsk.data.gait_trials.GaitTrial` (geometry given over time: musculotendon
lengths and moment arms per sample; the measured inverse-dynamics moment per degree of
freedom). Everything the model computes is :mod:`pinnmsk.emg_driven`; this module holds the
parameterisation that is identified, the loss, and the metrics of a prediction.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pinnmsk import emg_driven as ed
from pinnmsk.data.ceinms import Subject
from pinnmsk.data.gait_trials import GaitSpec, GaitTrial
from pinnmsk.errors import DataError

# CEINMS's calibration bounds (its calibration setups): strength coefficients 0.5-2.5, shape
# factor -3 to 0 (we allow up to +0.5, where the uncalibrated subject starts), c1 and c2 in
# (-1, 1) (the filter's poles), tendon slack lengths within 15 % of the scaled model's.
STRENGTH_RANGE = (0.5, 2.5)
SHAPE_RANGE = (-3.0, 0.5)
C_BOUND = 0.995
L_TS_CHANGE = 0.15


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Arrays:
    """A trial as device arrays: excitation (S, M), l_mt (T, M), slope (T, T), moment_arm
    (T, D, M), moment (T, D), valid (T,) (1 where the measured moment is usable)."""

    excitation: jax.Array
    l_mt: jax.Array
    slope: jax.Array
    moment_arm: jax.Array
    moment: jax.Array
    valid: jax.Array


def moment_capacity(moment_arm_m: np.ndarray, f_max_n: np.ndarray) -> np.ndarray:
    """(T, D) [N m]: the moment every crossing unit at F_max would make, all pulling one way,
    sum_m |r_dm| F_max,m. A measured moment above it is an inverse-dynamics artefact (at heel
    strike or toe off), not something muscles made."""
    return np.einsum("tdm,m->td", np.abs(moment_arm_m), f_max_n)


def valid_samples(trial: GaitTrial, f_max_n: np.ndarray) -> np.ndarray:
    """(T,) bool: samples where every dof's measured moment is within :func:`moment_capacity`
    (the rule is fixed by the subject's geometry and F_max, before any prediction)."""
    return np.all(np.abs(trial.moment_nm) <= moment_capacity(trial.moment_arm_m, f_max_n), 1)


def to_arrays(trial: GaitTrial, f_max_n: np.ndarray) -> Arrays:
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    return Arrays(f32(trial.excitation), f32(trial.l_mt_m),
                  f32(ed.spline_slope_matrix(trial.time_s)), f32(trial.moment_arm_m),
                  f32(trial.moment_nm), f32(valid_samples(trial, f_max_n)))


def params_of(subject: Subject) -> tuple[ed.MuscleParams, ed.Curves]:
    """The subject's parameters and curves as the model takes them (float32)."""
    f = lambda v: jnp.asarray(v, jnp.float32)
    p = ed.MuscleParams(f(subject.f_max_n), f(subject.l_opt_m), f(subject.l_ts_m),
                        f(subject.pennation_rad), f(subject.strength), f(subject.c1),
                        f(subject.c2), f(subject.shape_factor), f(subject.damping),
                        f(subject.percentage_change))
    names = ("activeForceLength", "passiveForceLength", "forceVelocity", "tendonForceStrain")
    return p, ed.Curves(*[ed.make_spline(*subject.curves[n]) for n in names])


def predict(p: ed.MuscleParams, curves: ed.Curves, x: Arrays) -> tuple[jax.Array, jax.Array]:
    """Forces [N] (T, M) and joint moments [N m] (T, D) of one trial."""
    t = x.l_mt.shape[0]
    act = ed.activation(x.excitation, p.c1, p.c2, p.shape_factor)[-t:]
    force = ed.muscle_force(act, x.l_mt, x.slope, p, curves)
    return force, ed.joint_moments(force, x.moment_arm)


def groups_of(spec: GaitSpec) -> tuple[tuple, np.ndarray]:
    """Units driven by the same channels share strength and activation parameters (as CEINMS's
    calibrations group them). Returns the group names and each unit's group index (M,)."""
    keys = []
    index = []
    for u in spec.units:
        key = "+".join(sorted(spec.excitations[u])) if u in spec.excitations else u
        if key not in keys:
            keys.append(key)
        index.append(keys.index(key))
    return tuple(keys), np.asarray(index)


def _logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _bounded(theta, lo, hi):
    return lo + (hi - lo) * jax.nn.sigmoid(theta)


def init_theta(base: ed.MuscleParams, group: np.ndarray, n_groups: int) -> dict:
    """Unconstrained parameters that reproduce ``base`` (group values: the group's mean)."""
    mean = lambda v: np.array([np.mean(np.asarray(v)[group == g]) for g in range(n_groups)])
    s = (np.clip(mean(base.strength), *STRENGTH_RANGE) - STRENGTH_RANGE[0]) / np.ptp(
        STRENGTH_RANGE)
    a = (np.clip(mean(base.shape_factor), *SHAPE_RANGE) - SHAPE_RANGE[0]) / np.ptp(SHAPE_RANGE)
    return {"strength": jnp.asarray(_logit(s), jnp.float32),
            "shape": jnp.asarray(_logit(a), jnp.float32),
            "c1": jnp.asarray(np.arctanh(np.clip(mean(base.c1) / C_BOUND, -0.999, 0.999)),
                              jnp.float32),
            "c2": jnp.asarray(np.arctanh(np.clip(mean(base.c2) / C_BOUND, -0.999, 0.999)),
                              jnp.float32),
            "l_ts": jnp.zeros(len(group), jnp.float32)}


def apply_theta(theta: dict, base: ed.MuscleParams, group: np.ndarray) -> ed.MuscleParams:
    """The model's parameters from the identified ones (every one inside its bound)."""
    g = jnp.asarray(group)
    return dataclasses.replace(
        base,
        strength=_bounded(theta["strength"], *STRENGTH_RANGE)[g],
        shape_factor=_bounded(theta["shape"], *SHAPE_RANGE)[g],
        c1=C_BOUND * jnp.tanh(theta["c1"])[g],
        c2=C_BOUND * jnp.tanh(theta["c2"])[g],
        l_ts_m=base.l_ts_m * (1.0 + L_TS_CHANGE * jnp.tanh(theta["l_ts"])))


def moment_loss(theta, base, group, curves, trials, scale,
                ceiling_weight: float = 0.0) -> jax.Array:
    """Mean over trials' valid samples of sum over dofs of ((predicted - measured) / scale)^2,
    plus ``ceiling_weight`` x sum over units of (force / (strength F_max) - 1)^2 where a force
    exceeds strength x F_max (a force no muscle of the model can make)."""
    p = apply_theta(theta, base, group)
    total, count = 0.0, 0.0
    for x in trials:
        f, m = predict(p, curves, x)
        err = jnp.sum(((m - x.moment) / scale) ** 2, 1)
        excess = jax.nn.relu(f / (p.f_max_n * p.strength) - 1.0)
        err = err + ceiling_weight * jnp.sum(excess ** 2, 1)
        total = total + jnp.sum(err * x.valid)
        count = count + jnp.sum(x.valid)
    return total / count


def identify(base: ed.MuscleParams, curves: ed.Curves, group: np.ndarray, trials: list,
             prior_weight: float, steps: int = 300, learning_rate: float = 0.05,
             ceiling_weight: float = 1.0, progress=None) -> tuple[dict, list]:
    """Identify strength, activation (c1, c2, shape factor) per group and tendon slack length
    per unit from the measured moments of ``trials`` (a list of :class:`Arrays`), starting at
    ``base`` and pulled back to it by ``prior_weight`` x the squared change of the unconstrained
    parameters; forces above strength x F_max are penalised (``ceiling_weight``). Returns the
    parameters and the loss per step."""
    n_groups = int(group.max()) + 1
    theta0 = init_theta(base, group, n_groups)
    valid = np.concatenate([np.asarray(x.valid) for x in trials]) > 0
    measured = np.concatenate([np.asarray(x.moment) for x in trials])[valid]
    scale = jnp.asarray(np.maximum(measured.std(0), 1.0), jnp.float32)
    # Everything but the learning rate is an argument of the one jitted step, so fits that
    # differ only in weights (the validation choice) share one compiled program.
    fixed = (theta0, base, jnp.asarray(group), curves, list(trials), scale,
             jnp.float32(prior_weight), jnp.float32(ceiling_weight))
    theta, state = theta0, optax.adam(learning_rate).init(theta0)
    values = []
    for i in range(steps):
        theta, state, value = _adam_step(theta, state, *fixed, learning_rate=learning_rate)
        values.append(value)  # read back in blocks: no host round-trip per step
        if progress is not None and (i + 1) % 100 == 0:
            progress(i + 1, steps, float(value))
    return theta, [float(v) for v in jax.device_get(values)]


@functools.partial(jax.jit, static_argnames=("learning_rate",))
def _adam_step(theta, state, theta0, base, group, curves, trials, scale, prior_weight,
               ceiling_weight, learning_rate):
    def loss(th):
        prior = sum(jnp.mean((th[k] - theta0[k]) ** 2) for k in th)
        return (moment_loss(th, base, group, curves, trials, scale, ceiling_weight)
                + prior_weight * prior)

    value, grads = jax.value_and_grad(loss)(theta)
    updates, state = optax.adam(learning_rate).update(grads, state)
    return optax.apply_updates(theta, updates), state, value


def moment_metrics(pred: np.ndarray, true: np.ndarray, dofs) -> dict:
    """Per dof: R², RMSE [N m], NRMSE, Pearson r of predicted vs measured moments (N, D)."""
    from pinnmsk.metrics import regression_metrics

    return {d: regression_metrics(pred[:, j], true[:, j]) for j, d in enumerate(dofs)}


def force_plausibility(force: np.ndarray, moment_arm: np.ndarray, p: ed.MuscleParams,
                       dofs, units) -> dict:
    """Peak force over strength x F_max (the largest and which of ``units``), and per dof the share of
    the gross muscle moment that cancels (co-contraction: 1 - sum|net| / sum gross)."""
    from pinnmsk.diagnostics import net_and_gross_torque

    ratio = force / np.asarray(p.f_max_n * p.strength)
    net, gross = net_and_gross_torque(np.transpose(moment_arm, (0, 2, 1)), force)
    share = 1.0 - np.abs(net).sum(0) / np.maximum(gross.sum(0), 1e-9)
    return {"peak_force_over_strength_fmax": float(ratio.max()),
            "peak_unit": units[int(np.argmax(ratio.max(0)))],
            "samples_above_strength_fmax": float(np.mean(ratio.max(1) > 1.0)),
            "cocontraction_share": {d: float(share[j]) for j, d in enumerate(dofs)}}


def lagged_excitations(trial: GaitTrial, lags_s=(0.0, 0.025, 0.05, 0.1)) -> np.ndarray:
    """(T, C x L) features of a linear decoder: each distinct excitation column at each lag,
    the last EMG sample at or before t - lag (causal; the lead-in covers lags up to its length).
    """
    cols = np.unique(trial.excitation, axis=1, return_index=True)[1]
    ex = trial.excitation[:, np.sort(cols)]
    feats = []
    for lag in lags_s:
        idx = np.searchsorted(trial.excitation_time_s, trial.time_s - lag + 1e-9, "right") - 1
        if np.any(idx < 0):
            lead = (trial.time_s[0] - trial.excitation_time_s[0]) * 1e3
            raise DataError(f"trial '{trial.name}': its EMG starts {lead:.0f} ms before its "
                            f"first sample, less than the {lag * 1e3:.0f} ms lag the EMG "
                            "features need; pass smaller --lags_ms or export more EMG before "
                            "the trial")
        feats.append(ex[idx])
    return np.concatenate(feats, 1)


def fit_ridge(features: list, targets: list, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge weights (F + 1, D) on standardised features; returns (weights, (mean, std))."""
    x = np.concatenate(features)
    y = np.concatenate(targets)
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    reg = alpha * np.eye(z.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(z.T @ z + reg, z.T @ y)
    return w, np.stack([mu, sd])


def ridge_predict(w: np.ndarray, norm: np.ndarray, features: np.ndarray) -> np.ndarray:
    z = np.c_[(features - norm[0]) / norm[1], np.ones(len(features))]
    return z @ w
