"""pinnmsk.activation: the forward-sensitivity activation equals the plain composition (delay,
clip, RK4 loop differentiated by JAX) in value and in every derivative training takes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import activation, muscle

M, W, RATE = 4, 100, 100.0


def _case(seed: int, batch: int = 3):
    rng = np.random.default_rng(seed)
    t = np.arange(W)[:, None] / RATE
    # envelopes crossing the clip at 1 (gain > 1 below) and rising/falling, so both activation
    # and deactivation speeds and the clip's zero derivative are exercised
    win = np.clip(0.4 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 3, (batch, 1, M)) * t
                                     + rng.uniform(0, 6, (batch, 1, M))), 0, 1)
    gain = rng.uniform(0.3, 1.6, (batch, M))
    delay = rng.uniform(0.0, 0.1, (batch, M))
    params = muscle.MuscleParams.create(np.full(M, 300.0), 0.06, 0.2, 0.1,
                                        tau_act_s=rng.uniform(0.01, 0.02, M),
                                        tau_deact_s=rng.uniform(0.04, 0.07, M))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return f32(win), f32(gain), f32(delay), params


def _batched(fn, params):
    return jax.vmap(lambda w, g, d: fn(w, g, d, params, RATE))


@pytest.mark.parametrize("seed", [0, 1])
def test_value_and_gradients_match_the_plain_loop(seed):
    win, gain, delay, params = _case(seed)
    fast = _batched(activation.window_activation, params)
    ref = _batched(activation.reference_window_activation, params)
    a, a_ref = fast(win, gain, delay), ref(win, gain, delay)
    assert a.shape == (3, 50, M)
    np.testing.assert_allclose(a, a_ref, atol=2e-6)
    assert float(jnp.std(a_ref)) > 0.1  # the activation moves over the tail

    # a loss weighing every sample: gradients in the gain and the delay, as training takes them
    ct = jnp.asarray(np.random.default_rng(seed + 7).normal(size=a.shape), jnp.float32)
    loss = lambda fn: lambda g, d: jnp.sum(ct * fn(win, g, d))
    g_fast = jax.grad(loss(fast), (0, 1))(gain, delay)
    g_ref = jax.grad(loss(ref), (0, 1))(gain, delay)
    for got, want in zip(g_fast, g_ref):
        assert float(jnp.max(jnp.abs(want))) > 1e-2
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * float(jnp.max(jnp.abs(want))))
    # forward mode, one direction in both
    tg, td = jnp.ones_like(gain), jnp.full_like(delay, 0.5)
    _, j_fast = jax.jvp(lambda g, d: fast(win, g, d), (gain, delay), (tg, td))
    _, j_ref = jax.jvp(lambda g, d: ref(win, g, d), (gain, delay), (tg, td))
    np.testing.assert_allclose(j_fast, j_ref, atol=1e-4 * float(jnp.max(jnp.abs(j_ref))))


def test_window_and_time_constant_tangents_take_the_plain_path():
    """Derivatives training never takes (in the envelope, in τ_act) are still right."""
    win, gain, delay, params = _case(3, batch=1)
    win, gain, delay = win[0], gain[0], delay[0]

    def with_tau(fn):
        return lambda w, ta: fn(w, gain, delay, params.replace(tau_act_s=ta), RATE)

    tangents = (jnp.ones_like(win) * 0.1, jnp.full((M,), 1e-3))
    _, got = jax.jvp(with_tau(activation.window_activation), (win, params.tau_act_s), tangents)
    _, want = jax.jvp(with_tau(activation.reference_window_activation),
                      (win, params.tau_act_s), tangents)
    assert float(jnp.max(jnp.abs(want))) > 1e-3
    np.testing.assert_allclose(got, want, atol=1e-6)
