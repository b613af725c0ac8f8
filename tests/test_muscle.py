import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import muscle
from tests.conftest import TEST_DATA


def _curves():
    rows = {}
    with open(TEST_DATA / "opensim_curves.csv") as f:
        for r in csv.reader(f):
            if r and not r[0].startswith("#") and r[0] != "curve":
                rows.setdefault(r[0], []).append((float(r[1]), float(r[2])))
    return {k: np.array(v) for k, v in rows.items()}


def test_curves_match_opensim():
    curves = _curves()
    fns = {"active_force_length": muscle.active_force_length,
           "passive_force_length": muscle.passive_force_length,
           "force_velocity": muscle.force_velocity}
    assert set(curves) == set(fns)
    for name, xy in curves.items():
        got = np.asarray(fns[name](jnp.asarray(xy[:, 0], jnp.float32)))
        np.testing.assert_allclose(got, xy[:, 1], atol=1e-4, err_msg=name)


def _params():
    return muscle.MuscleParams.create(f_max_n=[400.0, 250.0], l_opt_m=[0.066, 0.06],
                                      l_ts_m=[0.25, 0.23], phi_opt_rad=[0.05, 0.2])


def test_hill_force_isometric_optimal_length():
    p = _params()
    # At l_m = l_opt: along-tendon projection l_opt cos(phi_opt).
    l_mt = p.l_ts_m + p.l_opt_m * jnp.cos(p.phi_opt_rad)
    f = muscle.hill_force(jnp.ones(2), l_mt, jnp.zeros(2), p)
    fpe1 = muscle.passive_force_length(1.0)
    expected = p.f_max_n * (1.0 + fpe1) * jnp.cos(p.phi_opt_rad)
    np.testing.assert_allclose(f, expected, rtol=1e-5)
    # shortening reduces force, lengthening increases it; zero activation leaves passive force only
    f_short = muscle.hill_force(jnp.ones(2), l_mt, -0.2 * p.l_opt_m, p)
    f_long = muscle.hill_force(jnp.ones(2), l_mt, 0.2 * p.l_opt_m, p)
    assert np.all(f_short < f) and np.all(f_long > f)
    f0 = muscle.hill_force(jnp.zeros(2), l_mt, jnp.zeros(2), p)
    np.testing.assert_allclose(f0, p.f_max_n * fpe1 * jnp.cos(p.phi_opt_rad), rtol=1e-5)


def test_hill_force_vmaps_over_subjects():
    p = _params()
    batch = jax.tree_util.tree_map(lambda x: jnp.stack([x, 1.2 * x]), p)
    l_mt = p.l_ts_m + p.l_opt_m
    f = jax.vmap(lambda q: muscle.hill_force(jnp.full(2, 0.5), l_mt, jnp.zeros(2), q))(batch)
    assert f.shape == (2, 2) and np.all(np.isfinite(f))
    np.testing.assert_allclose(f[0], muscle.hill_force(jnp.full(2, 0.5), l_mt, jnp.zeros(2), p))


def test_activation_dynamics_time_constants():
    p = muscle.MuscleParams.create(f_max_n=[1.0], l_opt_m=[0.1], l_ts_m=[0.2], phi_opt_rad=[0.0])
    dt = 1e-4
    up = jnp.ones((2000, 1))
    a = muscle.integrate_activation(up, dt, p, a0=jnp.zeros(1))
    # rises quickly: ~90 % within 50 ms, monotone, bounded
    assert 0.85 < float(a[500, 0]) <= 1.0
    assert np.all(np.diff(np.asarray(a[:, 0])) >= -1e-7)
    down = muscle.integrate_activation(jnp.zeros((2000, 1)), dt, p, a0=jnp.ones(1))
    # deactivation is slower than activation
    t_rise = int(np.argmax(np.asarray(a[:, 0]) > 0.5))
    t_fall = int(np.argmax(np.asarray(down[:, 0]) < 0.5))
    assert t_fall > 2 * t_rise


def test_activation_shape_and_delay():
    a = jnp.linspace(0, 1, 11)
    np.testing.assert_allclose(muscle.activation_shape(a, 0.0), a, atol=1e-7)
    curved = muscle.activation_shape(a, -2.0)
    assert np.all(curved[1:-1] > a[1:-1])  # A < 0 bends the curve upward
    np.testing.assert_allclose(np.asarray(curved)[[0, -1]], [0.0, 1.0], atol=1e-6)
    t = jnp.arange(100) * 0.001
    u = jnp.stack([jnp.sin(t * 20), t], axis=1)
    d = muscle.delay(t, u, jnp.array([0.01, 0.0]))
    np.testing.assert_allclose(d[10:, 0], u[:-10, 0], atol=1e-6)
    np.testing.assert_allclose(d[:, 1], u[:, 1], atol=1e-7)


def test_activation_rate_matches_de_groote_by_hand():
    """ȧ at hand-computed points of De Groote 2016's rate: from rest to full excitation the
    rate is 1/(τ_act (½ + 1.5 a)) per unit (u − a); from full activation to none,
    (½ + 1.5 a)/τ_deact. Removing the (½ + 1.5 a) factors changes both by 2x."""
    p = muscle.MuscleParams.create(f_max_n=[1.0], l_opt_m=[0.1], l_ts_m=[0.2], phi_opt_rad=[0.0],
                                   tau_act_s=0.015, tau_deact_s=0.060)
    up = float(muscle.activation_rate(jnp.ones(1), jnp.zeros(1), p)[0])
    down = float(muscle.activation_rate(jnp.zeros(1), jnp.ones(1), p)[0])
    f_up = 0.5 * np.tanh(10.0)  # f = ½ tanh(b (u − a)), b = 10
    assert up == pytest.approx(((f_up + 0.5) / (0.015 * 0.5) + 0.5 * (0.5 - f_up) / 0.060), 1e-5)
    assert up == pytest.approx(1.0 / (0.015 * 0.5), rel=1e-6)
    assert down == pytest.approx(-2.0 / 0.060, rel=1e-6)


def test_fibre_velocity_is_the_time_derivative_of_fibre_length():
    """ṽ = l̇_m / (v_max l_opt) with l_m = √((l_opt sin φ_opt)² + (l_mt − l_ts)²): checked
    against autodiff of that length along l_mt(t), so the cos φ factor must be right."""
    p = muscle.MuscleParams.create(f_max_n=[100.0, 100.0], l_opt_m=[0.1, 0.08],
                                   l_ts_m=[0.2, 0.25], phi_opt_rad=[0.0, 0.4])
    l_mt, ldot = jnp.array([0.31, 0.34]), jnp.array([0.05, -0.08])

    def fibre_length(lmt):
        w = p.l_opt_m * jnp.sin(p.phi_opt_rad)
        return jnp.sqrt(w**2 + (lmt - p.l_ts_m) ** 2)

    _, lm_dot = jax.jvp(fibre_length, (l_mt,), (ldot,))
    _, v_norm, cos_phi = muscle.fibre_kinematics(l_mt, ldot, p)
    np.testing.assert_allclose(v_norm, lm_dot / (p.v_max_lopt_per_s * p.l_opt_m), rtol=1e-5)
    assert float(cos_phi[1]) < 0.99  # the pennated muscle does test the factor
    # and the force-velocity multiplier is exact at known points: 1 isometric, ~0 at -v_max
    np.testing.assert_allclose(muscle.force_velocity(jnp.array([0.0, -1.0])), [1.0, 0.0],
                               atol=2e-3)


# --------------------------------------------------------------------------- compliant tendon


def test_tendon_curve_matches_opensim_formula():
    """OpenSim DeGrooteFregly2016Muscle: f_T = 0.2 exp(k_T (l̃_T − 1)) − 0.2 with
    k_T = ln(6) / 0.049 (tendon strain 0.049 at one normalised force): 0 at slack length, 1 at
    4.9 % strain; the inverse and its derivative are exact."""
    l = np.linspace(0.99, 1.06, 57)
    kt = np.log(6.0) / 0.049
    np.testing.assert_allclose(muscle.tendon_force_length(jnp.asarray(l, jnp.float32)),
                               0.2 * np.exp(kt * (l - 1.0)) - 0.2, atol=1e-4)
    assert float(muscle.tendon_force_length(1.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(muscle.tendon_force_length(1.049)) == pytest.approx(1.0, abs=1e-4)
    f = jnp.linspace(0.0, 1.4, 29)
    l_t, dl_df = muscle.tendon_length_from_force(f)
    np.testing.assert_allclose(muscle.tendon_force_length(l_t), f, atol=2e-5)
    np.testing.assert_allclose(dl_df, jax.vmap(jax.grad(
        lambda x: muscle.tendon_length_from_force(x)[0]))(f), rtol=1e-5)


def _equilibrium_state(p, a, l_norm, v_norm, fdot_norm):
    """A musculotendon state built from the fibre side: the tendon force the fibres produce at
    (a, l̃, ṽ), and the l_mt, l̇_mt that put the tendon in series with those fibres."""
    w = p.l_opt_m * jnp.sin(p.phi_opt_rad)
    l_m = l_norm * p.l_opt_m
    along = jnp.sqrt(l_m**2 - w**2)
    cos_phi = along / l_m
    f_t = muscle.fibre_force(a, l_norm, v_norm, cos_phi, p)
    l_t, dl_df = muscle.tendon_length_from_force(f_t / p.f_max_n)
    fdot = fdot_norm * p.f_max_n
    ldot_t = p.l_ts_m * dl_df * fdot_norm
    along_dot = v_norm * p.v_max_lopt_per_s * p.l_opt_m / cos_phi  # l̇_m = cos φ · d(along)/dt
    return f_t, fdot, p.l_ts_m * l_t + along, ldot_t + along_dot


def test_tendon_equilibrium_vanishes_on_a_consistent_state_and_not_elsewhere():
    p = _params()
    a, l_norm, v_norm = jnp.array([0.6, 0.3]), jnp.array([0.9, 1.1]), jnp.array([-0.2, 0.1])
    f_t, fdot, l_mt, ldot = _equilibrium_state(p, a, l_norm, v_norm, jnp.array([2.0, -1.5]))
    res = muscle.tendon_equilibrium_residual(f_t, fdot, a, l_mt, ldot, p)
    np.testing.assert_allclose(res, 0.0, atol=1e-3 * float(p.f_max_n.max()))
    kin = muscle.compliant_fibre_kinematics(l_mt, ldot, f_t, fdot, p)
    np.testing.assert_allclose(kin[0], l_norm, rtol=1e-4)
    np.testing.assert_allclose(kin[1], v_norm, rtol=1e-3, atol=1e-5)
    # the tendon rate matters: ignoring Ḟ (a rigid tendon's fibre velocity) breaks equilibrium
    bad = muscle.tendon_equilibrium_residual(f_t, 0 * fdot, a, l_mt, ldot, p)
    assert np.all(np.abs(np.asarray(bad)) > 1e-2 * np.asarray(f_t))
    # and the tendon stretch: the rigid-tendon force at the same l_mt differs
    rigid = f_t - muscle.hill_force(a, l_mt, ldot, p)
    assert np.all(np.abs(np.asarray(rigid)) > 0.05 * np.asarray(f_t))


def test_stiff_tendon_limit_is_the_rigid_tendon():
    p = _params()
    a = jnp.array([0.5, 0.2])
    l_mt = p.l_ts_m + jnp.array([1.05, 0.95]) * p.l_opt_m
    ldot = jnp.array([0.05, -0.1])
    f = muscle.hill_force(a, l_mt, ldot, p)
    res = muscle.tendon_equilibrium_residual(f, jnp.zeros(2), a, l_mt, ldot, p,
                                             strain_at_one_norm_force=1e-6)
    np.testing.assert_allclose(res, 0.0, atol=1e-2)
