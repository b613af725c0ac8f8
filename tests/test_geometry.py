import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import geometry
from pinnmsk.data import opensim, osim_model
from tests.conftest import V2


def test_wrist_sample_moment_arms_match_opensim():
    """OpenSim's time-indexed MuscleAnalysis output of the lab's model, with the motion it ran
    on (degrees): fitted lengths and autodiff moment arms against its MomentArm table."""
    d = V2 / "S1" / "muscle_analysis"
    length = opensim.read_opensim(str(d / "S1_MuscleAnalysis_Length.sto"))
    arms = opensim.read_opensim(str(d / "S1_MuscleAnalysis_MomentArm_wrist_flex.sto"))
    motion = opensim.read_opensim(str(d / "range_of_motion.mot"))
    assert length.columns == arms.columns and len(length.columns) == 5 and motion.in_degrees
    q = osim_model.grid_coordinates(length, ["wrist_flex"], motion)
    geo = geometry.fit_polynomial(q, length.values, degree=5)
    r = jax.vmap(geo.moment_arms)(jnp.asarray(q, jnp.float32))[:, :, 0]
    err = np.max(np.abs(np.asarray(r) - arms.values))
    assert err < 0.5e-3, f"max moment-arm error {err * 1e3:.3f} mm"
    l = jax.vmap(geo.length)(jnp.asarray(q, jnp.float32))
    assert np.max(np.abs(np.asarray(l) - length.values)) < 1e-4


def test_multivariate_fit_and_jvp_velocity():
    rng = np.random.default_rng(0)
    q = rng.uniform(-1, 1, size=(400, 2))
    true = lambda q: np.stack([0.3 + 0.02 * q[:, 0] - 0.01 * q[:, 0] * q[:, 1],
                               0.25 - 0.015 * q[:, 1] + 0.004 * q[:, 0] ** 2], axis=1)
    geo = geometry.fit_polynomial(q, true(q), degree=3)
    assert geo.n_coords == 2 and geo.n_muscles == 2
    q0 = jnp.array([0.3, -0.2])
    r = geo.moment_arms(q0)
    expected = -np.array([[0.02 + 0.01 * 0.2, -0.01 * 0.3], [2 * 0.004 * 0.3, -0.015]])
    np.testing.assert_allclose(r, expected, atol=1e-5)
    qd = jnp.array([1.5, -0.5])
    l, ld = geo.length_and_velocity(q0, qd)
    np.testing.assert_allclose(ld, -r @ qd, atol=1e-6)


def test_fit_rejects_underdetermined_table():
    with pytest.raises(ValueError, match="lower the degree"):
        geometry.fit_polynomial(np.zeros((3, 1)), np.zeros((3, 2)), degree=5)


def test_gradients_are_finite_at_the_polynomial_centre():
    """At q = centre every normalised coordinate is exactly 0: the length, moment arms and their
    gradients (what training differentiates) must stay finite there (x ** e with an exponent
    array gave 0 · inf = NaN and killed a training run on real data)."""
    import jax

    exps = geometry.as_static(geometry.monomial_exponents(2, 4))
    rng = np.random.default_rng(0)
    g = geometry.PolynomialGeometry(jnp.asarray(rng.normal(size=(3, len(exps))), jnp.float32),
                                    jnp.asarray([0.3, -0.2]), jnp.asarray([1.0, 0.5]), exps)
    q0 = jnp.asarray([0.3, -0.2])
    grad = jax.grad(lambda q: jnp.sum(g.moment_arms(q) ** 2) + jnp.sum(g.length(q)))(q0)
    assert np.all(np.isfinite(np.asarray(grad)))
    # and the polynomial is still the polynomial: x^e by hand at a generic point
    q = jnp.asarray([0.7, 0.1])
    x = (np.asarray(q) - [0.3, -0.2]) / [1.0, 0.5]
    feats = np.array([np.prod(x ** np.asarray(e)) for e in exps])
    np.testing.assert_allclose(g.length(q), np.asarray(g.coefficients_m) @ feats, rtol=1e-5)
