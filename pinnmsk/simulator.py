"""Forward simulation: excitations → activations → muscle forces → joint motion.

A fixed-step RK4 integrator under ``lax.scan`` on the state (q, q̇, a), excitation held constant
over each step. :func:`simulate` is open loop (excitations given); :func:`simulate_tracking` closes
the loop with a person-like controller (computed-torque PD on a target trajectory, torque shared
among the muscles that can produce it, on top of a co-contraction level), which is how the
synthetic datasets are made. Both are pure and vmap over trials and over subjects (the model).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from pinnmsk import dynamics, muscle, muscle_models, ode
from pinnmsk.msk import MskModel, accelerations

Array = jax.Array


class Trajectory(NamedTuple):
    """Simulated signals, each with a leading time axis T (sample k is the state at k·dt).

    q, qd, qdd: (T, n) [rad, rad/s, rad/s²]; a, u: (T, M) activation and excitation;
    forces: (T, M) [N].
    """

    q: Array
    qd: Array
    qdd: Array
    a: Array
    u: Array
    forces: Array


def _forces(model: MskModel, a, q, qd, muscle_model: str):
    l_mt, ldot = model.geometry.length_and_velocity(q, qd)
    return muscle_models.get(muscle_model).force(a, l_mt, ldot, model.muscles)


def _derivative(model: MskModel, state, u, muscle_model: str = "rigid"):
    q, qd, a = state
    f = _forces(model, a, q, qd, muscle_model)
    return qd, accelerations(model, q, qd, f), muscle.activation_rate(u, a, model.muscles)


def rk4_step(model: MskModel, state, u: Array, dt_s: float, muscle_model: str = "rigid"):
    """One RK4 step of (q, q̇, a) with excitation ``u`` (M,) held over the step; the muscles'
    forces from the muscle model ``muscle_model`` (:mod:`pinnmsk.muscle_models`)."""
    q, qd, a = ode.rk4_step(lambda s: _derivative(model, s, u, muscle_model), tuple(state), dt_s)
    return q, qd, jnp.clip(a, 0.0, 1.0)


def _outputs(model, state, u, muscle_model: str = "rigid"):
    q, qd, a = state
    f = _forces(model, a, q, qd, muscle_model)
    return q, qd, accelerations(model, q, qd, f), a, u, f


def simulate(model: MskModel, u: Array, dt_s: float, q0: Array, qd0: Array,
             a0: Array | None = None, muscle_model: str = "rigid") -> Trajectory:
    """Open-loop simulation under excitations ``u`` (T, M); initial ``q0``, ``qd0`` (n,);
    ``muscle_model``: a name of :mod:`pinnmsk.muscle_models` (e.g. "rigid", "compliant")."""
    a0 = u[0] if a0 is None else a0

    def step(state, ut):
        out = _outputs(model, state, ut, muscle_model)
        return rk4_step(model, state, ut, dt_s, muscle_model), out

    _, out = jax.lax.scan(step, (q0, qd0, a0), u)
    return Trajectory(*out)


class Target(NamedTuple):
    """Reference trajectory (T, n) each: angle [rad], velocity [rad/s], acceleration [rad/s²]."""

    q: Array
    qd: Array
    qdd: Array


def tracking_excitation(model: MskModel, q, qd, target_q, target_qd, target_qdd,
                        cocontraction: Array, kp: float, kd: float) -> Array:
    """Excitation (M,) in [0.01, 1] a controller sends to track the target at state (q, q̇).

    Desired torque by inverse dynamics of a PD-corrected target acceleration; the part the
    co-contraction and passive forces do not already produce is shared among the muscles whose
    moment arms point its way, in proportion to their force capacity.
    """
    qdd_des = target_qdd + kp * (target_q - q) + kd * (target_qd - qd)
    tau_des = dynamics.inverse_dynamics(model.body, q, qd, qdd_des)
    p = model.muscles
    l_mt, ldot = model.geometry.length_and_velocity(q, qd)
    l_norm, v_norm, cos_phi = muscle.fibre_kinematics(l_mt, ldot, p)
    gain = p.f_max_n * muscle.active_force_length(l_norm) * muscle.force_velocity(v_norm) * cos_phi
    passive = p.f_max_n * muscle.passive_force_length(l_norm, p.passive_strain) * cos_phi
    r = model.geometry.moment_arms(q)  # (M, n)
    tau_res = tau_des - r.T @ (passive + cocontraction * gain)
    s = r @ tau_res
    w = jax.nn.relu(s)
    beta = (tau_res @ tau_res) / (jnp.sum(gain * w * s) + 1e-9)
    return jnp.clip(cocontraction + beta * w, 0.01, 1.0)


def simulate_tracking(model: MskModel, target: Target, cocontraction: Array, dt_s: float,
                      kp: float = 150.0, kd: float = 25.0, muscle_model: str = "rigid"
                      ) -> Trajectory:
    """Closed-loop simulation following ``target``; ``cocontraction``: (T, M) baseline excitation;
    ``muscle_model`` as in :func:`simulate` (the controller plans with rigid-tendon gains).

    Starts on the target at rest activations; returns the trajectory including the excitations
    the controller produced (the input a lab would record as EMG).
    """
    q0, qd0 = target.q[0], target.qd[0]
    a0 = tracking_excitation(model, q0, qd0, target.q[0], target.qd[0], target.qdd[0],
                             cocontraction[0], kp, kd)

    def step(state, xs):
        qt, qdt, qddt, c = xs
        q, qd, _ = state
        u = tracking_excitation(model, q, qd, qt, qdt, qddt, c, kp, kd)
        out = _outputs(model, state, u, muscle_model)
        return rk4_step(model, state, u, dt_s, muscle_model), out

    _, out = jax.lax.scan(step, (q0, qd0, a0), (target.q, target.qd, target.qdd, cocontraction))
    return Trajectory(*out)


def random_target(key: Array, t_s: Array, q_min: Array, q_max: Array, n_sines: int = 5,
                  f_min_hz: float = 0.1, f_max_hz: float = 0.7, fill: float = 0.75) -> Target:
    """Smooth random target: a sum of sines per coordinate within ``fill`` of [q_min, q_max].

    Exact derivatives, so the target acceleration is smooth. ``t_s``: (T,); limits: (n,).
    """
    n = q_min.shape[0]
    k1, k2, k3, k4 = jax.random.split(key, 4)
    freq = jax.random.uniform(k1, (n_sines, n), minval=f_min_hz, maxval=f_max_hz)
    phase = jax.random.uniform(k2, (n_sines, n), maxval=2 * jnp.pi)
    amp = jax.random.uniform(k3, (n_sines, n), minval=0.2, maxval=1.0) / (freq / f_min_hz) ** 0.5
    half = 0.5 * (q_max - q_min)
    centre = 0.5 * (q_max + q_min) + 0.1 * half * jax.random.uniform(k4, (n,), minval=-1, maxval=1)
    amp = amp / jnp.sum(amp, axis=0) * fill * half
    w = 2 * jnp.pi * freq
    arg = w[None] * t_s[:, None, None] + phase[None]  # (T, K, n)
    q = centre + jnp.sum(amp * jnp.sin(arg), axis=1)
    qd = jnp.sum(amp * w * jnp.cos(arg), axis=1)
    qdd = -jnp.sum(amp * w**2 * jnp.sin(arg), axis=1)
    return Target(q, qd, qdd)


def random_cocontraction(key: Array, t_s: Array, n_muscles: int, low: float = 0.02,
                         high: float = 0.15) -> Array:
    """Slowly varying co-contraction (T, M): a common level in [low, high] with per-muscle gains."""
    k1, k2, k3 = jax.random.split(key, 3)
    f = jax.random.uniform(k1, (), minval=0.05, maxval=0.3)
    ph = jax.random.uniform(k2, (), maxval=2 * jnp.pi)
    level = low + (high - low) * 0.5 * (1 - jnp.cos(2 * jnp.pi * f * t_s + ph))
    gains = jax.random.uniform(k3, (n_muscles,), minval=0.7, maxval=1.3)
    return level[:, None] * gains[None]
