"""Train state, the pure jitted train step, the vmapped sweep, prediction and metrics.

``train_step(state, batch, weights) -> (state, metrics)`` is pure (``weights``: the loss
weights by name, :mod:`pinnmsk.terms`); a sweep runs ``jax.vmap(train_step, in_axes=(0, None,
0))`` over K stacked states and K models' weights ``{name: (K,)}``, so K models train in one
compiled program with one pass over the data. No I/O here; the host loop with
checkpoints lives in :mod:`pinnmsk.runner`.
"""

from __future__ import annotations

from typing import Callable, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jaxtyping import PyTree

from pinnmsk import losses, ode, physio, terms
from pinnmsk.config import SWEEP_LAYOUTS, TrainConfig  # noqa: F401 (re-exported)
from pinnmsk.losses import Batch, LossConstants
from pinnmsk.models import PINNModel
from pinnmsk.msk import MskModel
from pinnmsk.shapes import CoordBatch, EmgBatch, ForceBatch

Array = jax.Array


class Params(TypedDict):
    """What the optimiser updates: the network's Flax variables, and per subject the raw
    identified parameters (:func:`pinnmsk.physio.init_physio`: (S, M) arrays per name, the
    residual torque's coefficients (S, n, basis))."""

    net: dict
    physio: dict[str, Array]


class TrainState(struct.PyTreeNode):
    """params; the optimiser's state; step (int32 scalar); rng (PRNG key). In a sweep every
    leaf has a leading model axis K (:func:`stack_states`)."""

    params: Params
    opt_state: PyTree[Array]  # optax state of the chain in make_optimizer
    step: Array
    rng: Array


Metrics = dict  # {"loss": (), "terms": (T,) in terms.names() order, "grad_norm": ()}; K leading
StepFn = Callable[[TrainState, Batch, terms.Weights], tuple[TrainState, Metrics]]
PredictFn = Callable[[dict, EmgBatch], tuple[CoordBatch, ForceBatch]]


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    total = max(config.epochs * steps_per_epoch, 1)
    warm = max(min(config.warmup_epochs * steps_per_epoch, total - 1), 1)
    # optax needs decay_steps > warmup_steps: a one-step run (--epochs=1 with one batch) decays
    # over a nominal extra step it never takes.
    sched = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warm,
                                               max(total, warm + 1),
                                               end_value=0.02 * config.learning_rate)
    return optax.chain(optax.clip_by_global_norm(config.grad_clip), optax.adam(sched))


def init_state(net: PINNModel, tx: optax.GradientTransformation, window_shape: tuple[int, int],
               n_subjects: int, n_muscles: int, bounds, seed: int) -> TrainState:
    """Initial state for ``seed``; ``window_shape``: (W, M); ``bounds`` (6, 2)
    (:class:`pinnmsk.losses.LossConstants`)."""
    key = jax.random.PRNGKey(seed)
    k_init, k_run = jax.random.split(key)
    variables = net.init(k_init, jnp.zeros(window_shape, jnp.float32), jnp.zeros((1,)))
    n_coords = getattr(getattr(net, "head", None), "n_coords", 1)
    params = {"net": variables,
              "physio": physio.init_physio(n_subjects, n_muscles, bounds, n_coords)}
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), k_run)


def _fns(net: PINNModel, variables):
    encode = lambda w: net.apply(variables, w, method=PINNModel.encode)
    decode = lambda z, t: net.apply(variables, z, t, method=PINNModel.decode)
    return encode, decode


def make_train_step(net: PINNModel, tx: optax.GradientTransformation, base: MskModel,
                    consts: LossConstants, use_physics: bool = True) -> StepFn:
    """The pure step ``(state, batch, weights) -> (state, metrics)`` (not jitted: jit or vmap it).

    metrics: {"loss": scalar, "terms": (T,) unweighted means in :func:`pinnmsk.terms.names`
    order, "grad_norm": scalar}.
    ``use_physics=False`` drops the physics terms from the program (data-only runs).
    """

    def loss_fn(params, batch, weights, key):
        encode, decode = _fns(net, params["net"])
        return losses.batch_loss(encode, decode, base, params["physio"], consts, batch, weights,
                                 key, use_physics)

    def step(state: TrainState, batch: Batch, weights: terms.Weights):
        key, sub = jax.random.split(state.rng)
        (loss, values), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, weights, sub)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, opt_state, state.step + 1, key)
        return new, {"loss": loss, "terms": values, "grad_norm": optax.tree.norm(grads)}

    return step




def make_sweep_step(net: PINNModel, tx: optax.GradientTransformation, base: MskModel,
                    consts: LossConstants, use_physics: bool = True, layout: str = "vmap",
                    batch_per_model: bool = False) -> StepFn:
    """K models at once: ``(states, batch, weights {name: (K,)}) -> (states, metrics)``, the states
    stacked on axis 0 and the batch shared (``batch_per_model``: each model its own batch, K
    leading, as seeds with their own data order have); each model's numbers are those of
    :func:`make_train_step` (a sum of independent losses has the per-model gradients).

    ``layout`` is a computational choice only:
      ``"vmap"``: the whole step vmapped over models (the encoder's per-model convolutions
        become grouped convolutions or, for :func:`pinnmsk.models.for_sweep`'s form, batched
        matmuls);
      ``"unrolled_encoder"``: each model's encoder runs on the batch as in a single run (one
        convolution program per model, unrolled at trace time); the head, the physics and the
        optimiser, made of many small operations, are vmapped over models. On XLA:CPU the
        K-model encoder is memory-bound and gains nothing from vmap, while the physics does
        (``python -m benchmarks.training sweep``).
    """
    b_axis = 0 if batch_per_model else None
    if layout == "vmap":
        return jax.vmap(make_train_step(net, tx, base, consts, use_physics),
                        in_axes=(0, b_axis, 0))
    if layout != "unrolled_encoder":
        raise ValueError(f"unknown sweep layout '{layout}'; use one of {', '.join(SWEEP_LAYOUTS)}")

    def rest(params, z, batch, weights, key):
        _, decode = _fns(net, params["net"])
        return losses.latent_batch_loss(z, decode, base, params["physio"], consts, batch,
                                        weights, key, use_physics)

    def total(params, batch, weights, keys):
        emg = lambda k: batch.emg[k] if batch_per_model else batch.emg
        z = jnp.stack([jax.vmap(_fns(net, ode.tree_index(params["net"], k))[0])(emg(k))
                       for k in range(terms.n_models(weights))])
        loss, values = jax.vmap(rest, in_axes=(0, 0, b_axis, 0, 0))(params, z, batch, weights,
                                                                    keys)
        return jnp.sum(loss), (loss, values)

    def step(states: TrainState, batch: Batch, weights: terms.Weights):
        keys = jax.vmap(jax.random.split)(states.rng)  # (K, 2, ...)
        (_, (loss, values)), grads = jax.value_and_grad(total, has_aux=True)(
            states.params, batch, weights, keys[:, 1])
        updates, opt_state = jax.vmap(tx.update)(grads, states.opt_state, states.params)
        params = optax.apply_updates(states.params, updates)
        new = TrainState(params, opt_state, states.step + 1, keys[:, 0])
        return new, {"loss": loss, "terms": values,
                     "grad_norm": jax.vmap(optax.tree.norm)(grads)}

    return step


def stack_states(states) -> TrainState:
    return ode.tree_stack(states)


def unstack_state(states: TrainState, k: int) -> TrainState:
    return ode.tree_index(states, k)


def make_predict(net: PINNModel) -> PredictFn:
    """``predict(variables, windows (B, W, M)) -> (q (B, n), F (B, M))`` at τ = 0 (causal)."""

    def predict(variables, windows):
        encode, decode = _fns(net, variables)
        return jax.vmap(lambda w: decode(encode(w), jnp.zeros(())))(windows)

    return jax.jit(predict)


def predict_windows(predict, variables, windows: np.ndarray, batch: int = 2048):
    """Host helper: predictions for many windows in fixed-size chunks (one compile)."""
    qs, fs = [], []
    n = len(windows)
    for lo in range(0, n, batch):
        chunk = windows[lo:lo + batch]
        pad = batch - len(chunk)
        if pad:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
        q, f = predict(variables, jnp.asarray(chunk))
        qs.append(np.asarray(q)[:batch - pad])
        fs.append(np.asarray(f)[:batch - pad])
    return np.concatenate(qs), np.concatenate(fs)
