"""The one RK4 tableau and the pytree helpers."""

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import ode


def _solve(dt: float, t_end: float = 1.0):
    """y' = A y for a rotation-plus-decay A, on a pytree state {"x": (2,), "z": ()}."""
    a = jnp.asarray([[-0.3, 2.0], [-2.0, -0.3]], jnp.float64)

    def f(y):
        return {"x": a @ y["x"], "z": -1.5 * y["z"]}

    y = {"x": jnp.asarray([1.0, 0.0], jnp.float64), "z": jnp.asarray(2.0, jnp.float64)}
    for _ in range(int(round(t_end / dt))):
        y = ode.rk4_step(f, y, dt)
    exact_x = jax.scipy.linalg.expm(a * t_end) @ jnp.asarray([1.0, 0.0], jnp.float64)
    return max(float(jnp.max(jnp.abs(y["x"] - exact_x))),
               float(abs(y["z"] - 2.0 * np.exp(-1.5 * t_end))))


def test_rk4_converges_at_fourth_order():
    """Halving the step divides the global error by ~2⁴ (as diffrax's test_ode_order)."""
    with jax.enable_x64(True):
        errs = [_solve(dt) for dt in (0.1, 0.05, 0.025)]
    orders = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
    np.testing.assert_allclose(orders, 4.0, atol=0.15)


def test_tree_stack_and_index_round_trip():
    trees = [{"a": jnp.full((2,), float(i)), "b": (jnp.asarray(i), jnp.zeros((3, 1)) + i)}
             for i in range(3)]
    stacked = ode.tree_stack(trees)
    assert stacked["a"].shape == (3, 2) and stacked["b"][1].shape == (3, 3, 1)
    for i in range(3):
        back = ode.tree_index(stacked, i)
        for x, y in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(trees[i])):
            np.testing.assert_array_equal(x, y)
