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

from pinnmsk.shapes import (Coords, CoordSeries, EmgWindow, ForceSeries, Latent, MuscleVec,
                            QueryTimes, Scalar)

Array = jax.Array


class CausalConv(nn.Module):
    """Causal 1-D convolution (W, C) → (⌈(W − 1)/stride⌉ + 1, features) whose last output sees
    the last input sample (left padding only). Parameters as ``nn.Conv``: kernel (k, C, F), bias
    (F,).

    ``impl="lax"`` calls the convolution primitive. ``impl="matmul"`` unfolds the k taps and
    contracts them with one einsum: the same numbers, but under ``vmap`` over models (a sweep)
    it becomes a batched matmul, whereas a convolution with per-model kernels becomes a grouped
    convolution, which XLA:CPU runs slower than the separate convolutions (timings:
    ``benchmarks/README.md``).
    """

    features: int
    kernel: int = 5
    stride: int = 1
    impl: str = "lax"

    def padding(self, width: int) -> int:
        """Left zeros for an input of ``width``: k − 1, plus what aligns the last output to
        the last input."""
        return self.kernel - 1 + (1 - width) % self.stride

    def out_width(self, width: int) -> int:
        """The output length for an input of ``width``."""
        return (width + self.padding(width) - self.kernel) // self.stride + 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        w, c = x.shape
        kern = self.param("kernel", nn.initializers.lecun_normal(), (self.kernel, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        pad = self.padding(w)
        if self.impl == "lax":
            y = jax.lax.conv_general_dilated(x[None], kern, (self.stride,), [(pad, 0)],
                                             dimension_numbers=("NWC", "WIO", "NWC"))[0]
            return y + bias
        return conv_taps(jnp.pad(x, ((pad, 0), (0, 0))), kern, bias, self.stride)


def conv_taps(x: Array, kernel: Array, bias: Array, stride: int = 1, dilation: int = 1) -> Array:
    """Unpadded 1-D convolution (T, C) → (n, F) as one einsum over the k taps: output i reads
    ``x[i·stride + j·dilation]``, j < k, with kernel (k, C, F) and bias (F,);
    n = ⌊(T − 1 − (k − 1)·dilation) / stride⌋ + 1. :class:`CausalConv` (``"matmul"``) runs it on
    its padded input; a streamed encoder runs it with ``dilation`` at the full input rate."""
    k = kernel.shape[0]
    n = (x.shape[0] - 1 - (k - 1) * dilation) // stride + 1
    span = stride * (n - 1) + 1
    taps = jnp.stack([x[j * dilation:j * dilation + span:stride] for j in range(k)], axis=1)
    return jnp.einsum("nkc,kcf->nf", taps, kernel) + bias


class CNNEncoder(nn.Module):
    """1-D CNN over a window (W, C) → latent z (latent,). Causal: z depends on the past only.

    Layer i has ``features[i]`` channels and stride ``strides[i]``. An envelope low-passed at
    a few Hz is oversampled at a 100 Hz label rate, so the deeper layers run at a lower rate;
    each strided layer is padded on the left so that its last output still sees the window's
    last sample (no look-ahead, no stale end).

    ``deep_impl``: the :class:`CausalConv` form of the layers after the first, a computational
    choice only (same parameters, same function): ``"lax"`` is fastest for one model;
    ``"matmul"`` is what a vmapped sweep should use (:func:`for_sweep`). The first layer's input,
    the EMG batch, is shared by all models of a sweep, so it stays a convolution either way.
    """

    features: Sequence[int] = (32, 64, 64)
    strides: Sequence[int] = (1, 2, 2)
    kernel: int = 5
    latent: int = 64
    deep_impl: str = "lax"

    def setup(self):
        for i, (f, s) in enumerate(zip(self.features, self.strides)):  # named conv0, conv1, ...
            setattr(self, f"conv{i}", CausalConv(f, self.kernel, s,
                                                 "lax" if i == 0 else self.deep_impl))
        self.to_latent = nn.Dense(self.latent)

    def feature_map(self, x: EmgWindow) -> Array:
        """The deepest layer's outputs (n, features[-1]), after its GELU; the last row sees the
        window's last sample."""
        h = x
        for i in range(len(self.features)):
            h = nn.gelu(getattr(self, f"conv{i}")(h))
        return h

    def pool(self, last: Array, mean: Array) -> Latent:
        """z from the feature map's last row and its mean over the window (both (F,))."""
        return self.to_latent(jnp.concatenate([last, mean], axis=-1))

    def __call__(self, x: EmgWindow) -> Latent:
        h = self.feature_map(x)
        return self.pool(h[-1], jnp.mean(h, axis=0))


class MLPEncoder(nn.Module):
    """Baseline: the flattened window through dense layers."""

    hidden: int = 128
    latent: int = 64

    @nn.compact
    def __call__(self, x: EmgWindow) -> Latent:
        h = nn.gelu(nn.Dense(self.hidden)(x.reshape(-1)))
        h = nn.gelu(nn.Dense(self.hidden)(h))
        return nn.Dense(self.latent)(h)


class GRUEncoder(nn.Module):
    """Baseline: a GRU over the window; z from its last hidden state."""

    hidden: int = 64
    latent: int = 64

    @nn.compact
    def __call__(self, x: EmgWindow) -> Latent:
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
    def __call__(self, z: Latent, tau_s: Scalar) -> tuple[Coords, MuscleVec]:
        s = tau_s / max(self.horizon_s, 1e-3)
        k = jnp.arange(1, self.n_freq + 1) * (jnp.pi / 2)
        feats = jnp.concatenate([jnp.atleast_1d(s), jnp.sin(k * s), jnp.cos(k * s)])
        # Dense([z, feats]) split in two: the z part does not depend on τ, so under vmap over
        # times and jvp in τ it is computed once per window and has no tangent. Each part is
        # initialised as its rows of the joint layer would be (LeCun over the joint fan-in):
        # a larger τ part would start q̈ ~10x larger and swamp the data terms.
        n_in = z.shape[-1] + feats.shape[-1]
        init = lambda n: nn.initializers.variance_scaling(n / n_in, "fan_in", "truncated_normal")
        h = (nn.Dense(self.hidden, kernel_init=init(z.shape[-1]), name="from_z")(z)
             + nn.Dense(self.hidden, use_bias=False, kernel_init=init(feats.shape[-1]),
                        name="from_tau")(feats))
        h = nn.gelu(h)
        h = nn.gelu(nn.Dense(self.hidden)(h))
        out = nn.Dense(self.n_coords + self.n_muscles)(h)  # flax names it OUTPUT_LAYER
        q = jnp.asarray(self.q_mean) + jnp.asarray(self.q_std) * out[: self.n_coords]
        f = jnp.asarray(self.f_scale) * nn.softplus(out[self.n_coords:])
        return q, f


# The head's output layer, [angles | forces] columns, as Flax auto-names it (saved checkpoints
# carry the name); pinnmsk.calibration adapts its columns.
OUTPUT_LAYER = "Dense_1"


class PINNModel(nn.Module):
    """Encoder + head. ``__call__(window, taus)`` → (q (K, n), F (K, M)) at the times ``taus``."""

    encoder: nn.Module
    head: ContinuousHead

    def __call__(self, window: EmgWindow, taus: QueryTimes) -> tuple[CoordSeries, ForceSeries]:
        z = self.encode(window)
        return jax.vmap(lambda t: self.head(z, t))(taus)

    def encode(self, window: EmgWindow) -> Latent:
        return self.encoder(window)

    def decode(self, z: Latent, tau: Scalar) -> tuple[Coords, MuscleVec]:
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


def for_sweep(net: PINNModel) -> PINNModel:
    """``net`` computing the same function in the form that vmaps well over models.

    On XLA:CPU, 1-D convolutions with per-model kernels become grouped convolutions under vmap;
    the matmul form makes a K-model sweep step faster but a single data-only step slower
    (``python -m benchmarks.training sweep``, ``benchmarks/README.md``), so single
    runs keep the convolution.
    """
    if isinstance(net.encoder, CNNEncoder):
        return net.clone(encoder=net.encoder.clone(deep_impl="matmul"))
    return net


Decoder = Callable[[Scalar], tuple[Coords, MuscleVec]]  # τ ↦ (q, F) of one window
LatentDecoder = Callable[[Latent, Scalar], tuple[Coords, MuscleVec]]  # (z, τ) ↦ (q, F)


def kinematics(decode_fn: Decoder, tau: Scalar
               ) -> tuple[Coords, Coords, Coords, MuscleVec, MuscleVec]:
    """(q, q̇, q̈, F, Ḟ) at one τ by forward-mode autodiff of ``decode_fn(τ) -> (q, F)``."""

    def first(t):
        return jax.jvp(decode_fn, (t,), (jnp.ones_like(t),))  # ((q, F), (q̇, Ḟ))

    ((q, f), (qd, fd)), (_, (qdd, _)) = jax.jvp(first, (tau,), (jnp.ones_like(tau),))
    return q, qd, qdd, f, fd


def kinematics_fd(decode_fn: Decoder, tau: Scalar, step_s: float = 1e-2
                  ) -> tuple[Coords, Coords, Coords, MuscleVec, MuscleVec]:
    """Baseline: q̇, q̈ (and Ḟ) by central finite differences of the head, step ``step_s`` [s]."""
    qm, fm = decode_fn(tau - step_s)
    q, f = decode_fn(tau)
    qp, fp = decode_fn(tau + step_s)
    return (q, (qp - qm) / (2 * step_s), (qp - 2 * q + qm) / step_s**2, f,
            (fp - fm) / (2 * step_s))
