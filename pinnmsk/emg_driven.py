"""The EMG-driven Hill model as CEINMS computes it (Lloyd & Besier 2003; Pizzolato et al. 2015).

Pure functions of arrays, jit-, vmap- and grad-able, so the same model gives rows (a) and (b)
of the gait table (CEINMS's uncalibrated and calibrated subjects, no training) and is the model
whose parameters pinnmsk identifies (row c). Each step follows CEINMS's sources (2014/15, the
version its shipped test data were made with):

- curves (``Curve.cpp``): a cubic spline through the subject XML's point list with SIMM's end
  conditions (Forsythe, Malcolm & Moler), evaluated as the end point's value outside its range;
- activation (``ExponentialActivation.cpp``): u_k = alpha e_k - beta1 u_{k-1} - beta2 u_{k-2}
  with beta1 = c1 + c2, beta2 = c1 c2, alpha = 1 + beta1 + beta2, excitations clipped to [0, 1],
  both past states set to the mean of the first two excitations at the third step; then
  a = (exp(A u) - 1) / (exp(A) - 1) with the shape factor A (a = u at A = 0);
- stiff tendon (``StiffTendon.cpp``): l_f = sqrt((l_opt sin phi0)^2 + (l_mt - l_ts)^2);
- fibre velocity: the time derivative of the cubic spline through the trial's fibre lengths
  (``MTU::updateFibreVelocity``); the spline is linear in its values, so it is a (T, T) matrix
  of the sample times (:func:`spline_slope_matrix`) applied to the fibre lengths;
- force (``MTU::updateMuscleForce``): F = F_max s (f_a(l_f / (l_opt (p (1 - a) + 1))) f_v(v_n) a
  + f_p(l_f / l_opt) + d v_n) cos phi, v_n = clip(v_f / l_opt, -10, 10) / 10 (lengthening
  positive), phi = asin(l_opt sin phi0 / l_f) clipped to [0, pi/2] (for the stiff
  tendon cos phi = |l_mt - l_ts| / l_f);
- joint moment: sum over units of moment arm x force.

Shapes: T samples, M muscle-tendon units, D degrees of freedom, S excitation samples fed to the
activation filter (S >= T). SI units: m, s, N, N m, rad.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

MAX_CONTRACTION_VELOCITY = 10.0  # optimal fibre lengths per second (CEINMS's default)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Spline:
    """A cubic spline y(x) = y_k + dx (b_k + dx (c_k + dx d_k)), dx = x - x_k; each (N,)."""

    x: jax.Array
    y: jax.Array
    b: jax.Array
    c: jax.Array
    d: jax.Array


def spline_coefficients(x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(b, c, d) of CEINMS's cubic spline through (x, y) (``Curve::computeCoefficients``,
    from SIMM: the end slopes match cubics through the first and last four points)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = len(x)
    b, c, d = np.zeros(n), np.zeros(n), np.zeros(n)
    if n == 2:
        b[:] = (y[1] - y[0]) / (x[1] - x[0])
        return b, c, d
    if n < 2:
        raise ValueError("a spline needs at least two points")
    m = n - 1
    d[0] = x[1] - x[0]
    c[1] = (y[1] - y[0]) / d[0]
    for i in range(1, m):
        d[i] = x[i + 1] - x[i]
        b[i] = 2.0 * (d[i - 1] + d[i])
        c[i + 1] = (y[i + 1] - y[i]) / d[i]
        c[i] = c[i + 1] - c[i]
    b[0] = -d[0]
    b[m] = -d[m - 1]
    c[0] = c[m] = 0.0
    if n > 3:
        c[0] = c[2] / (x[3] - x[1]) - c[1] / (x[2] - x[0])
        c[m] = c[m - 1] / (x[m] - x[n - 3]) - c[n - 3] / (x[m - 1] - x[n - 4])
        c[0] = c[0] * d[0] * d[0] / (x[3] - x[0])
        c[m] = -c[m] * d[m - 1] * d[m - 1] / (x[m] - x[n - 4])
    for i in range(1, n):
        t = d[i - 1] / b[i - 1]
        b[i] -= t * d[i - 1]
        c[i] -= t * c[i - 1]
    c[m] /= b[m]
    for i in range(m - 1, -1, -1):
        c[i] = (c[i] - d[i] * c[i + 1]) / b[i]
    b[m] = (y[m] - y[m - 1]) / d[m - 1] + d[m - 1] * (c[m - 1] + 2.0 * c[m])
    for i in range(m):
        b[i] = (y[i + 1] - y[i]) / d[i] - d[i] * (c[i + 1] + 2.0 * c[i])
        d[i] = (c[i + 1] - c[i]) / d[i]
        c[i] *= 3.0
    c[m] *= 3.0
    d[m] = d[m - 1]
    return b, c, d


def make_spline(x, y) -> Spline:
    """The spline through the points (x strictly increasing), as float32 arrays."""
    b, c, d = spline_coefficients(x, y)
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    return Spline(f32(x), f32(y), f32(b), f32(c), f32(d))


def spline_value(s: Spline, xq: jax.Array) -> jax.Array:
    """y at ``xq`` (any shape); the end points' values outside [x_0, x_N-1], as CEINMS."""
    n = s.x.shape[0]
    k = jnp.clip(jnp.searchsorted(s.x, xq, side="left") - 1, 0, n - 1)
    dx = xq - s.x[k]
    inside = s.y[k] + dx * (s.b[k] + dx * (s.c[k] + dx * s.d[k]))
    return jnp.where(xq < s.x[0], s.y[0], jnp.where(xq > s.x[-1], s.y[-1], inside))


def spline_slope_matrix(t) -> np.ndarray:
    """(T, T) matrix V with V @ y = the slope at each t_k of CEINMS's spline through (t, y)."""
    t = np.asarray(t, np.float64)
    n = len(t)
    out = np.zeros((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        b, c, d = spline_coefficients(t, e)
        # At a knot t_k (k >= 1) CEINMS evaluates segment k-1 at its right end (lower_bound - 1).
        dx = t[1:] - t[:-1]
        out[1:, j] = b[:-1] + dx * (2.0 * c[:-1] + 3.0 * dx * d[:-1])
        out[0, j] = b[0]
    return out


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Curves:
    """The four normalised curves of a CEINMS subject."""

    active_force_length: Spline
    passive_force_length: Spline
    force_velocity: Spline
    tendon_force_strain: Spline


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MuscleParams:
    """Per unit (M,) arrays: F_max [N], optimal fibre length [m], tendon slack length [m],
    pennation at optimal fibre length [rad], strength coefficient, activation filter c1 and c2,
    shape factor A, damping [F_max per normalised velocity]; ``percentage_change``: optimal fibre
    length change with activation (a scalar array)."""

    f_max_n: jax.Array
    l_opt_m: jax.Array
    l_ts_m: jax.Array
    pennation_rad: jax.Array
    strength: jax.Array
    c1: jax.Array
    c2: jax.Array
    shape_factor: jax.Array
    damping: jax.Array
    percentage_change: jax.Array


def activation(excitation: jax.Array, c1: jax.Array, c2: jax.Array,
               shape_factor: jax.Array) -> jax.Array:
    """Activations (S, M) from excitations (S, M), CEINMS's recursive filter + shape factor."""
    e = jnp.clip(excitation, 0.0, 1.0)
    beta1, beta2 = c1 + c2, c1 * c2
    alpha = 1.0 + beta1 + beta2

    def step(carry, inputs):
        u1, u2, e1, e2 = carry
        ek, k = inputs
        start = k == 2
        mean = 0.5 * (e1 + e2)
        u1 = jnp.where(start, mean, u1)
        u2 = jnp.where(start, mean, u2)
        u = alpha * ek - beta1 * u1 - beta2 * u2
        return (u, u1, ek, e1), u

    zeros = jnp.zeros_like(e[0])
    _, u = jax.lax.scan(step, (zeros, zeros, zeros, zeros), (e, jnp.arange(e.shape[0])))
    return shape_activation(u, shape_factor)


def shape_activation(u: jax.Array, shape_factor: jax.Array) -> jax.Array:
    """a = (exp(A u) - 1) / (exp(A) - 1); its limit u where |A| < 1e-4."""
    small = jnp.abs(shape_factor) < 1e-4
    safe = jnp.where(small, 1.0, shape_factor)
    return jnp.where(small, u, jnp.expm1(safe * u) / jnp.expm1(safe))


def fibre_length(l_mt: jax.Array, p: MuscleParams) -> jax.Array:
    """Fibre length [m] (T, M) of a stiff tendon from musculotendon lengths (T, M)."""
    # The 1e-12 m^2 (a micrometre) keeps the gradient finite where a unit without pennation
    # sits exactly at its tendon slack length (CEINMS divides by zero there).
    return jnp.sqrt((p.l_opt_m * jnp.sin(p.pennation_rad)) ** 2 + (l_mt - p.l_ts_m) ** 2
                    + 1e-12)


def muscle_force(act: jax.Array, l_mt: jax.Array, slope: jax.Array, p: MuscleParams,
                 curves: Curves) -> jax.Array:
    """Musculotendon forces [N] (T, M) from activations and lengths (T, M); ``slope`` (T, T):
    :func:`spline_slope_matrix` of the sample times (fibre velocity = slope @ fibre length)."""
    l_f = fibre_length(l_mt, p)
    v_f = slope @ l_f
    l_opt_at = p.l_opt_m * (p.percentage_change * (1.0 - act) + 1.0)
    v_n = jnp.clip(v_f / p.l_opt_m, -MAX_CONTRACTION_VELOCITY,
                   MAX_CONTRACTION_VELOCITY) / MAX_CONTRACTION_VELOCITY
    fa = spline_value(curves.active_force_length, l_f / l_opt_at)
    fv = spline_value(curves.force_velocity, v_n)
    fp = spline_value(curves.passive_force_length, l_f / p.l_opt_m)
    # cos(asin(l_opt sin phi0 / l_f)) = |l_mt - l_ts| / l_f for the stiff tendon's l_f (a
    # square root of 1 - sin^2 would have an infinite gradient where sin reaches 1).
    cos_phi = jnp.abs(l_mt - p.l_ts_m) / l_f
    return p.f_max_n * p.strength * (fa * fv * act + fp + p.damping * v_n) * cos_phi


def joint_moments(force: jax.Array, moment_arm: jax.Array) -> jax.Array:
    """Joint moments [N m] (T, D) = sum over units of moment arm (T, D, M) x force (T, M)."""
    return jnp.einsum("tdm,tm->td", moment_arm, force)
