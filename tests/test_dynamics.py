import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import dynamics


def test_pendulum_acceleration_closed_form():
    body = dynamics.Pendulum(mass_kg=0.45, com_m=0.07, inertia_kgm2=6e-4, damping_nms=0.05,
                             stiffness_nm=0.2)
    q, qd, tau = jnp.array([0.4]), jnp.array([-1.3]), jnp.array([0.7])
    i_joint = 6e-4 + 0.45 * 0.07**2
    expected = (tau[0] - 0.45 * 9.81 * 0.07 * np.cos(0.4) - 0.05 * qd[0] - 0.2 * 0.4) / i_joint
    np.testing.assert_allclose(dynamics.forward_dynamics(body, q, qd, tau), [expected], rtol=1e-5)


def _textbook(arm, q, qd):
    m1, m2, l1, lc1, lc2, i1, i2 = (arm.m1_kg, arm.m2_kg, arm.l1_m, arm.lc1_m, arm.lc2_m,
                                    arm.i1_kgm2, arm.i2_kgm2)
    c2, s2 = np.cos(q[1]), np.sin(q[1])
    m11 = m1 * lc1**2 + i1 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * c2) + i2
    m12 = m2 * (lc2**2 + l1 * lc2 * c2) + i2
    m22 = m2 * lc2**2 + i2
    h = m2 * l1 * lc2 * s2
    coriolis = np.array([[-h * qd[1], -h * (qd[0] + qd[1])], [h * qd[0], 0.0]])
    g = arm.gravity_mps2
    grav = np.array([(m1 * lc1 + m2 * l1) * g * np.cos(q[0]) + m2 * lc2 * g * np.cos(q[0] + q[1]),
                     m2 * lc2 * g * np.cos(q[0] + q[1])])
    return np.array([[m11, m12], [m12, m22]]), coriolis, grav


def test_two_link_arm_matches_textbook():
    arm = dynamics.TwoLinkArm()
    q, qd = np.array([0.3, 1.1]), np.array([0.8, -1.7])
    m_ref, c_ref, g_ref = _textbook(arm, q, qd)
    qj, qdj = jnp.asarray(q, jnp.float32), jnp.asarray(qd, jnp.float32)
    np.testing.assert_allclose(dynamics.mass_matrix(arm, qj), m_ref, rtol=1e-5)
    np.testing.assert_allclose(dynamics.bias_forces(arm, qj, qdj), c_ref @ qd + g_ref, rtol=1e-4,
                               atol=1e-5)
    tau = jnp.array([1.0, -0.5])
    expected = np.linalg.solve(m_ref, np.asarray(tau) - c_ref @ qd - g_ref)
    np.testing.assert_allclose(dynamics.forward_dynamics(arm, qj, qdj, tau), expected, rtol=1e-4)


def test_inverse_of_forward_is_identity():
    arm = dynamics.TwoLinkArm(damping_nms=jnp.array([0.1, 0.05]))
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    q, qd, tau = (jax.random.normal(k, (32, 2)) for k in keys)
    qdd = jax.vmap(lambda a, b, c: dynamics.forward_dynamics(arm, a, b, c))(q, qd, tau)
    back = jax.vmap(lambda a, b, c: dynamics.inverse_dynamics(arm, a, b, c))(q, qd, qdd)
    np.testing.assert_allclose(back, tau, rtol=1e-4, atol=1e-4)
    wrist = dynamics.wrist()
    qdd1 = dynamics.forward_dynamics(wrist, jnp.array([0.2]), jnp.array([0.5]), jnp.array([0.3]))
    np.testing.assert_allclose(
        dynamics.inverse_dynamics(wrist, jnp.array([0.2]), jnp.array([0.5]), qdd1), [0.3],
        rtol=1e-5)


def test_energy_conserved_undamped_two_link():
    with jax.enable_x64(True):
        arm = dynamics.TwoLinkArm()
        dt, n = 1e-3, 10_000

        def f(x):
            q, qd = x[:2], x[2:]
            return jnp.concatenate([qd, dynamics.forward_dynamics(arm, q, qd, jnp.zeros(2))])

        def rk4(x, _):
            k1 = f(x); k2 = f(x + 0.5 * dt * k1); k3 = f(x + 0.5 * dt * k2); k4 = f(x + dt * k3)
            return x + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), None

        x0 = jnp.array([0.5, 1.0, 0.0, 0.0], jnp.float64)
        xT, _ = jax.jit(lambda x: jax.lax.scan(rk4, x, None, length=n))(x0)
        e0 = dynamics.energy(arm, x0[:2], x0[2:])
        e1 = dynamics.energy(arm, xT[:2], xT[2:])
        assert abs(float(e1 - e0)) / abs(float(e0)) < 1e-6
        assert float(jnp.abs(xT[2:]).max()) > 0.1  # it did move


def test_muscle_torque():
    r = jnp.array([[0.01, 0.0], [-0.02, 0.005]])
    np.testing.assert_allclose(dynamics.muscle_torque(r, jnp.array([100.0, 50.0])), [0.0, 0.25],
                               atol=1e-7)
