"""Causal, chunked inference: raw sEMG in, joint angles and muscle forces out as it arrives.

The envelope filter state is carried between chunks (:class:`pinnmsk.emg.EnvelopeFilter`
``.stream``), one envelope sample per label tick is kept in a window buffer, and the model's
prediction at τ = 0 is causal, so pushing a recording in chunks of any size gives the same output
as pushing it whole.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import emg, train


class Streamer:
    """Online predictor.

    Args:
      env_filter: the training run's envelope filter.
      normaliser_v: (M,) envelope normaliser [V] per muscle (training subject's).
      rest_v: (M,) resting envelope [V] subtracted before normalising (``Dataset.rest_v``).
      quadrature: subtract it in quadrature (the spec's ``emg.rest_subtraction``).
      decimation: EMG samples per label tick (EMG rate / label rate, an integer).
      window: model window length in label ticks.
      net, variables: the trained network and its variables.
    """

    def __init__(self, env_filter: emg.EnvelopeFilter, normaliser_v, decimation: int, window: int,
                 net, variables, rest_v=None, quadrature: bool = False):
        self.filter, self.decim, self.window = env_filter, int(decimation), int(window)
        self.norm = np.asarray(normaliser_v, np.float32)
        self.rest = np.zeros_like(self.norm) if rest_v is None else np.asarray(rest_v, np.float32)
        self.variables, self.quadrature = variables, quadrature
        self.state = env_filter.init_state(len(self.norm))
        self._predict = train.make_predict(net)
        self._buffer = None  # (window, M) normalised envelope at label ticks
        self._seen = 0  # EMG samples pushed so far; ticks fall on multiples of decimation
        self._batch = None  # prediction batch size, fixed by the first chunk (one compile)
        self._stream = jax.jit(env_filter.stream)

    def push(self, chunk) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feed raw sEMG (T, M) [V], muscle order. Returns (tick sample indices within the chunk,
        q (k, n) [rad], F (k, M) [N]) for the label ticks completed by this chunk."""
        chunk = np.asarray(chunk, np.float32)
        emg.check_finite(chunk, "EMG chunk")
        self.state, env = self._stream(self.state, jnp.asarray(chunk))
        env = np.asarray(env)
        ticks = np.arange((-self._seen) % self.decim, len(chunk), self.decim)
        self._seen += len(chunk)
        if len(ticks) == 0:
            return ticks, np.zeros((0,)), np.zeros((0,))
        u = emg.normalise(env[ticks], self.norm, self.rest, self.quadrature)
        if self._buffer is None:  # warm-up: the first tick fills the window
            self._buffer = np.repeat(u[:1], self.window, axis=0)
        seq = np.concatenate([self._buffer, u], axis=0)
        idx = np.arange(len(u))[:, None] + np.arange(1, self.window + 1)[None]
        windows = seq[idx]
        self._buffer = seq[-self.window:]
        self._batch = self._batch or len(windows)
        q, f = train.predict_windows(self._predict, self.variables, windows, batch=self._batch)
        return ticks, q, f
