"""Hill-type muscles: activation dynamics and rigid- or compliant-tendon force with De Groote 2016
curves.

Every function is pure and element-wise over muscles, so parameters are per-muscle arrays of
shape ``(M,)`` and a batch of subjects is a ``jax.vmap`` over :class:`MuscleParams`.

Curves are those of OpenSim's ``DeGrooteFregly2016Muscle`` (default properties; passive fibre
strain at one normalised force 0.6); ``tests/test_muscle.py`` checks them against values OpenSim
4.6 computed.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from pinnmsk import ode
from pinnmsk.shapes import MuscleSeries, MuscleVec

Array = jax.Array

# Active force-length: sum of three Gaussian-like terms (b1, b2, b3, b4).
_FL_TERMS = (
    (0.8150671134243542, 1.055033428970575, 0.162384573599574, 0.063303448465465),
    (0.433004984392647, 0.716775413397760, -0.029947116970696, 0.200356847296188),
    (0.1, 1.0, 0.353553390593274, 0.0),
)
# Force-velocity (inverse hyperbolic sine form).
_FV_D1, _FV_D2, _FV_D3, _FV_D4 = -0.3211346127989808, -8.149, -0.374, 0.8825327733249912
_PE_KPE = 4.0
_PE_MIN_NORM_LENGTH = 0.2
# Tendon force-length f_T(l̃_T) = c1 exp(k_T (l̃_T − c2)) − c3, k_T from the tendon strain at one
# normalised force (OpenSim's DeGrooteFregly2016Muscle; 0.049 is its default).
_T_C1, _T_C2, _T_C3 = 0.2, 1.0, 0.2
TENDON_STRAIN = 0.049
PASSIVE_STRAIN = 0.6  # De Groote's passive fibre strain at one normalised force


def active_force_length(l_norm: Array) -> Array:
    """Active force-length multiplier f_L(l̃), l̃ = fibre length / optimal fibre length."""
    out = 0.0
    for b1, b2, b3, b4 in _FL_TERMS:
        out = out + b1 * jnp.exp(-0.5 * (l_norm - b2) ** 2 / (b3 + b4 * l_norm) ** 2)
    return out


def passive_force_length(l_norm: Array, strain_at_one_norm_force: Array = PASSIVE_STRAIN
                         ) -> Array:
    """Passive force-length multiplier f_PE(l̃) (exponential; equals 1 at l̃ = 1 + strain)."""
    e0 = strain_at_one_norm_force
    offset = jnp.exp(_PE_KPE * (_PE_MIN_NORM_LENGTH - 1.0) / e0)
    return (jnp.exp(_PE_KPE * (l_norm - 1.0) / e0) - offset) / (jnp.exp(_PE_KPE) - offset)


def force_velocity(v_norm: Array) -> Array:
    """Force-velocity multiplier f_V(ṽ); ṽ in units of v_max, shortening negative (f_V(−1) ≈ 0)."""
    t = _FV_D2 * v_norm + _FV_D3
    return _FV_D1 * jnp.log(t + jnp.sqrt(t * t + 1.0)) + _FV_D4


def _tendon_stiffness(strain: float) -> float:
    return math.log((1.0 + _T_C3) / _T_C1) / (1.0 + strain - _T_C2)


def tendon_force_length(l_norm_t: Array, strain_at_one_norm_force: float = TENDON_STRAIN) -> Array:
    """Tendon force multiplier f_T(l̃_T), l̃_T = tendon length / tendon slack length (0 at 1)."""
    k = _tendon_stiffness(strain_at_one_norm_force)
    return _T_C1 * jnp.exp(k * (l_norm_t - _T_C2)) - _T_C3


def tendon_length_from_force(f_norm: Array, strain_at_one_norm_force: float = TENDON_STRAIN
                             ) -> tuple[Array, Array]:
    """Inverse of :func:`tendon_force_length`: (l̃_T, dl̃_T/df̃_T) at normalised tendon force
    f̃_T (clipped above −0.9 c3, where the curve has no inverse)."""
    k = _tendon_stiffness(strain_at_one_norm_force)
    f = jnp.maximum(f_norm, -0.9 * _T_C3) + _T_C3
    return _T_C2 + jnp.log(f / _T_C1) / k, 1.0 / (k * f)


class Curves(NamedTuple):
    """The Hill model's normalised curves, swappable as a whole or one at a time
    (``DE_GROOTE._replace(force_velocity=...)``; a muscle model holds them, :mod:`pinnmsk.tendons`):

    active_force_length(l̃) and force_velocity(ṽ): the active force multipliers;
    passive_force_length(l̃, strain at one normalised force): the passive fibre force;
    tendon_length_from_force(f̃_T, strain) -> (l̃_T, dl̃_T/df̃_T): the tendon curve, inverted
    (a compliant tendon's equilibrium).
    """

    active_force_length: Callable
    passive_force_length: Callable
    force_velocity: Callable
    tendon_length_from_force: Callable


DE_GROOTE = Curves(active_force_length, passive_force_length, force_velocity,
                   tendon_length_from_force)


@struct.dataclass
class MuscleParams:
    """Per-muscle parameters; every field has shape ``(M,)`` (or a batch ``(..., M)`` under vmap).

    Attributes:
      f_max_n: maximal isometric force [N].
      l_opt_m: optimal fibre length [m].
      l_ts_m: tendon slack length [m].
      phi_opt_rad: pennation angle at optimal fibre length [rad].
      v_max_lopt_per_s: maximal contraction velocity [optimal fibre lengths / s] (≈ 10).
      tau_act_s: activation time constant [s] (≈ 0.010).
      tau_deact_s: deactivation time constant [s] (≈ 0.040).
      shape_a: nonlinear activation shape factor A ∈ (−3, 0]; 0 means linear.
      passive_strain: fibre strain at one normalised passive force (De Groote: 0.6); a
        person-specific passive stiffness (:mod:`pinnmsk.person`).
    """

    f_max_n: Array
    l_opt_m: Array
    l_ts_m: Array
    phi_opt_rad: Array
    v_max_lopt_per_s: Array
    tau_act_s: Array
    tau_deact_s: Array
    shape_a: Array
    passive_strain: Array

    @classmethod
    def create(cls, f_max_n, l_opt_m, l_ts_m, phi_opt_rad, v_max_lopt_per_s=10.0,
               tau_act_s=0.010, tau_deact_s=0.040, shape_a=0.0,
               passive_strain=PASSIVE_STRAIN) -> "MuscleParams":
        """Build from per-muscle values; scalars for the optional fields broadcast to ``(M,)``."""
        f = jnp.asarray(f_max_n, jnp.float32)
        full = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), f.shape)
        return cls(f, full(l_opt_m), full(l_ts_m), full(phi_opt_rad), full(v_max_lopt_per_s),
                   full(tau_act_s), full(tau_deact_s), full(shape_a), full(passive_strain))

    @property
    def n_muscles(self) -> int:
        return self.f_max_n.shape[-1]


# --------------------------------------------------------------------------- activation


def activation_rate(u: MuscleVec, a: MuscleVec, params: MuscleParams, smoothing: float = 10.0
                    ) -> MuscleVec:
    """ȧ of De Groote et al. 2016's smooth first-order activation dynamics [1/s].

    ȧ = [ (f + ½) / (τ_act (½ + 1.5 a)) + (½ + 1.5 a)(½ − f) / τ_deact ] (u − a),
    f = ½ tanh(b (u − a)): activation-speed when u > a, deactivation-speed when u < a.
    ``u``, ``a``: (..., M) in [0, 1].
    """
    f = 0.5 * jnp.tanh(smoothing * (u - a))
    k = 0.5 + 1.5 * a
    rate = (f + 0.5) / (params.tau_act_s * k) + k * (0.5 - f) / params.tau_deact_s
    return rate * (u - a)


def activation_shape(a: MuscleVec, shape_a: MuscleVec) -> MuscleVec:
    """Nonlinear EMG-to-activation shape (e^{A a} − 1)/(e^{A} − 1), A ∈ (−3, 0); A = 0 → a."""
    small = jnp.abs(shape_a) < 1e-6
    safe = jnp.where(small, -1.0, shape_a)
    curved = jnp.expm1(safe * a) / jnp.expm1(safe)
    return jnp.where(small, a, curved)


def delay(t_s: Array, u: Array, delay_s: Array) -> Array:
    """Electromechanical delay: u(t − d) by linear interpolation, held at u(t₀) before the start.

    ``t_s``: (T,) sample times; ``u``: (T, M); ``delay_s``: scalar or (M,) [s]. vmap-able in d.
    """
    d = jnp.broadcast_to(jnp.asarray(delay_s, u.dtype), u.shape[1:])
    return jax.vmap(lambda col, di: jnp.interp(t_s - di, t_s, col), in_axes=(1, 0),
                    out_axes=1)(u, d)


def activation_step(a: MuscleVec, u: MuscleVec, dt_s: float, params: MuscleParams) -> MuscleVec:
    """a after one RK4 step of ``dt_s`` with the excitation ``u`` held, clipped to [0, 1]."""
    return jnp.clip(ode.rk4_step(lambda x: activation_rate(u, x, params), a, dt_s), 0.0, 1.0)


def integrate_activation(u: MuscleSeries, dt_s: float, params: MuscleParams,
                         a0: MuscleVec | None = None) -> MuscleSeries:
    """Activations (T, M) from excitations ``u`` (T, M) sampled every ``dt_s``
    (:func:`activation_step`); the nonlinear shape is not applied (:func:`activation_shape`)."""
    a0 = u[0] if a0 is None else a0

    return jax.lax.scan(lambda a, ut: (activation_step(a, ut, dt_s, params),) * 2, a0, u)[1]


# --------------------------------------------------------------------------- force


def _pennated_fibre(along_m: Array, along_dot_mps: Array, params: MuscleParams):
    """Constant-thickness pennation: ``(l_norm, v_norm, cos_phi)`` of a fibre whose projection on
    the tendon line is ``along_m`` [m], lengthening at ``along_dot_mps`` [m/s]."""
    w = params.l_opt_m * jnp.sin(params.phi_opt_rad)
    along = jnp.maximum(along_m, 1e-6)
    l_m = jnp.sqrt(w * w + along * along)
    cos_phi = along / l_m
    v_norm = along_dot_mps * cos_phi / (params.v_max_lopt_per_s * params.l_opt_m)
    return l_m / params.l_opt_m, v_norm, cos_phi


def fibre_kinematics(l_mt_m: Array, ldot_mt_mps: Array, params: MuscleParams):
    """Rigid tendon, constant-thickness pennation.

    Returns ``(l_norm, v_norm, cos_phi)``: normalised fibre length l_m / l_opt, normalised fibre
    velocity l̇_m / (v_max l_opt) (shortening negative) and cos of the pennation angle.
    """
    return _pennated_fibre(l_mt_m - params.l_ts_m, ldot_mt_mps, params)


def compliant_fibre_kinematics(l_mt_m: Array, ldot_mt_mps: Array, f_t_n: Array,
                               fdot_t_nps: Array, params: MuscleParams,
                               strain_at_one_norm_force: float = TENDON_STRAIN,
                               curves: Curves = DE_GROOTE):
    """Compliant tendon: the fibre state implied by the tendon force F_T [N] and its rate
    Ḟ_T [N/s] (De Groote 2016, as OpenSim's ``DeGrooteFregly2016Muscle``).

    The tendon curve gives l_T = l_ts l̃_T(F_T / F_max) and l̇_T = l_ts (dl̃_T/df̃_T) Ḟ_T / F_max;
    the fibre projection on the tendon line is l_mt − l_T, its rate l̇_mt − l̇_T; constant-thickness
    pennation then gives the fibre length and velocity. Returns ``(l_norm, v_norm, cos_phi)`` as
    :func:`fibre_kinematics`.
    """
    l_t, dl_df = curves.tendon_length_from_force(f_t_n / params.f_max_n,
                                                 strain_at_one_norm_force)
    ldot_t = params.l_ts_m * dl_df * fdot_t_nps / params.f_max_n
    return _pennated_fibre(l_mt_m - params.l_ts_m * l_t, ldot_mt_mps - ldot_t, params)


def fibre_force(a: Array, l_norm: Array, v_norm: Array, cos_phi: Array,
                params: MuscleParams, curves: Curves = DE_GROOTE) -> Array:
    """Force the fibres put on the tendon line, F_max [a f_L(l̃) f_V(ṽ) + f_PE(l̃)] cos φ [N]."""
    active = a * curves.active_force_length(l_norm) * curves.force_velocity(v_norm)
    passive = curves.passive_force_length(l_norm, params.passive_strain)
    return params.f_max_n * (active + passive) * cos_phi


def hill_force(a: MuscleVec, l_mt_m: MuscleVec, ldot_mt_mps: MuscleVec, params: MuscleParams,
               curves: Curves = DE_GROOTE) -> MuscleVec:
    """Rigid-tendon force F = F_max [a f_L(l̃) f_V(ṽ) + f_PE(l̃)] cos φ  [N], shape (..., M).

    Args:
      a: activation in [0, 1], (..., M).
      l_mt_m: musculotendon length [m], (..., M).
      ldot_mt_mps: musculotendon lengthening velocity [m/s], (..., M).
    """
    return fibre_force(a, *fibre_kinematics(l_mt_m, ldot_mt_mps, params), params, curves)


def tendon_equilibrium_residual(f_t_n: Array, fdot_t_nps: Array, a: Array, l_mt_m: Array,
                                ldot_mt_mps: Array, params: MuscleParams,
                                strain_at_one_norm_force: float = TENDON_STRAIN,
                                curves: Curves = DE_GROOTE) -> Array:
    """Fibre-tendon equilibrium F_T − F_fibre [N] at the fibre state the tendon force implies
    (zero for a compliant musculotendon unit in equilibrium), shape (..., M)."""
    kin = compliant_fibre_kinematics(l_mt_m, ldot_mt_mps, f_t_n, fdot_t_nps, params,
                                     strain_at_one_norm_force, curves)
    return f_t_n - fibre_force(a, *kin, params, curves)


def equilibrium_tendon_force(a: Array, l_mt_m: Array, ldot_mt_mps: Array, params: MuscleParams,
                             iterations: int = 40, doublings: int = 12,
                             curves: Curves = DE_GROOTE) -> tuple[Array, Array]:
    """Compliant-tendon force [N] in fibre-tendon equilibrium at activation ``a``, the tendon's
    own stretch rate neglected (Ḟ = 0: the fibre takes the whole l̇_mt); element-wise (..., M).

    The root is bracketed ([0, 2 F_max], doubled up to ``doublings`` times until the residual
    changes sign: a far-stretched fibre pulls with many F_max of passive force) and bisected;
    one Newton step at the root, with the bracket held constant, gives the exact derivative in
    the parameters (implicit function theorem) while the value stays the root. Returns
    (force, found): ``found`` is False where no root lies below 2^(doublings + 1) F_max.
    """
    g = lambda f, a_, l_, ld_, p_: tendon_equilibrium_residual(f, jnp.zeros_like(f), a_, l_, ld_,
                                                              p_, curves=curves)
    a_s, l_s, ld_s, p_s = jax.lax.stop_gradient((a, l_mt_m, ldot_mt_mps, params))
    r = lambda f: g(f, a_s, l_s, ld_s, p_s)
    hi = jax.lax.fori_loop(0, doublings, lambda _, h: jnp.where(r(h) < 0, 2.0 * h, h),
                           2.0 * p_s.f_max_n + jnp.zeros_like(l_s))
    found = r(hi) >= 0

    def step(_, lo_hi):
        lo, hi = lo_hi
        mid = 0.5 * (lo + hi)
        up = r(mid) > 0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    lo, hi = jax.lax.fori_loop(0, iterations, step, (jnp.zeros_like(hi), hi))
    root = 0.5 * (lo + hi)
    slope = jax.lax.stop_gradient(jax.grad(lambda f: jnp.sum(r(f)))(root))
    f = root - (g(root, a, l_mt_m, ldot_mt_mps, params) - jax.lax.stop_gradient(r(root))) / slope
    return f, found
