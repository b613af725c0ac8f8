"""Fixed-step integration and pytree helpers shared by the muscle, simulator and training code.

One classical Runge-Kutta tableau (as MJX's ``_src/forward.py`` keeps one), over any pytree
state, so the activation dynamics and the full musculoskeletal simulator integrate alike.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import jax
import jax.numpy as jnp

State = TypeVar("State")


def rk4_step(f: Callable[[State], State], y: State, dt: float) -> State:
    """One classical RK4 step of y' = f(y) (autonomous; hold inputs constant over the step by
    closing over them). ``y`` and ``f(y)`` are pytrees of the same structure; local error
    O(dt⁵), global O(dt⁴)."""
    add = lambda y0, k, h: jax.tree_util.tree_map(lambda x, dx: x + h * dx, y0, k)
    k1 = f(y)
    k2 = f(add(y, k1, 0.5 * dt))
    k3 = f(add(y, k2, 0.5 * dt))
    k4 = f(add(y, k3, dt))
    return jax.tree_util.tree_map(
        lambda x, d1, d2, d3, d4: x + dt / 6.0 * (d1 + 2 * d2 + 2 * d3 + d4), y, k1, k2, k3, k4)


def tree_stack(trees):
    """Stack a sequence of same-structure pytrees along a new leading axis (for vmap)."""
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def tree_index(tree, k: int):
    """Entry ``k`` of a pytree stacked by :func:`tree_stack`."""
    return jax.tree_util.tree_map(lambda x: x[k], tree)
