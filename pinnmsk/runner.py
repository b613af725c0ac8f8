"""The epoch loop: device data, the jitted step, validation selection, checkpoints, progress.

The experiment binaries call :func:`fit` (as ``train.py`` in the Flax examples): it writes under
a work directory (checkpoints, the run's configuration record) and nothing else. Windows live on
the device; each step gathers its batch there, and the host reads losses back once per epoch (to
log and to detect divergence). What the loop starts from is built in :mod:`pinnmsk.prepare`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import checkpoint, evaluation, sharding, terms, train
from pinnmsk.checkpoint import Best
from pinnmsk.data import dataset as ds_lib
from pinnmsk.losses import Batch
from pinnmsk.prepare import Prepared, make_init, make_train_step
from pinnmsk.records import check_config, data_fingerprint, spec_fingerprint
from pinnmsk.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """Loss became NaN/Inf; the message says which epoch and which checkpoint was kept."""


def _device_data(w: ds_lib.Windows) -> Batch:
    return Batch(jnp.asarray(w.emg), jnp.asarray(w.q), jnp.asarray(w.forces),
                 jnp.asarray(w.has_forces, jnp.float32), jnp.asarray(w.subject))


def make_step_fn(step, mesh=None):
    """jit(gather a batch on device + train step): ``(state, data, idx (S, B), i, weights)``;
    ``idx`` (K, S, B) gathers one batch per model (K leading) for a step that takes them.

    The epoch loop stays on the host, one dispatch per step. A ``lax.scan`` over the epoch would
    save the dispatches, but XLA:CPU runs the convolutions inside a loop body many times slower
    than the same step compiled on its own (``benchmarks/README.md``).
    """

    def one(state, data: Batch, idx, i, weights):
        ix = jax.lax.dynamic_index_in_dim(idx, i, axis=idx.ndim - 2, keepdims=False)
        batch = jax.tree_util.tree_map(lambda a: a[ix], data)
        if mesh is not None:
            batch = sharding.constrain_batch(batch, mesh)
        return step(state, batch, weights)

    return jax.jit(one, donate_argnums=(0,))


class Programs(NamedTuple):
    """What :func:`fit` compiles for one set of settings: ``init(seed)`` (the optimiser's state
    included), the jitted step (:func:`make_step_fn`) and the validation scorer (None without
    validation data)."""

    init: Callable
    step_fn: Callable
    score_fn: Callable | None


def programs(prep: Prepared, config: TrainConfig, steps: int, use_physics: bool, sweep: bool,
             sweep_layout: str = "vmap", mesh=None, batch_per_model: bool = False) -> Programs:
    """:class:`Programs` for these settings, built once per ``prep`` (kept in ``prep.programs``):
    they depend on the config only through the optimiser's settings (the seed and the loss
    weights are arguments), so refitting the same data (resume, the single runs of a sweep)
    neither traces nor compiles again. ``batch_per_model``: a sweep whose models each gather
    their own batches (seeds with their own data order)."""
    key = (repr(dataclasses.replace(config, seed=0)), steps, use_physics, sweep, sweep_layout,
           mesh, batch_per_model)
    if key not in prep.programs:
        tx = train.make_optimizer(config, steps)
        step = make_train_step(prep, tx, use_physics, sweep, sweep_layout, batch_per_model)
        prep.programs[key] = Programs(make_init(prep, tx), make_step_fn(step, mesh),
                                      evaluation.validation_scorer(prep, sweep))
    return prep.programs[key]


def fit(prep: Prepared, config: TrainConfig, weights: terms.Weights, workdir: str | None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
        stop_after_epochs: int | None = None, mesh=None,
        on_epoch: Callable[[dict], None] | None = None, sweep_layout: str = "vmap",
        progress_every_s: float = 20.0, seeds=None):
    """Train one model (``weights`` ``{name: scalar}``, :mod:`pinnmsk.terms`) or a sweep of K
    models (``weights`` ``{name: (K,)}``).

    ``seeds`` (K,) ints, for a sweep: model k is initialised, shuffled and draws its
    collocation times from ``seeds[k]`` exactly as a single run with ``config.seed = seeds[k]``
    (each model gathers its own batches); None: every model from ``config.seed``, sharing the
    data order (a sweep over loss weights alone, compared at equal initialisation).

    Resumes from ``workdir``'s newest checkpoint if there is one. Returns (state, history,
    diverged (K,) bool, best :class:`~pinnmsk.checkpoint.Best`); history is a list of per-epoch
    dicts. ``stop_after_epochs`` ends early (for tests of resume).
    ``mesh`` (:func:`pinnmsk.sharding.make_mesh`): split the sweep over its ``"sweep"`` axis and
    each batch over its ``"data"`` axis. ``on_epoch(record)`` is called with each epoch's history
    record ({"epoch", "loss" (K,), "terms" (K, T) in :func:`pinnmsk.terms.names` order}), e.g.
    to write TensorBoard scalars.
    ``sweep_layout``: the K-model program's layout (:func:`pinnmsk.train.make_sweep_step`), a
    computational choice only; "unrolled_encoder" is the faster one on a CPU
    (``benchmarks/README.md``) and needs ``mesh=None``.
    ``progress_every_s``: within an epoch, a progress line (step, rate, time left) at most this
    often; the first step's compilation is announced and timed, and rates and ETAs leave it out.
    Raises :class:`TrainingDiverged` if every model's loss becomes NaN/Inf.
    """
    with (checkpoint.Checkpoints(workdir) if workdir is not None
          else contextlib.nullcontext()) as ckpt:
        return _fit(prep, config, weights, workdir, ckpt, log, stop_after_epochs, mesh,
                    on_epoch, sweep_layout, progress_every_s, seeds)


class _Clock:
    """Training speed without the first step's compilation: ``rate`` counts the steps run after
    it (the epoch's own time when there are none yet)."""

    def __init__(self, windows_per_step: int):
        self.bs = windows_per_step
        self.t_ready = None  # when the compiled step first returned
        self.steps_after = 0

    def rate(self, epoch_steps: int, epoch_s: float) -> float:
        """windows/s."""
        if self.steps_after > 0 and time.time() > self.t_ready:
            return self.steps_after * self.bs / (time.time() - self.t_ready)
        return epoch_steps * self.bs / max(epoch_s, 1e-9)


def _fit(prep, config, weights, workdir, ckpt, log, stop_after_epochs, mesh, on_epoch,
         sweep_layout, progress_every_s, seeds):
    k_models = terms.n_models(weights)
    sweep = k_models is not None
    if seeds is not None and (not sweep or len(seeds) != k_models):
        raise ValueError(f"{len(seeds)} seeds for {k_models or 1} weight settings: give one "
                         "seed per model of a sweep")
    per_model = seeds is not None
    if per_model and mesh is not None:
        raise ValueError("seeds as a sweep axis run on one device; drop the mesh flags")
    n = len(prep.train)
    bs = min(config.batch_size, n)
    steps = n // bs
    use_physics = terms.uses_physics(weights)
    if sweep and mesh is not None and sweep_layout != "vmap":
        raise ValueError(f"sweep layout '{sweep_layout}' runs on one device; use 'vmap' with a "
                         "mesh")
    progs = programs(prep, config, steps, use_physics, sweep, sweep_layout, mesh, per_model)
    if per_model:
        state = train.stack_states([progs.init(int(s)) for s in seeds])
    else:
        state = progs.init(config.seed)
        state = train.stack_states([state] * k_models) if sweep else state
    n_models = k_models or 1
    start, history, best = 0, [], None
    if workdir is not None:
        check_config(workdir, {**dataclasses.asdict(config), "data_spec": prep.data.spec.path,
                                "data_spec_sha256": spec_fingerprint(prep.data.spec.path),
                                "data_sha256": data_fingerprint(prep.data),
                                "weights": dict(weights),  # check_config writes it as JSON
                                **({"seeds": [int(x) for x in seeds]} if per_model else {})})
        start, state, history, best = ckpt.restore(state)
        if start:
            log(f"resuming from the checkpoint of epoch {start} in {workdir}/checkpoints")
    data = _device_data(prep.train)
    w = {n: jnp.asarray(x, jnp.float32) for n, x in weights.items()}
    if mesh is not None:
        if bs % mesh.shape["data"]:
            raise ValueError(f"batch size {bs} is not divisible by the mesh's data axis "
                             f"({mesh.shape['data']}); change --batch_size")
        if sweep and k_models % mesh.shape["sweep"]:
            raise ValueError(f"{k_models} sweep settings do not split over the mesh's sweep "
                             f"axis ({mesh.shape['sweep']})")
        if not sweep and mesh.shape["sweep"] != 1:
            raise ValueError("a single run needs a mesh with sweep axis 1")
        state = (sharding.shard_stacked if sweep else sharding.replicate)(state, mesh)
        w = (sharding.shard_stacked if sweep else sharding.replicate)(w, mesh)
        data = sharding.replicate(data, mesh)
    step_fn, score_fn = progs.step_fn, progs.score_fn
    end = config.epochs if stop_after_epochs is None else min(config.epochs, stop_after_epochs)
    clock = _Clock(bs)
    diverged = np.zeros(n_models, bool)
    last_saved = start
    for epoch in range(start, end):
        order = lambda seed: np.random.default_rng([seed, epoch]).permutation(n)[: steps * bs]
        idx = jnp.asarray(np.stack([order(int(s)) for s in seeds]).reshape(-1, steps, bs)
                          if per_model else order(config.seed).reshape(steps, bs))
        ms = []
        t_epoch = last = time.time()
        for i in range(steps):
            if clock.t_ready is None:
                log("first step (it compiles the training step where this process has not "
                    "yet: up to a minute on a laptop CPU; under load XLA may print a 'Very slow "
                    "compile?' notice, which is not an error)")
                t_c = time.time()
            state, m = step_fn(state, data, idx, i, w)
            ms.append((m["loss"], m["terms"]))
            if clock.t_ready is None:
                jax.block_until_ready(m["loss"])
                clock.t_ready = last = time.time()
                log(f"first step done in {clock.t_ready - t_c:.1f} s")
                continue
            clock.steps_after += 1
            if time.time() - last >= progress_every_s and i + 1 < steps:
                jax.block_until_ready(m["loss"])
                last = time.time()
                rate = clock.rate(i + 1, last - t_epoch)
                left = ((steps - i - 1) + (end - epoch - 1) * steps) * bs / rate
                log(f"  epoch {epoch + 1}/{config.epochs}: step {i + 1}/{steps} | "
                    f"{rate:,.0f} windows/s | ETA {left:.0f} s")
        ms = jax.device_get(ms)  # the one host round trip per epoch
        loss = np.stack([x[0] for x in ms])  # (steps[, K])
        values = np.stack([x[1] for x in ms]).mean(0)
        ep_loss = loss.mean(0)
        now_bad = ~np.isfinite(np.atleast_1d(ep_loss))
        if now_bad.all():
            kept = (f"the last good checkpoint (epoch {last_saved}) is kept in "
                    f"{workdir}/checkpoints" if last_saved and workdir else
                    "no checkpoint was written")
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1} (loss {ep_loss}); {kept}; lower "
                "--learning_rate or --physics_weights")
        if now_bad.any() and not diverged[now_bad].all():
            log(f"weight setting(s) {np.flatnonzero(now_bad).tolist()} diverged at epoch "
                f"{epoch + 1}; the others continue")
        diverged |= now_bad
        score = score_fn(state.params["net"]) if score_fn else np.full(n_models, np.nan)
        if best is None or score_fn is None:
            best = Best(jax.device_get(state.params), np.full(n_models, epoch + 1), score)
        else:
            better = np.isfinite(score) & ~(score >= best.score)  # NaN best: any finite wins
            if better.any():
                host = jax.device_get(state.params)
                pick = lambda new, old: np.where(
                    better.reshape((-1,) + (1,) * (np.ndim(new) - 1)) if sweep else better[0],
                    new, old)
                best = Best(jax.tree_util.tree_map(pick, host, best.params),
                            np.where(better, epoch + 1, best.epoch),
                            np.where(better, score, best.score))
        history.append({"epoch": epoch + 1, "loss": np.atleast_1d(ep_loss).tolist(),
                        "terms": np.atleast_2d(values).tolist(),
                        "validation": [None if not np.isfinite(x) else float(x) for x in score]})
        if on_epoch is not None:
            on_epoch(history[-1])
        rate = clock.rate(steps, time.time() - t_epoch)
        eta = (end - epoch - 1) * steps * bs / rate
        tstr = " ".join(f"{k}={v:.3g}" for k, v in zip(terms.names(),
                                                        np.atleast_2d(values).mean(0)))
        vstr = f" val={np.nanmean(score):.4g}" if np.isfinite(score).any() else ""
        log(f"epoch {epoch + 1}/{config.epochs} loss={np.nanmean(ep_loss):.4g} [{tstr}]{vstr} "
            f"| {rate:,.0f} windows/s{' x ' + str(k_models) + ' models' if sweep else ''}"
            f" | ETA {eta:.0f} s")
        if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == end):
            ckpt.save(epoch + 1, state, history, best)
            last_saved = epoch + 1
    if best is None:  # nothing left to train: the run had already ended
        best = Best(jax.device_get(state.params), np.full(n_models, start), np.full(n_models,
                                                                                   np.nan))
    return state, history, diverged, best
