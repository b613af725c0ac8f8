"""Musculotendon geometry: polynomial lengths l_mt(q) and moment arms r(q) = −∂l_mt/∂q.

Lengths are polynomials in the joint coordinates (multivariate for several coordinates) fitted by
least squares to a length table such as OpenSim's MuscleAnalysis ``Length`` output. Moment arms
are not fitted: they are the autodiff derivative of the length polynomial, which keeps lengths,
velocities and moment arms consistent (the principle of virtual work) by construction.

Coordinates are centred and scaled before the monomials are formed so the least-squares system is
well conditioned; the scaling is part of the pytree.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pinnmsk.shapes import ArmSeries, Coords, MomentArms, Motion, MuscleVec

Array = jax.Array


def monomial_exponents(n_coords: int, degree: int) -> np.ndarray:
    """All exponent tuples of total degree ≤ ``degree``: int array (K, n_coords)."""
    exps = [e for e in itertools.product(range(degree + 1), repeat=n_coords) if sum(e) <= degree]
    exps.sort(key=lambda e: (sum(e), tuple(-x for x in e)))
    return np.asarray(exps, dtype=np.int32)


def as_static(exponents) -> tuple:
    """Exponents (K, n) as the hashable tuple of tuples :class:`PolynomialGeometry` keeps."""
    return tuple(tuple(int(e) for e in row) for row in np.asarray(exponents))


@struct.dataclass
class PolynomialGeometry:
    """l_mt,i(q) = Σ_k c_ik Π_j ((q_j − centre_j)/scale_j)^{e_kj}.

    Attributes:
      coefficients_m: (M, K) polynomial coefficients [m].
      centre_rad: (n,) coordinate centre [rad].
      scale_rad: (n,) coordinate scale [rad].
      exponents: (K, n) integer exponents (static; a tuple of tuples, so that subjects' models
        with the same polynomial degree stack into one pytree).
    """

    coefficients_m: Array
    centre_rad: Array
    scale_rad: Array
    exponents: tuple = struct.field(pytree_node=False)

    @property
    def n_muscles(self) -> int:
        return self.coefficients_m.shape[-2]

    @property
    def n_coords(self) -> int:
        return len(self.exponents[0])

    def _features(self, q: Array) -> Array:
        x = (q - self.centre_rad) / self.scale_rad  # (n,)
        # Powers by repeated multiplication (static integer exponents): x ** e with an exponent
        # array lowers to a general pow whose derivative e·x^(e−1) is 0·inf = NaN at x = 0.
        degree = max(max(row) for row in self.exponents)
        powers = [jnp.ones_like(x)]
        for _ in range(degree):
            powers.append(powers[-1] * x)
        table = jnp.stack(powers)  # (degree + 1, n): table[k, j] = x_j^k
        cols = jnp.arange(self.n_coords)
        return jnp.stack([jnp.prod(table[np.asarray(e), cols]) for e in self.exponents])  # (K,)

    def length(self, q: Coords) -> MuscleVec:
        """Musculotendon lengths (M,) [m] at one configuration ``q`` (n,) [rad]."""
        return self.coefficients_m @ self._features(q)

    def moment_arms(self, q: Coords) -> MomentArms:
        """Moment arms r = −∂l_mt/∂q, shape (M, n) [m]; positive arm: force drives q positive."""
        return -jax.jacfwd(self.length)(q)

    def length_and_velocity(self, q: Coords, qd: Coords) -> tuple[MuscleVec, MuscleVec]:
        """(l_mt (M,) [m], l̇_mt (M,) [m/s]) at ``q``, ``qd`` (n,), by one forward-mode pass."""
        return jax.jvp(self.length, (q,), (qd,))


@jax.jit
def moment_arms_along(geometry: PolynomialGeometry, q: Motion) -> ArmSeries:
    """Moment arms (T, M, n) [m] at every configuration of ``q`` (T, n) [rad], one program."""
    return jax.vmap(geometry.moment_arms)(q)


def fit_polynomial(q_table, lengths_table, degree: int = 5) -> PolynomialGeometry:
    """Least-squares fit of lengths (N, M) [m] over configurations ``q_table`` (N, n) [rad].

    Runs in NumPy (float64) once, outside jit. Raises ``ValueError`` when the table cannot
    determine the polynomial.
    """
    q = np.asarray(q_table, dtype=np.float64)
    if q.ndim == 1:
        q = q[:, None]
    lengths = np.asarray(lengths_table, dtype=np.float64)
    if lengths.ndim == 1:
        lengths = lengths[:, None]
    if q.shape[0] != lengths.shape[0]:
        raise ValueError(f"length table has {lengths.shape[0]} rows but {q.shape[0]} coordinates")
    if not (np.isfinite(q).all() and np.isfinite(lengths).all()):
        raise ValueError("length table contains NaN/Inf values")
    exps = monomial_exponents(q.shape[1], degree)
    if q.shape[0] < len(exps):
        raise ValueError(
            f"length table has {q.shape[0]} rows, fewer than the {len(exps)} coefficients of a "
            f"degree-{degree} polynomial in {q.shape[1]} coordinate(s); lower the degree"
        )
    centre = 0.5 * (q.max(0) + q.min(0))
    scale = np.maximum(0.5 * (q.max(0) - q.min(0)), 1e-6)
    x = (q - centre) / scale
    design = np.prod(x[:, None, :] ** exps[None], axis=-1)  # (N, K)
    coef, *_ = np.linalg.lstsq(design, lengths, rcond=None)  # (K, M)
    return PolynomialGeometry(jnp.asarray(coef.T, jnp.float32), jnp.asarray(centre, jnp.float32),
                              jnp.asarray(scale, jnp.float32), as_static(exps))


def hold(geo: PolynomialGeometry, keep, held_rad: dict) -> PolynomialGeometry:
    """``geo`` with some coordinates held fixed: the polynomial in the coordinates ``keep``
    (indices into ``geo``'s, in that order) equal to ``geo`` with coordinate ``j`` at
    ``held_rad[j]`` [rad] for every held index ``j``. Exact (the held factors are folded into the
    coefficients, in float64), so a two-joint muscle's length and its moment arms about the kept
    coordinates are those of the full table at the held value.
    """
    keep = [int(j) for j in keep]
    if sorted(keep + [int(j) for j in held_rad]) != list(range(geo.n_coords)):
        raise ValueError(f"keep {keep} and held {sorted(held_rad)} must split the polynomial's "
                         f"{geo.n_coords} coordinates")
    exps = np.asarray(geo.exponents)  # (K, n)
    coef = np.asarray(geo.coefficients_m, np.float64)  # (M, K)
    centre = np.asarray(geo.centre_rad, np.float64)
    scale = np.asarray(geo.scale_rad, np.float64)
    factor = np.ones(len(exps))
    for j, v in held_rad.items():
        factor *= ((float(v) - centre[j]) / scale[j]) ** exps[:, j]
    target = monomial_exponents(len(keep), int(exps.sum(1).max()))
    column = {tuple(e): i for i, e in enumerate(target)}
    out = np.zeros((coef.shape[0], len(target)))
    for k, e in enumerate(exps[:, keep]):
        out[:, column[tuple(e)]] += coef[:, k] * factor[k]
    return PolynomialGeometry(jnp.asarray(out, jnp.float32), jnp.asarray(centre[keep], jnp.float32),
                              jnp.asarray(scale[keep], jnp.float32), as_static(target))
