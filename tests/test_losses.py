"""The loss's own physics path: residuals that vanish on exact trajectories."""

import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import activation, diagnostics, losses, msk, muscle, physio, terms
from pinnmsk.data import loading, spec
from tests.conftest import ROOT


def _model():
    return loading.build_model(spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml")))


def _consts(tau_scale=1.0, accel="autodiff", tendon="compliant"):
    return losses.LossConstants(jnp.ones(1), jnp.full(5, 10.0), jnp.full(1, tau_scale),
                                jnp.zeros((5, 2)), 100.0, 0.05, 2, accel, tendon)


def test_dynamics_residual_vanishes_on_an_exact_trajectory():
    """q(τ) = q0 + q̇0 τ + ½ q̈0 τ² with q̈0 from forward dynamics under forces F: the loss's
    residual path (autodiff q̇, q̈ of the head, inverse dynamics, moment arms) gives
    |residual| < 1e-6 of the torque scale at τ = 0; a wrong q̈ (the FD baseline with a large
    step on a cubic) does not."""
    model = _model()
    q0, qd0 = jnp.array([0.3]), jnp.array([-1.2])
    f = jnp.array([40.0, 30.0, 10.0, 15.0, 5.0])
    qdd0 = msk.accelerations(model, q0, qd0, f)
    scale = float(jnp.sqrt(jnp.mean(msk.joint_torque(model, f, q0) ** 2)))
    decode = lambda t: (q0 + qd0 * t + 0.5 * qdd0 * t**2, f)
    act = jnp.full((10, 5), 0.2)
    res = losses.physics_residuals(decode, model, model.muscles.f_max_n, act,
                                         _consts(scale), jnp.zeros(()))["dynamics"]
    assert float(jnp.max(jnp.abs(res))) < 1e-6, res
    # a trajectory with 1 rad/s² more acceleration leaves exactly the inertial torque I·1
    off = lambda t: (q0 + qd0 * t + 0.5 * (qdd0 + 1.0) * t**2, f)
    res_off = losses.physics_residuals(off, model, model.muscles.f_max_n, act,
                                       _consts(scale), jnp.zeros(()))["dynamics"]
    inertia = float(model.body.joint_inertia)
    np.testing.assert_allclose(float(res_off[0]) * scale, inertia, rtol=1e-3)


@pytest.mark.parametrize("tendon", ["rigid", "compliant"])
def test_hill_residual_vanishes_for_hill_forces(tendon):
    """F(τ) equal to the Hill forces of the window's activation gives a zero Hill residual (a
    compliant tendon: the forces in fibre-tendon equilibrium at rest); the activation comes from
    De Groote dynamics with the identified delay. The other tendon's forces do not."""
    model = _model()
    window = jnp.clip(0.3 + 0.2 * jnp.sin(jnp.arange(100)[:, None] / 7.0 + jnp.arange(5)), 0, 1)
    act = activation.window_activation(window, jnp.ones(5), jnp.full(5, 0.03), model.muscles, 100.0)
    q0, qd0 = jnp.array([0.2]), jnp.array([0.5]) if tendon == "rigid" else jnp.zeros(1)
    a_end = muscle.activation_shape(act[-1], model.muscles.shape_a)
    rigid = msk.muscle_forces(model, a_end, q0, qd0)
    compliant = jnp.asarray(diagnostics.compliant_hill_forces(model, a_end[None], q0[None],
                                                              qd0[None])[0], jnp.float32)
    f_hill, f_other = (rigid, compliant) if tendon == "rigid" else (compliant, rigid)
    decode = lambda t: (q0 + qd0 * t, f_hill)
    hill = losses.physics_residuals(decode, model, model.muscles.f_max_n, act,
                                    _consts(tendon=tendon), jnp.zeros(()))["hill"]
    other = losses.physics_residuals(lambda t: (q0 + qd0 * t, f_other), model,
                                     model.muscles.f_max_n, act, _consts(tendon=tendon),
                                     jnp.zeros(()))["hill"]
    assert float(jnp.max(jnp.abs(other))) > 1e-2
    assert float(jnp.max(jnp.abs(hill))) < 1e-4
    # the delay moves the activation: 30 ms later excitation is not the undelayed one
    undelayed = activation.window_activation(window, jnp.ones(5), jnp.zeros(5), model.muscles, 100.0)
    assert float(jnp.max(jnp.abs(undelayed[-1] - act[-1]))) > 1e-3


def test_residual_torque_basis_and_prior_penalty():
    """Basis [1, q̇, bumps at the knots (width: their spacing)]; knots span the training range."""
    knots = physio.residual_knots(np.asarray([[-0.5], [0.2], [0.9]]))
    assert knots.shape == (1, physio.RESIDUAL_KNOTS)
    np.testing.assert_allclose(knots[0, [0, -1]], [-0.5, 0.9], rtol=1e-6)
    width = 1.4 / (physio.RESIDUAL_KNOTS - 1)
    bumps = np.zeros(physio.RESIDUAL_KNOTS)
    bumps[[1, 4]] = [-1.0, 3.0]
    coef = jnp.asarray([np.concatenate([[0.5, 0.25], bumps])])  # one coordinate
    q, qd, scale = jnp.asarray([0.3]), jnp.asarray([2.0]), jnp.asarray([4.0])
    phi = lambda k: np.exp(-0.5 * ((0.3 - knots[0, k]) / width) ** 2)
    expect = 4.0 * (0.5 + 0.25 * 2.0 - 1.0 * phi(1) + 3.0 * phi(4))
    np.testing.assert_allclose(physio.residual_torque(coef, q, qd, scale, jnp.asarray(knots)),
                               [expect], rtol=1e-5)
    # far beyond the motion only the constant and damping terms are left
    far = physio.residual_torque(coef, jnp.asarray([9.0]), qd, scale, jnp.asarray(knots))
    np.testing.assert_allclose(far, [4.0 * (0.5 + 0.25 * 2.0)], rtol=1e-5)
    sc = {"f_max": jnp.asarray([[1.3, 0.7]]), "l_opt": jnp.asarray([[1.05, 1.0]]),
          "l_ts": jnp.asarray([[1.0, 0.9]])}
    # ((±0.3/0.3)² averaged) + (0.05/0.05)²/2 + (0.1/0.05)²/2 = 1 + 0.5 + 2
    assert float(physio.prior_penalty(sc, jnp.asarray([0.3, 0.05, 0.05]))) \
        == pytest.approx(3.5, rel=1e-5)


def test_residual_torque_closes_the_equation_of_motion_for_a_missing_torque():
    """A trajectory driven by the muscles plus a torque the model lacks: the dynamics residual
    is that torque, and a residual torque with the matching coefficients closes it."""
    model = _model()
    q0, qd0 = jnp.asarray([0.2]), jnp.asarray([0.5])
    f = jnp.asarray([30.0, 10.0, 5.0, 20.0, 8.0])[: model.n_muscles]
    knots = jnp.asarray(physio.residual_knots(np.asarray([[-1.0], [1.0]])))
    coef = jnp.zeros((1, physio.RESIDUAL_BASIS)).at[0, :4].set(jnp.asarray([0.1, 0.05, 0.2, 0.3]))
    missing = physio.residual_torque(coef, q0, qd0, jnp.asarray([2.0]), knots)
    qdd = msk.accelerations(model, q0, qd0, f, tau_ext=missing)
    decode = lambda t: (q0 + qd0 * t + 0.5 * qdd * t**2, f)
    act = jnp.zeros((10, model.n_muscles))
    off = _consts(tau_scale=2.0)
    on = off.replace(residual_torque=True, residual_knots_rad=knots)
    res_off = losses.physics_residuals(decode, model, model.muscles.f_max_n, act, off,
                                       jnp.asarray(0.0), coef)["dynamics"]
    r_on = losses.physics_residuals(decode, model, model.muscles.f_max_n, act, on,
                                    jnp.asarray(0.0), coef)
    res_on, tres = r_on["dynamics"], r_on["residual"]
    np.testing.assert_allclose(res_off * 2.0, missing, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(res_on, 0.0, atol=1e-4)
    np.testing.assert_allclose(tres * 2.0, missing, rtol=1e-5)


def test_loss_terms_by_name():
    """Weights are a pytree by term name; arrays (..., T) convert both ways in registration
    order, and only the physics weights decide whether a run needs the physics program."""
    w = terms.named(angle=1.0, force=0.5, dynamics=3.0, hill=4.0, effort=5.0, residual=6.0,
                    prior=7.0, ceiling=8.0)
    assert terms.names()[:8] == ("angle", "force", "dynamics", "hill", "effort", "residual",
                                 "prior", "ceiling")
    stacked = terms.stack(w)
    np.testing.assert_array_equal(stacked, [1, 0.5, 3, 4, 5, 6, 7, 8])
    assert terms.unstack(stacked) == w
    with pytest.raises(ValueError, match="unknown loss term"):
        terms.named(smoothness=1.0)
    assert not terms.uses_physics({**terms.named(angle=1.0, force=1.0)})
    for name in ("dynamics", "hill", "effort", "residual", "prior", "ceiling"):
        assert terms.uses_physics(terms.named(**{name: 1e-3})), name
    assert terms.n_models(w) is None
    two = {n: np.asarray([0.0, x]) for n, x in w.items()}
    assert terms.n_models(two) == 2 and terms.take(two, 1) == w
