"""A window's muscle activation for the Hill term, with its derivatives in forward mode.

The excitation is the identified ``gain`` times the window's normalised envelope, delayed by the
identified electromechanical delay; De Groote's first-order activation dynamics
(:func:`pinnmsk.muscle.activation_rate`, RK4 at the label rate) integrate it over the window's
last :data:`ACTIVATION_TAIL_S` from the delayed excitation's first value there.

Only the gain and the delay are trained through the activation, and each muscle's activation
depends on its own two, so the integrator carries ∂a/∂gain and ∂a/∂delay (K, M) beside a as it
goes (forward sensitivities, exact) and the derivative of the activation is a product with them
(a ``jax.custom_jvp``). Reverse mode then transposes two products instead of running the
50-step loop backwards over saved residuals: the activation costs a third of what
differentiating the loop did, and the physics-informed step 20-30 % less
(``benchmarks/README.md``). Tangents of the window or of the time constants, which training never
asks for, take the plain differentiable path (:func:`reference_window_activation`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from pinnmsk import muscle
from pinnmsk.shapes import Activation, EmgWindow, MuscleVec

# Activation dynamics are integrated over the last ACTIVATION_TAIL_S of each window: enough for
# the largest delay (0.1 s) plus ~5 deactivation time constants.
ACTIVATION_TAIL_S = 0.5


class _TimeConstants(NamedTuple):
    """What :func:`pinnmsk.muscle.activation_rate` reads of a muscle's parameters."""

    tau_act_s: MuscleVec
    tau_deact_s: MuscleVec


def tail_samples(window_samples: int, rate_hz: float) -> int:
    """K: the samples of a window's tail over which activation is integrated."""
    return min(window_samples, max(2, int(round(ACTIVATION_TAIL_S * rate_hz))))


def window_activation(window: EmgWindow, gain: MuscleVec, delay_s: MuscleVec,
                      params: muscle.MuscleParams, rate_hz: float) -> Activation:
    """Activation (K, M) over the last K samples (:func:`tail_samples`) of an excitation window
    (W, M) sampled at ``rate_hz``: excitation ``gain`` (M,) · the window delayed by ``delay_s``
    (M,) [s] ≥ 0 (linear interpolation, held at the window's first sample before its start),
    clipped to [0, 1]; De Groote's activation dynamics from its first tail value. The nonlinear
    shape is not applied (:func:`pinnmsk.muscle.activation_shape`). Differentiable in the gain
    and the delay (forward sensitivities), and in the rest by the reference path."""
    return _activation(window, gain, delay_s, params.tau_act_s, params.tau_deact_s, rate_hz)


def reference_window_activation(window: EmgWindow, gain: MuscleVec, delay_s: MuscleVec,
                                params: muscle.MuscleParams, rate_hz: float) -> Activation:
    """:func:`window_activation` composed of the plain pieces (the delay by
    :func:`pinnmsk.muscle.delay`, :func:`pinnmsk.muscle.integrate_activation`), differentiated
    by JAX through the loop: the definition the fast path is tested against."""
    w = window.shape[0]
    t = jnp.arange(w, dtype=window.dtype) / rate_hz
    u = jnp.clip(gain * muscle.delay(t, window, delay_s), 0.0, 1.0)[w - tail_samples(w, rate_hz):]
    return muscle.integrate_activation(u, 1.0 / rate_hz, params)


def _delayed_tail(window: EmgWindow, delay_s: MuscleVec, rate_hz: float, k: int) -> Activation:
    """The window (W, M) delayed by ``delay_s`` (M,) [s] over its last ``k`` samples (k, M):
    linear interpolation on the window's uniform grid (as :func:`pinnmsk.muscle.delay`)."""
    w = window.shape[0]
    pos = jnp.arange(w - k, w, dtype=window.dtype)[:, None] - delay_s * rate_hz
    pos = jnp.clip(pos, 0.0, w - 1.0)
    i0 = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, w - 2)
    lo = jnp.take_along_axis(window, i0, axis=0)
    hi = jnp.take_along_axis(window, i0 + 1, axis=0)
    return lo + (pos - i0) * (hi - lo)


def _excitation(window: EmgWindow, gain: MuscleVec, delay_s: MuscleVec, rate_hz: float
                ) -> Activation:
    """The excitation (K, M) over the window's tail: gain · the delayed window, in [0, 1]."""
    k = tail_samples(window.shape[0], rate_hz)
    return jnp.clip(gain * _delayed_tail(window, delay_s, rate_hz, k), 0.0, 1.0)


def _with_sensitivities(window, gain, delay_s, tau_act_s, tau_deact_s, rate_hz):
    """(a, ∂a/∂gain, ∂a/∂delay), each (K, M): the RK4 loop carrying both sensitivities."""
    dt = 1.0 / rate_hz
    taus = _TimeConstants(tau_act_s, tau_deact_s)
    excitation = lambda g, d: _excitation(window, g, d, rate_hz)
    u, du_dg = jax.jvp(excitation, (gain, delay_s), (jnp.ones_like(gain), jnp.zeros_like(gain)))
    _, du_dd = jax.jvp(excitation, (gain, delay_s), (jnp.zeros_like(gain), jnp.ones_like(gain)))
    rk4 = lambda a, ut: muscle.activation_step(a, ut, dt, taus)

    def step(carry, x):
        a, s_g, s_d = carry
        ut, ug, ud = x
        a_new, s_g = jax.jvp(rk4, (a, ut), (s_g, ug))
        _, s_d = jax.jvp(rk4, (a, ut), (s_d, ud))
        return (a_new, s_g, s_d), (a_new, s_g, s_d)

    _, out = jax.lax.scan(step, (u[0], du_dg[0], du_dd[0]), (u, du_dg, du_dd))
    return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def _activation(window, gain, delay_s, tau_act_s, tau_deact_s, rate_hz):
    # undifferentiated (evaluation): the plain loop, no sensitivities
    return muscle.integrate_activation(_excitation(window, gain, delay_s, rate_hz),
                                       1.0 / rate_hz, _TimeConstants(tau_act_s, tau_deact_s))


def _activation_jvp(rate_hz, primals, tangents):
    window, gain, delay_s, tau_act_s, tau_deact_s = primals
    t_window, t_gain, t_delay, t_act, t_deact = tangents
    if not all(isinstance(t, SymbolicZero) for t in (t_window, t_act, t_deact)):
        plain = lambda w, g, d, ta, td: reference_window_activation(
            w, g, d, _TimeConstants(ta, td), rate_hz)
        dense = [jnp.zeros(t.shape, t.dtype) if isinstance(t, SymbolicZero) else t
                 for t in tangents]
        return jax.jvp(plain, primals, tuple(dense))
    a, s_g, s_d = _with_sensitivities(window, gain, delay_s, tau_act_s, tau_deact_s, rate_hz)
    da = jnp.zeros_like(a)
    if not isinstance(t_gain, SymbolicZero):
        da = da + s_g * t_gain
    if not isinstance(t_delay, SymbolicZero):
        da = da + s_d * t_delay
    return a, da


_activation.defjvp(_activation_jvp, symbolic_zeros=True)
