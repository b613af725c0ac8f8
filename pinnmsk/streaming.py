"""Causal, chunked inference: raw sEMG in, joint angles and muscle forces out as it arrives.

One jitted program per chunk length does all of it (:func:`make_stream_step`): the envelope
filter, carried between chunks (:class:`pinnmsk.emg.EnvelopeFilter` ``.stream``), sampling at the
label ticks, normalising, updating the window buffer (one envelope sample per tick) and the
model's prediction at τ = 0 for every tick the chunk completes; its state is donated, so a chunk
costs one dispatch. The prediction is causal, so pushing a recording in chunks of any size gives
the same output as pushing it whole.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import emg, train

Array = jax.Array


class StreamState(NamedTuple):
    """filter: the envelope filter's state; buffer (window, M): the normalised envelope at the
    last ``window`` label ticks; started: whether a tick has been seen (the first one fills the
    buffer)."""

    filter: emg.EnvelopeState
    buffer: Array
    started: Array


def make_stream_step(env_filter: emg.EnvelopeFilter, normalise: Callable[[Array], Array],
                     decimation: int, predict: Callable, chunk_len: int, window: int):
    """``step(state, variables, chunk (T, M), first_tick) -> (state, q (k, n), F (k, M))`` for
    chunks of ``chunk_len`` = T samples, ``k = ⌈T / decimation⌉``: the label ticks fall on
    samples ``first_tick + decimation · j`` of the chunk; rows whose tick lies beyond the chunk
    are padding, and the buffer only advances over the real ticks. ``predict(variables,
    windows (k, window, M))`` is the model at τ = 0. Pure; jit it (the state is donatable)."""
    k = -(-chunk_len // decimation)

    def step(state: StreamState, variables, chunk: Array, first_tick: Array):
        filt, env = env_filter.stream(state.filter, chunk)
        ticks = first_tick + decimation * jnp.arange(k)
        n_real = jnp.sum(ticks < chunk_len)
        u = normalise(env[jnp.minimum(ticks, chunk_len - 1)])  # (k, M)
        buffer = jnp.where(state.started, state.buffer, jnp.broadcast_to(u[:1], state.buffer.shape))
        seq = jnp.concatenate([buffer, u], axis=0)  # (window + k, M)
        idx = jnp.arange(k)[:, None] + jnp.arange(1, window + 1)[None]
        q, f = predict(variables, seq[idx])
        new_buffer = jax.lax.dynamic_slice_in_dim(seq, n_real, window, axis=0)
        return StreamState(filt, new_buffer, state.started | (n_real > 0)), q, f

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
    """

    def __init__(self, env_filter: emg.EnvelopeFilter, normaliser_v, decimation: int, window: int,
                 net, variables, rest_v=None, quadrature: bool = False):
        self.filter, self.decim, self.window = env_filter, int(decimation), int(window)
        norm = jnp.asarray(np.asarray(normaliser_v, np.float32))
        rest = jnp.zeros_like(norm) if rest_v is None else jnp.asarray(np.asarray(rest_v,
                                                                                  np.float32))
        self._normalise = lambda env: emg.normalise(env, norm, rest, quadrature)
        self._variables = variables
        self.state = StreamState(env_filter.init_state(len(norm)),
                                 jnp.zeros((self.window, len(norm)), jnp.float32),
                                 jnp.zeros((), bool))
        self._predict = train.make_predict(net)
        self._seen = 0  # EMG samples pushed so far; ticks fall on multiples of decimation
        self._steps = {}  # chunk length -> jitted step (one compile per length)

    def _step(self, chunk_len: int):
        """The jitted step for ``chunk_len`` samples, the variables closed over: they are fixed
        for a Streamer, and passing their ~20 arrays as arguments cost ~110 µs per chunk, more
        than the filter and the network together."""
        if chunk_len not in self._steps:
            step = make_stream_step(self.filter, self._normalise, self.decim, self._predict,
                                    chunk_len, self.window)
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
