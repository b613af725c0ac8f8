"""Causal, chunked inference: raw sEMG in, joint angles and muscle forces out as it arrives.

One jitted program per chunk length does all of it (:func:`make_stream_step`): the envelope
filter, carried between chunks (:class:`pinnmsk.emg.EnvelopeFilter` ``.stream``), sampling at the
label ticks, normalising, updating the window buffer (one envelope sample per tick) and the
model's prediction at τ = 0 for every tick the chunk completes; its state is donated, so a chunk
costs one dispatch. The prediction is causal, so pushing a recording in chunks of any size gives
the same output as pushing it whole.

The CNN encoder streams incrementally (:class:`IncrementalCNN`): each tick computes only each
layer's one new output, and the window's padded start, which the trained network sees as zeros,
is recomputed from the window's first samples alone; the result equals the whole-window
network to float rounding.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import emg, models, train

Array = jax.Array


class EncoderState(NamedTuple):
    """tails: per layer i, its input at the last (k − 1)·d_i ticks (full rate, d_i the product
    of the earlier layers' strides); last (window, F): the deepest layer's output at each of the
    window buffer's ticks, at the full rate (rows within the receptive field of the buffer's
    start are never read)."""

    tails: tuple
    last: Array


class WholeWindows:
    """The model on every tick's whole window (any encoder); no state of its own."""

    def __init__(self, net: models.PINNModel, window: int):
        self.predict, self.window = train.make_predict(net), int(window)

    def init(self, variables, buffer: Array) -> tuple:
        return ()

    def step(self, variables, state: tuple, seq: Array, n_real: Array):
        """``seq`` (W + k, M): the window buffer, then k new ticks → ((), q (k, n), F (k, M)),
        tick i's prediction from ``seq[i + 1 : i + 1 + W]``."""
        k = seq.shape[0] - self.window
        idx = jnp.arange(k)[:, None] + jnp.arange(1, self.window + 1)[None]
        return (), *self.predict(variables, seq[idx])


class IncrementalCNN:
    """A model with a :class:`pinnmsk.models.CNNEncoder` over a sliding window, one tick at a
    time, with :class:`WholeWindows`'s interface.

    The window network's deepest layer has outputs every P = ∏ strides ticks back from the
    window's last sample; mean-pooled with its last row they make z. An output whose receptive
    field (R + 1 ticks, R = Σ (k − 1)·d_i) lies inside the window equals the same layer run at
    the full rate over the stream, which is carried: per tick each layer computes one output
    from its carried input tail (dilation d_i). The outputs that reach the window's zero padding
    (its first R ticks, and those the strides' alignment adds before the start) come from the
    encoder itself run on the window's first E = R + ((W − R) mod P) ticks, which pads and aligns
    exactly as the whole window does. The sum of both, over the window's output count, is the
    mean.

    Args:
      net: the trained run's network; window: W ticks, at least R + 1.
    """

    @staticmethod
    def dilations_of(encoder: models.CNNEncoder) -> list[int]:
        """d_i per layer: the product of the earlier layers' strides."""
        return [int(np.prod(encoder.strides[:i])) for i in range(len(encoder.strides))]

    @classmethod
    def applies(cls, net: models.PINNModel, window: int) -> bool:
        """Whether ``net`` has a CNN encoder whose receptive field is shorter than ``window``."""
        return isinstance(net.encoder, models.CNNEncoder) and window > sum(
            (net.encoder.kernel - 1) * d for d in cls.dilations_of(net.encoder))

    def __init__(self, net: models.PINNModel, window: int):
        encoder = net.encoder
        self.net, self.window = net, int(window)
        # the prefix's deep layers as einsums: 14.5 µs against 18.6 µs as convolutions here
        self.prefix_encoder = encoder.clone(deep_impl="matmul")
        self.dilations = self.dilations_of(encoder)
        self.reach = [(encoder.kernel - 1) * d for d in self.dilations]  # each layer's tail
        reach, period = sum(self.reach), int(np.prod(encoder.strides))
        if not self.applies(net, self.window):
            raise ValueError(f"a window of {window} ticks is within the encoder's receptive "
                             f"field ({reach + 1} ticks); stream it whole")
        self.prefix = reach + (self.window - reach) % period
        convs = [models.CausalConv(f, encoder.kernel, s)
                 for f, s in zip(encoder.features, encoder.strides)]

        def n_out(w):  # the deepest layer's output count for a window of w ticks
            for conv in convs:
                w = conv.out_width(w)
            return w

        self.n_window = n_out(self.window)
        pos = self.window - 1 - period * np.arange(self.n_window)
        self.interior = pos[pos >= reach]  # window positions carried from the stream
        pre = self.prefix - 1 - period * np.arange(n_out(self.prefix))[::-1]  # rows' positions
        self.edge = np.flatnonzero(pre < reach)  # the prefix's rows standing for the rest
        assert len(self.interior) + len(self.edge) == self.n_window

    def _layer(self, params, i: int, x: Array) -> Array:
        """Layer i at the full tick rate over ``x`` (n, C_i), unpadded: (n − reach_i, F_i)."""
        p = params[f"conv{i}"]
        return models.nn.gelu(models.conv_taps(x, p["kernel"], p["bias"], 1, self.dilations[i]))

    def init(self, variables, buffer: Array) -> EncoderState:
        """The state for a window buffer (W, M) (the stream's first window)."""
        params = variables["params"]["encoder"]
        tails, h = [], buffer
        for i, r in enumerate(self.reach):
            tails.append(h[h.shape[0] - r:])
            h = self._layer(params, i, h)
        last = jnp.concatenate([jnp.zeros((self.window - h.shape[0], h.shape[1]), h.dtype), h])
        return EncoderState(tuple(tails), last)

    def step(self, variables, state: EncoderState, seq: Array, n_real: Array):
        """``seq`` (W + k, M): the window buffer then k new ticks, of which the first ``n_real``
        are real. Returns (state advanced by ``n_real`` ticks, q (k, n), F (k, M)), tick i's
        prediction from ``seq[i + 1 : i + 1 + W]``."""
        params = variables["params"]["encoder"]
        w, k = self.window, seq.shape[0] - self.window
        inputs, h = [], seq[w:]  # each layer's input (its tail, then the new ticks); outputs
        for i, tail in enumerate(state.tails):
            inputs.append(jnp.concatenate([tail, h], axis=0))
            h = self._layer(params, i, inputs[-1])
        last = jnp.concatenate([state.last, h], axis=0)  # (W + k, F), aligned with seq
        ticks = jnp.arange(k)[:, None]
        interior = last[ticks + 1 + self.interior[None]].sum(axis=1)  # (k, F)
        apply = lambda method, *a: self.prefix_encoder.apply({"params": params}, *a,
                                                             method=method)
        prefixes = seq[ticks + 1 + jnp.arange(self.prefix)[None]]  # (k, E, C)
        edge = jax.vmap(lambda x: apply(models.CNNEncoder.feature_map, x)[self.edge].sum(0))(
            prefixes)
        z = apply(models.CNNEncoder.pool, last[ticks[:, 0] + w],
                  (interior + edge) / self.n_window)
        q, f = jax.vmap(lambda z: self.net.apply(variables, z, jnp.zeros(()),
                                                 method=models.PINNModel.decode))(z)
        tails = tuple(jax.lax.dynamic_slice_in_dim(x, n_real, r, axis=0)
                      for x, r in zip(inputs, self.reach))
        return EncoderState(tails, jax.lax.dynamic_slice_in_dim(last, n_real, w, axis=0)), q, f


class StreamState(NamedTuple):
    """filter: the envelope filter's state; buffer (window, M): the normalised envelope at the
    last ``window`` label ticks; model: the model's own state (:class:`EncoderState`, or () for
    :class:`WholeWindows`); started: whether a tick has been seen (the first one fills the
    buffer)."""

    filter: emg.EnvelopeState
    buffer: Array
    model: EncoderState | tuple
    started: Array


def make_stream_step(env_filter: emg.EnvelopeFilter, normalise: Callable[[Array], Array],
                     decimation: int, model: WholeWindows | IncrementalCNN, chunk_len: int):
    """``step(state, variables, chunk (T, M), first_tick) -> (state, q (k, n), F (k, M))`` for
    chunks of ``chunk_len`` = T samples, ``k = ⌈T / decimation⌉``: the label ticks fall on
    samples ``first_tick + decimation · j`` of the chunk; rows whose tick lies beyond the chunk
    are padding, and the buffer only advances over the real ticks. ``model`` predicts at τ = 0
    (:class:`WholeWindows` or :class:`IncrementalCNN`). Pure; jit it (the state is donatable)."""
    k = -(-chunk_len // decimation)

    def step(state: StreamState, variables, chunk: Array, first_tick: Array):
        filt, env = env_filter.stream(state.filter, chunk)
        ticks = first_tick + decimation * jnp.arange(k)
        n_real = jnp.sum(ticks < chunk_len)
        u = normalise(env[jnp.minimum(ticks, chunk_len - 1)])  # (k, M)
        buffer = jnp.where(state.started, state.buffer, jnp.broadcast_to(u[:1], state.buffer.shape))
        mstate = jax.lax.cond(state.started, lambda: state.model,
                              lambda: model.init(variables, buffer))
        seq = jnp.concatenate([buffer, u], axis=0)  # (window + k, M)
        mstate, q, f = model.step(variables, mstate, seq, n_real)
        new_buffer = jax.lax.dynamic_slice_in_dim(seq, n_real, buffer.shape[0], axis=0)
        return StreamState(filt, new_buffer, mstate, state.started | (n_real > 0)), q, f

    return step


class Streamer:
    """Online predictor.

    Args:
      env_filter: the training run's envelope filter.
      normaliser_v: (M,) envelope normaliser [V] per muscle (training subject's).
      rest_v: (M,) resting envelope [V] subtracted before normalising (``Dataset.rest_v``).
      quadrature: subtract it in quadrature (the spec's ``emg.rest_subtraction``).
      decimation: EMG samples per label tick (EMG rate / label rate, an integer).
      window: model window length in label ticks.
      net, variables: the trained network and its variables (fixed for the Streamer's life: its
        compiled steps hold them).
      incremental: stream a CNN encoder tick by tick (:class:`IncrementalCNN`; the same numbers
        as the whole window to float rounding) rather than run it on every tick's window.
    """

    def __init__(self, env_filter: emg.EnvelopeFilter, normaliser_v, decimation: int, window: int,
                 net, variables, rest_v=None, quadrature: bool = False, incremental: bool = True):
        self.filter, self.decim, self.window = env_filter, int(decimation), int(window)
        norm = jnp.asarray(np.asarray(normaliser_v, np.float32))
        rest = jnp.zeros_like(norm) if rest_v is None else jnp.asarray(np.asarray(rest_v,
                                                                                  np.float32))
        self._normalise = lambda env: emg.normalise(env, norm, rest, quadrature)
        self._variables = variables
        streams = incremental and IncrementalCNN.applies(net, self.window)
        self.model = (IncrementalCNN if streams else WholeWindows)(net, self.window)
        buffer = jnp.zeros((self.window, len(norm)), jnp.float32)
        model_state = jax.tree.map(jnp.zeros_like, jax.eval_shape(self.model.init, variables,
                                                                  buffer))
        self.state = StreamState(env_filter.init_state(len(norm)), buffer, model_state,
                                 jnp.zeros((), bool))
        self._seen = 0  # EMG samples pushed so far; ticks fall on multiples of decimation
        self._steps = {}  # chunk length -> jitted step (one compile per length)

    def _step(self, chunk_len: int):
        """The jitted step for ``chunk_len`` samples, the variables closed over: they are fixed
        for a Streamer, and passing their ~20 arrays as arguments cost ~110 µs per chunk, more
        than the filter and the network together."""
        if chunk_len not in self._steps:
            step = make_stream_step(self.filter, self._normalise, self.decim, self.model,
                                    chunk_len)
            variables = self._variables
            self._steps[chunk_len] = jax.jit(lambda state, chunk, first: step(
                state, variables, chunk, first), donate_argnums=(0,))
        return self._steps[chunk_len]

    def push(self, chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feed raw sEMG (T, M) [V], muscle order. Returns (tick sample indices within the chunk,
        q (k, n) [rad], F (k, M) [N]) for the label ticks completed by this chunk."""
        chunk = np.asarray(chunk, np.float32)
        emg.check_finite(chunk, "EMG chunk")
        first = (-self._seen) % self.decim
        ticks = np.arange(first, len(chunk), self.decim)
        self._seen += len(chunk)
        if len(chunk) == 0:
            return ticks, np.zeros((0,)), np.zeros((0,))
        self.state, q, f = self._step(len(chunk))(self.state, chunk, np.int32(first))
        # np.asarray, not jax.device_get: the latter's tree walk and transfer bookkeeping cost
        # ~30 µs per chunk here, a third of a 10 ms chunk's budget at 100x real time
        return ticks, np.asarray(q)[:len(ticks)], np.asarray(f)[:len(ticks)]
