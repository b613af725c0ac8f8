"""The gait networks: the physics network's forces and moments, the Hill weight's pull, and
the step chosen on validation."""

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import gait_net as gn


def _samples(rng, n=60, f=6, d=2, m=4, hill_scale=1.0):
    x = rng.normal(size=(n, f)).astype(np.float32)
    arm = rng.normal(scale=0.03, size=(n, d, m)).astype(np.float32)
    cap = np.array([500.0, 800.0, 300.0, 1200.0], np.float32)[:m]
    hill = (hill_scale * cap * rng.uniform(0.1, 0.9, size=(n, m))).astype(np.float32)
    moment = rng.normal(scale=20.0, size=(n, d)).astype(np.float32)  # not the Hill moment
    valid = np.ones(n, np.float32)
    return gn.Samples(*map(jnp.asarray, (x, moment, arm, hill, valid))), cap


def test_physics_forces_start_at_hill_and_stay_below_capacity():
    rng = np.random.default_rng(0)
    x, cap = _samples(rng, hill_scale=1.5)  # some Hill forces above capacity
    net = gn.MLP((8,), 4)
    params = net.init(jax.random.PRNGKey(0), x.features[:1])
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    moment, force = gn.outputs("physics", net, zero, x, jnp.asarray(cap))
    want = np.clip(np.asarray(x.hill_force), 1e-3 * cap, (1 - 1e-3) * cap)
    np.testing.assert_allclose(force, want, rtol=1e-4)
    np.testing.assert_allclose(moment, np.einsum("ndm,nm->nd", x.moment_arm, want), rtol=1e-4,
                               atol=1e-3)
    big = jax.tree_util.tree_map(lambda p: 100.0 * jnp.ones_like(p), params)
    _, force = gn.outputs("physics", net, big, x, jnp.asarray(cap))
    assert np.all(np.asarray(force) <= cap) and np.all(np.asarray(force) >= 0)


def test_hill_weight_trades_the_moment_fit_for_hill_forces():
    rng = np.random.default_rng(1)
    x, cap = _samples(rng)
    scale = 20.0 * jnp.ones(2)  # the moments' spread [N m]
    cfg = gn.NetConfig(hidden=(16,), steps=300, learning_rate=1e-2)
    gap, err = {}, {}
    for w in (0.0, 100.0):
        params, _, _ = gn.fit("physics", x, cap, scale, w, 0, cfg)
        moment, force = gn.predict("physics", params, x, cap, cfg)
        gap[w] = float(np.mean(((force - np.asarray(x.hill_force)) / cap) ** 2))
        err[w] = float(np.mean((moment - np.asarray(x.moment)) ** 2))
    assert gap[100.0] < 0.2 * gap[0.0]
    assert err[0.0] < 0.5 * err[100.0]


def test_validation_returns_its_best_step():
    rng = np.random.default_rng(2)
    x, cap = _samples(rng)
    val, _ = _samples(rng)  # unrelated targets: the validation score soon rises
    cfg = gn.NetConfig(hidden=(16,), steps=400, eval_every=50, learning_rate=1e-2)
    params, step, scores = gn.fit("data", x, cap, jnp.ones(2), 0.0, 0, cfg, val)
    assert len(scores) == 8 and step == 50 * (1 + int(np.argmin(scores)))
    net = gn.MLP((16,), 2)
    again = float(gn.loss("data", net, params, val, jnp.asarray(cap), jnp.ones(2), 0.0))
    np.testing.assert_allclose(again, min(scores), rtol=1e-5)
    assert max(scores) > min(scores)
