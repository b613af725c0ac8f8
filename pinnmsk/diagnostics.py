"""What a dataset can tell before any network is trained: physics-only fits.

Two questions decide whether the physics-informed CNN can reach good accuracy on a dataset:

- *Does the EMG carry the joint angle?* :mod:`pinnmsk.ridge` answers it with a linear decoder.
- *Do the kinematics fix the forces?* The joint torque that the kinematics require is
  Σ_i r_i(q) F_i, and with F_i = F_passive,i(q) + g_i e_i F_active,i(q, q̇) (Hill, activation
  g_i e_i) it is linear in the per-muscle EMG gains g (:func:`gain_problem`). Solving it
  (:func:`calibrate_gains`, as EMG-driven models are calibrated) or sharing the torque by
  least activation (:func:`static_optimisation`) are the two classical label-free routes; how
  far their forces fall from recorded ones bounds what the physics terms alone can identify.
  In one degree of freedom, co-contraction makes no net torque, so its level is invisible to
  both.

Everything here takes and returns arrays (SI units); the ``experiments.diagnose`` binary does
the reading and printing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import dynamics, geometry, msk, muscle
from pinnmsk.msk import MskModel


def derivatives(time_s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q̇, q̈ (T, n) of a sampled trajectory q (T, n) by a quintic interpolating spline."""
    from scipy.interpolate import make_interp_spline  # here: 0.3 s to import

    s = make_interp_spline(time_s, q, k=5, axis=0)
    return s.derivative(1)(time_s), s.derivative(2)(time_s)


class TorqueTerms(NamedTuple):
    """The drive-independent pieces of the torque balance along a trajectory of T samples.

    arms: (T, M, n) moment arms [m]; tau: (T, n) torque the kinematics require [N m];
    passive: (T, M) passive forces P [N]; active: (T, M) full-activation active forces U [N].
    """

    arms: np.ndarray
    tau: np.ndarray
    passive: np.ndarray
    active: np.ndarray


def torque_terms(model: MskModel, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray
                 ) -> TorqueTerms:
    """:class:`TorqueTerms` of rigid-tendon Hill muscles at q, q̇, q̈ (T, n) [rad, rad/s, rad/s²]."""
    arms, tau, passive, full = _torque_terms(model, *(jnp.asarray(x, jnp.float32)
                                                      for x in (q, qd, qdd)))
    passive = np.asarray(passive, float)
    return TorqueTerms(np.asarray(arms, float), np.asarray(tau, float), passive,
                       np.asarray(full, float) - passive)


@jax.jit
def _torque_terms(model: MskModel, q, qd, qdd):
    """(moment arms, inverse-dynamics torque, passive forces, full-activation forces) along a
    motion, one program."""
    f = jax.vmap(lambda a, q_, qd_: msk.muscle_forces(model, a, q_, qd_), in_axes=(None, 0, 0))
    arms, tau = arms_and_torque(model, q, qd, qdd)
    return arms, tau, f(jnp.zeros(model.n_muscles), q, qd), f(jnp.ones(model.n_muscles), q, qd)


def compliant_hill_forces(model: MskModel, a: np.ndarray, q: np.ndarray, qd: np.ndarray,
                          iterations: int = 60, doublings: int = 12) -> np.ndarray:
    """Compliant-tendon Hill forces (T, M) [N] at activations ``a`` (T, M) along q, q̇ (T, n):
    the tendon force in fibre-tendon equilibrium with Ḟ = 0
    (:func:`pinnmsk.muscle.equilibrium_tendon_force`). NaN where no root lies below
    2^(doublings + 1) F_max: no force is reported that is not an equilibrium."""
    def one(a_t, q_t, qd_t):
        l_mt, ldot = model.geometry.length_and_velocity(q_t, qd_t)
        f, found = muscle.equilibrium_tendon_force(a_t, l_mt, ldot, model.muscles, iterations,
                                                   doublings)
        return jnp.where(found, f, jnp.nan)

    return np.asarray(jax.jit(jax.vmap(one))(*(jnp.asarray(x, jnp.float32) for x in (a, q, qd))),
                      float)


def gain_problem(terms: TorqueTerms, excitation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint torque balance as a linear problem ``A g = b`` in per-muscle EMG gains.

    With activation a_i = g_i e_i, F_i = P_i + g_i e_i U_i, and the required torque
    τ = Σ_i r_i F_i reads A g = b. ``excitation``: (T, M) normalised EMG e (ones for
    :func:`static_optimisation`). Returns A (T·n, M) [N m per unit gain] and b (T·n,) [N m].
    """
    m = excitation.shape[1]
    a_mat = np.einsum("tmn,tm->tnm", terms.arms, excitation * terms.active)
    b_vec = terms.tau - np.einsum("tmn,tm->tn", terms.arms, terms.passive)
    return a_mat.reshape(-1, m), b_vec.reshape(-1)


def f_max_scale_from_torque(terms: list[TorqueTerms], forces_n: list[np.ndarray],
                            qs: list[np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """The one F_max scale s for all muscles that best closes the torque balance over trials,
    τ = s Σ_i r_i F_i (least squares over samples and coordinates), from each trial's
    :class:`TorqueTerms` (moment arms, required torque) and the muscle forces F (T, M) [N] that
    the lab's model makes there at the recorded drive. Hill forces scale with F_max exactly, for
    rigid and for compliant tendons (the tendon's state depends on F / F_max only).

    With the trials' angles ``qs`` (T, n) [rad] a joint spring and offset per coordinate are
    fitted beside it (τ = s Σ r F + k q + c), as an identified residual torque would be: if s
    then moves far, the torque cannot tell the muscles' strength from the joint's passive
    torque, and label-free identification of F_max rests on its prior. Returns (s, the other
    coefficients (2n,): k [N m/rad] then c [N m] per coordinate; empty without ``qs``).
    """
    rows, goal = [], []
    for k, (x, f) in enumerate(zip(terms, forces_n)):
        cols = [net_and_gross_torque(x.arms, f)[0].reshape(-1, 1)]
        if qs is not None:
            q = np.asarray(qs[k], float)
            n = q.shape[1]
            eye = np.eye(n)[None]  # one spring and one offset per coordinate
            cols += [(q[:, :, None] * eye).reshape(-1, n), np.broadcast_to(
                eye, (len(q), n, n)).reshape(-1, n)]
        rows.append(np.concatenate(cols, axis=1))
        goal.append(x.tau.reshape(-1))
    coef = np.linalg.lstsq(np.concatenate(rows), np.concatenate(goal), rcond=None)[0]
    return float(coef[0]), coef[1:]


def net_and_gross_torque(arms: np.ndarray, forces_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Net muscle torque Σ_i r_i F_i and gross torque Σ_i |r_i F_i|, each (T, n) [N m], from
    moment arms (T, M, n) [m] and forces (T, M) [N].

    Their ratio measures co-contraction: where the net torque is a small fraction of the gross,
    a relative error ε in every force is an error of about ε · gross/net in the net torque, so
    the torque (hence the kinematics) pins the forces only to within ε ≈ net/gross.
    """
    per = arms * np.asarray(forces_n, float)[:, :, None]  # (T, M, n)
    return per.sum(1), np.abs(per).sum(1)


def calibrate_gains(a_mat: np.ndarray, b_vec: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative least-squares gains g (M,) for ``A g = b`` and the RMS torque residual [N m]."""
    from scipy.optimize import nnls

    g, _ = nnls(a_mat, b_vec)
    return g, float(np.sqrt(np.mean((a_mat @ g - b_vec) ** 2)))


def static_optimisation(a_mat: np.ndarray, b_vec: np.ndarray, n_coords: int = 1,
                        torque_weight: float = 1e3) -> np.ndarray:
    """Unit-gain activations (T, M) ≥ 0 minimising Σ a² with the torque met, one NNLS per sample.

    ``a_mat``, ``b_vec``: :func:`gain_problem` with ``excitation = 1`` (so ``a_mat`` rows are
    r U); the torque equality is a heavily weighted least-squares row per coordinate.
    """
    from scipy.optimize import nnls

    a3 = a_mat.reshape(-1, n_coords, a_mat.shape[1])
    b2 = b_vec.reshape(-1, n_coords)
    m = a3.shape[2]
    out = np.empty((len(a3), m))
    for k in range(len(a3)):
        lhs = np.vstack([torque_weight * a3[k], np.eye(m)])
        out[k], _ = nnls(lhs, np.concatenate([torque_weight * b2[k], np.zeros(m)]))
    return out


@jax.jit
def arms_and_torque(model: MskModel, q, qd, qdd):
    """(moment arms (T, M, n), inverse-dynamics torque (T, n)) along a motion, one program."""
    return (geometry.moment_arms_along(model.geometry, q),
            dynamics.inverse_dynamics_along(model.body, q, qd, qdd))


@jax.jit
def rigid_isometric(model: MskModel, q):
    """(l_mt (T, M), passive (T, M), full-activation (T, M)) rigid-tendon isometric forces."""
    zeros = jnp.zeros(model.n_muscles)
    f = lambda a: jax.vmap(lambda q_: msk.muscle_forces(model, a, q_, jnp.zeros_like(q_)))(q)
    return jax.vmap(model.geometry.length)(q), f(zeros), f(zeros + 1.0)


def torque_budget(model: MskModel, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray,
                  forces_n: np.ndarray, tau_residual: np.ndarray | None = None) -> dict:
    """How predicted forces (T, M) [N] account for the torque a motion q, q̇, q̈ (T, n) needs:
    RMS [N m] per coordinate of the required torque (inverse dynamics incl. passive joint
    terms), the muscle torque Rᵀ F, the residual torque (if given) and what is left unexplained,
    plus the peak force of each muscle as a fraction of its F_max."""
    arms, need = (np.asarray(x, float) for x in arms_and_torque(
        model, *(jnp.asarray(x, jnp.float32) for x in (q, qd, qdd))))
    muscle_tau = np.einsum("tmn,tm->tn", arms, forces_n)
    res = np.zeros_like(need) if tau_residual is None else np.asarray(tau_residual, float)
    rms = lambda x: np.sqrt(np.mean(x**2, axis=0)).tolist()
    return {"required_rms_nm": rms(need), "muscle_rms_nm": rms(muscle_tau),
            "residual_torque_rms_nm": rms(res),
            "unexplained_rms_nm": rms(need - muscle_tau - res),
            "peak_force_over_f_max": (forces_n.max(0) / np.asarray(model.muscles.f_max_n)).tolist(),
            "min_force_n": forces_n.min(0).tolist()}
