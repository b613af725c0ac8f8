"""Networks: an encoder over EMG windows and a time-continuous head g(z, τ) → (q(τ), F(τ)).

Because the head is a smooth function of τ (seconds relative to the window's end, τ ≤ 0), joint
velocity and acceleration are its derivatives, taken with ``jax.jvp`` (:func:`kinematics`); a
finite-difference variant exists only as a named baseline (:func:`kinematics_fd`).

Outputs are scaled so that the raw network works in units of order one: q = q_mean + q_std · o,
F = F_scale · softplus(o) ≥ 0. The scales are fixed attributes of the module (from training data
statistics or nominal F_max), not parameters.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


class CNNEncoder(nn.Module):
    """1-D CNN over a window (W, C) → latent z (latent,). Causal: z depends on the past only.

    Layer i has ``features[i]`` channels and stride ``strides[i]``. An envelope low-passed at
    a few Hz is oversampled at a 100 Hz label rate, so the deeper layers run at a lower rate;
    each strided layer is padded on the left so that its last output still sees the window's
    last sample (no look-ahead, no stale end).
    """

    features: Sequence[int] = (32, 64, 64)
    strides: Sequence[int] = (1, 2, 2)
    kernel: int = 5
    latent: int = 64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = x
        for i, (f, s) in enumerate(zip(self.features, self.strides)):
            pad = self.kernel - 1 + (1 - h.shape[0]) % s
            h = nn.Conv(f, (self.kernel,), strides=(s,), padding=[(pad, 0)], name=f"conv{i}")(h)
            h = nn.gelu(h)
        pooled = jnp.concatenate([h[-1], jnp.mean(h, axis=0)], axis=-1)
        return nn.Dense(self.latent, name="to_latent")(pooled)


class MLPEncoder(nn.Module):
    """Baseline: the flattened window through dense layers."""

    hidden: int = 128
    latent: int = 64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.gelu(nn.Dense(self.hidden)(x.reshape(-1)))
        h = nn.gelu(nn.Dense(self.hidden)(h))
        return nn.Dense(self.latent)(h)


class GRUEncoder(nn.Module):
    """Baseline: a GRU over the window; z from its last hidden state."""

    hidden: int = 64
    latent: int = 64

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h = nn.RNN(nn.GRUCell(self.hidden))(x[None])[0]
        return nn.Dense(self.latent)(h[-1])


class ContinuousHead(nn.Module):
    """g(z, τ): an MLP on [z, Fourier features of τ/h] → (q (n,), F (M,)).

    Attributes:
      n_coords, n_muscles: output sizes.
      horizon_s: h, the history the head covers [s] (τ ∈ [−h, 0]).
      q_mean, q_std: (n,) angle scaling [rad]. f_scale: (M,) force scaling [N].
    """

    n_coords: int
    n_muscles: int
    horizon_s: float
    q_mean: tuple
    q_std: tuple
    f_scale: tuple
    hidden: int = 128
    n_freq: int = 4

    @nn.compact
    def __call__(self, z: Array, tau_s: Array) -> tuple[Array, Array]:
        s = tau_s / max(self.horizon_s, 1e-3)
        k = jnp.arange(1, self.n_freq + 1) * (jnp.pi / 2)
        feats = jnp.concatenate([jnp.atleast_1d(s), jnp.sin(k * s), jnp.cos(k * s)])
        # Dense([z, feats]) split in two: the z part does not depend on τ, so under vmap over
        # times and jvp in τ it is computed once per window and has no tangent.
        h = nn.Dense(self.hidden, name="from_z")(z) + nn.Dense(self.hidden, use_bias=False,
                                                              name="from_tau")(feats)
        h = nn.gelu(h)
        h = nn.gelu(nn.Dense(self.hidden)(h))
        out = nn.Dense(self.n_coords + self.n_muscles)(h)
        q = jnp.asarray(self.q_mean) + jnp.asarray(self.q_std) * out[: self.n_coords]
        f = jnp.asarray(self.f_scale) * nn.softplus(out[self.n_coords:])
        return q, f


class PINNModel(nn.Module):
    """Encoder + head. ``__call__(window, taus)`` → (q (K, n), F (K, M)) at the times ``taus``."""

    encoder: nn.Module
    head: ContinuousHead

    def __call__(self, window: Array, taus: Array) -> tuple[Array, Array]:
        z = self.encode(window)
        return jax.vmap(lambda t: self.head(z, t))(taus)

    def encode(self, window: Array) -> Array:
        return self.encoder(window)

    def decode(self, z: Array, tau: Array) -> tuple[Array, Array]:
        return self.head(z, tau)


def make_model(kind: str, n_coords: int, n_muscles: int, horizon_s: float, q_mean, q_std,
               f_scale, latent: int = 64) -> PINNModel:
    """``kind``: ``"cnn"`` (the method), ``"mlp"`` or ``"gru"`` (baselines)."""
    encoders: dict[str, Callable[[], nn.Module]] = {
        "cnn": lambda: CNNEncoder(latent=latent), "mlp": lambda: MLPEncoder(latent=latent),
        "gru": lambda: GRUEncoder(latent=latent)}
    if kind not in encoders:
        raise ValueError(f"unknown model '{kind}'; use one of {', '.join(encoders)}")
    head = ContinuousHead(n_coords, n_muscles, float(horizon_s), tuple(map(float, q_mean)),
                          tuple(map(float, q_std)), tuple(map(float, f_scale)))
    return PINNModel(encoders[kind](), head)


def kinematics(decode_fn: Callable[[Array], tuple[Array, Array]], tau: Array):
    """(q, q̇, q̈, F) at one τ by forward-mode autodiff of ``decode_fn(τ) -> (q, F)``."""

    def first(t):
        return jax.jvp(decode_fn, (t,), (jnp.ones_like(t),))  # ((q, F), (q̇, Ḟ))

    ((q, f), (qd, _)), (_, (qdd, _)) = jax.jvp(first, (tau,), (jnp.ones_like(tau),))
    return q, qd, qdd, f


def kinematics_fd(decode_fn: Callable[[Array], tuple[Array, Array]], tau: Array,
                  step_s: float = 1e-2):
    """Baseline: q̇, q̈ by central finite differences of the head with step ``step_s`` [s]."""
    qm, _ = decode_fn(tau - step_s)
    q, f = decode_fn(tau)
    qp, _ = decode_fn(tau + step_s)
    return q, (qp - qm) / (2 * step_s), (qp - 2 * q + qm) / step_s**2, f
