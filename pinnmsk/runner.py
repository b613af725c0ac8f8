"""Training and evaluation runs: data preparation, the epoch loop, orbax checkpoints, metrics.

This is the I/O layer the experiment binaries call (as ``train.py`` is in the Flax examples): it
writes under a work directory and nothing else. Windows live on the device; each step gathers its
batch there, and the host reads losses back once per epoch (to log and to detect divergence).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import checkpoint, diagnostics, dynamics, evaluation, losses, models, sharding, train
from pinnmsk.checkpoint import Best, ConfigMismatch
from pinnmsk.data import dataset as ds_lib
from pinnmsk.data.opensim import DataError
from pinnmsk.losses import Batch, LossConstants
from pinnmsk.train import TrainConfig


class TrainingDiverged(RuntimeError):
    """Loss became NaN/Inf; the message says which epoch and which checkpoint was kept."""


@dataclasses.dataclass
class Prepared:
    """Everything a run needs that depends on data and config, built once."""

    data: ds_lib.Dataset
    train: ds_lib.Windows
    val: ds_lib.Windows | None  # validation windows (forces NaN where unlabelled), or None
    test_trials: list
    val_trials: list
    consts: LossConstants
    net: object
    window: int
    history: int
    n_labelled: int
    predict: Callable  # jitted (variables, windows) -> (q, F) at tau = 0, compiled once per run


def _label_mask(trials, fraction: float, seed: int, segment_s: float = 2.0) -> list:
    """Per trial, a boolean (T,) mask of samples whose force labels are used: a seeded random
    ``fraction`` of 2-s segments (at least one segment overall)."""
    segs = []
    for k, tr in enumerate(trials):
        n = len(tr.time_s)
        seg = max(1, int(round(segment_s * (1.0 / np.median(np.diff(tr.time_s))))))
        for lo in range(0, n, seg):
            segs.append((k, lo, min(lo + seg, n)))
    rng = np.random.default_rng([seed, 7])
    n_keep = min(len(segs), max(1, int(round(fraction * len(segs)))))
    keep = rng.choice(len(segs), n_keep, replace=False)
    masks = [np.zeros(len(tr.time_s), bool) for tr in trials]
    for i in keep:
        k, lo, hi = segs[i]
        masks[k][lo:hi] = True
    return masks


def tendon_of(config: TrainConfig, spec) -> str:
    """The Hill term's tendon: the config's, or the data spec's where the config says "spec"."""
    return spec.tendon if config.tendon == "spec" else config.tendon


def prepare(data: ds_lib.Dataset, config: TrainConfig) -> Prepared:
    spec = data.spec
    rate = spec.labels.rate_hz
    window = int(round(spec.windows.length_s * rate))
    history = int(round(spec.windows.history_s * rate)) + 1
    parts = data.split()
    if not parts["train"]:
        raise DataError(f"{spec.path}: field 'split' leaves no training trials")
    if not parts["test"]:
        raise DataError(f"{spec.path}: field 'split.test' selects no trials")
    tr = ds_lib.make_windows(parts["train"], window, history, spec.windows.stride)
    has_labels = tr.has_forces.copy()
    if not config.force_labels:
        has_labels[:] = False
    elif config.label_fraction < 1.0:
        masks = _label_mask(parts["train"], config.label_fraction, config.seed)
        has_labels &= np.array([masks[t][e] for t, e in zip(tr.trial, tr.end_index)])
    tr.has_forces = has_labels
    tr.forces = np.where(has_labels[:, None, None], np.nan_to_num(tr.forces), 0.0).astype(np.float32)

    q_all = np.concatenate([t.q_rad for t in parts["train"]])
    q_mean, q_std = q_all.mean(0), np.maximum(q_all.std(0), 1e-3)
    f_nom = np.asarray(data.models.muscles.f_max_n).mean(0)  # (M,) mean over subjects
    lab_f = [t.forces_n for t in parts["train"] if t.forces_n is not None]
    if has_labels.any() and lab_f:
        f_all = np.concatenate(lab_f)
        sigma_f, f_scale = np.maximum(f_all.std(0), 1e-3 * f_nom), np.maximum(f_all.mean(0), 1.0)
    else:  # label-free: nominal scales
        sigma_f, f_scale = 0.1 * f_nom, 0.1 * f_nom
    # Torque scale: RMS of the inverse-dynamics torque along the training motions.
    torques = []
    for t in parts["train"]:
        qd, qdd = diagnostics.derivatives(t.time_s, t.q_rad.astype(np.float64))
        body = data.model_of(t.subject).body
        torques.append(np.asarray(jax.vmap(lambda a, b, c: dynamics.inverse_dynamics(
            body, a, b, c))(jnp.asarray(t.q_rad, jnp.float32), jnp.asarray(qd, jnp.float32),
                            jnp.asarray(qdd, jnp.float32))))
    tau_scale = np.maximum(np.sqrt(np.mean(np.concatenate(torques) ** 2, axis=0)), 1e-3)
    bounds = np.asarray([spec.identification[k] for k in losses.PHYSIO_NAMES], np.float32)
    consts = LossConstants(jnp.asarray(q_std, jnp.float32), jnp.asarray(sigma_f, jnp.float32),
                           jnp.asarray(tau_scale, jnp.float32), jnp.asarray(bounds), rate,
                           spec.windows.history_s, config.n_colloc, config.accel,
                           tendon_of(config, spec),
                           jnp.asarray([spec.identification["prior_width"][k]
                                        for k in ("f_max", "l_opt", "l_ts")], jnp.float32),
                           config.residual_weight > 0)
    net = models.make_model(config.model, data.model_of(0).n_coords, data.model_of(0).n_muscles,
                            spec.windows.history_s, q_mean, q_std, f_scale, config.latent)
    val = (ds_lib.make_windows(parts["validation"], window, 1) if parts["validation"] else None)
    if val is not None and not config.force_labels:
        val.has_forces[:] = False  # label-free: forces are not there to select by
    return Prepared(data, tr, val, parts["test"], parts["validation"], consts, net, window,
                    history, int(has_labels.sum()), train.make_predict(net))


def weights_for(config: TrainConfig, physics_weights) -> np.ndarray:
    """Loss weight vectors (K, 5) for physics weights λ_k: angle 1, force 1 (0 without labels),
    dynamics λ, Hill ``config.hill_weight`` · λ, effort ``config.effort_weight`` where λ > 0,
    residual torque ``config.residual_weight`` · λ, prior ``config.prior_weight`` · λ."""
    wf = 1.0 if config.force_labels else 0.0
    return np.stack([np.asarray(losses.loss_weights(1.0, wf, lam, config.hill_weight * lam,
                                                    config.effort_weight if lam > 0 else 0.0,
                                                    config.residual_weight * lam,
                                                    config.prior_weight * lam))
                     for lam in np.atleast_1d(physics_weights)])


# --------------------------------------------------------------------------- run records


def spec_fingerprint(path: str) -> str:
    """SHA-256 of the data spec file: a resumed run must train on the spec it started with."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data_fingerprint(data: ds_lib.Dataset) -> str:
    """SHA-256 of every trial's id, excitation and angles as loaded: a resumed run must see the
    data it started with (an edited recording changes it even when the spec does not)."""
    h = hashlib.sha256()
    for t in data.trials:
        h.update(t.id.encode())
        h.update(np.ascontiguousarray(t.excitation, np.float32).tobytes())
        h.update(np.ascontiguousarray(t.q_rad, np.float32).tobytes())
    return h.hexdigest()


def read_run_record(workdir: str) -> dict | None:
    """``workdir/config.json`` (the run's configuration record), None if there is none; a
    ConfigMismatch naming the file if it cannot be read (e.g. half-written)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigMismatch(f"{path}: not a readable run record (a half-written file?); "
                             "delete it and its checkpoints/, or use a new --workdir") from None


def check_resumable(workdir: str, spec_path: str) -> None:
    """Before loading any data: a run record in ``workdir`` must be readable and made with the
    same data spec contents (the full comparison happens in :func:`fit`)."""
    old = read_run_record(workdir)
    if old is None:
        return
    path = os.path.join(workdir, "config.json")
    sha = old.get("data_spec_sha256")
    if sha is not None and os.path.isfile(spec_path) and sha != spec_fingerprint(spec_path):
        raise ConfigMismatch(f"{path}: the run in this work directory used a different "
                             f"data_spec_sha256 (the contents of {spec_path} changed since); use "
                             "a new --workdir or restore the spec to resume")


def _check_config(workdir: str, record: dict) -> None:
    path = os.path.join(workdir, "config.json")
    old = read_run_record(workdir)
    if old is not None:
        diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if diff:
            raise ConfigMismatch(
                f"{path}: the run in this work directory used a different {diff[0]} "
                f"({old.get(diff[0])!r}, now {record.get(diff[0])!r}); use a new --workdir "
                "or the same flags to resume")
    else:
        os.makedirs(workdir, exist_ok=True)
        write_json(path, record)


# --------------------------------------------------------------------------- training


def _device_data(w: ds_lib.Windows) -> Batch:
    return Batch(jnp.asarray(w.emg), jnp.asarray(w.q), jnp.asarray(w.forces),
                 jnp.asarray(w.has_forces, jnp.float32), jnp.asarray(w.subject))


def make_train_step(prep: Prepared, tx, use_physics: bool, sweep: bool,
                    layout: str = "vmap"):
    """The pure train step for ``prep``'s model; for a sweep, the K-model step of
    ``layout`` (:data:`pinnmsk.train.SWEEP_LAYOUTS`, default "vmap"), whose "vmap" layout uses
    the model form that vmaps well (:func:`pinnmsk.models.for_sweep`: same parameters and
    function)."""
    if not sweep:
        return train.make_train_step(prep.net, tx, prep.data.models, prep.consts, use_physics)
    net = models.for_sweep(prep.net) if layout == "vmap" else prep.net
    return train.make_sweep_step(net, tx, prep.data.models, prep.consts, use_physics, layout)


def make_step_fn(step, mesh=None):
    """jit(gather a batch on device + train step): ``(state, data, idx (S, B), i, weights)``.

    The epoch loop stays on the host, one dispatch per step. A ``lax.scan`` over the epoch would
    save the dispatches, but XLA:CPU runs the convolutions inside a loop body ~15x slower than
    the same step compiled on its own (measured: 200 ms vs 12 ms per 256-window step).
    """

    def one(state, data: Batch, idx, i, weights):
        ix = jax.lax.dynamic_index_in_dim(idx, i, keepdims=False)
        batch = jax.tree_util.tree_map(lambda a: a[ix], data)
        if mesh is not None:
            batch = sharding.constrain_batch(batch, mesh)
        return step(state, batch, weights)

    return jax.jit(one, donate_argnums=(0,))


def fit(prep: Prepared, config: TrainConfig, weights: np.ndarray, workdir: str | None,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
        stop_after_epochs: int | None = None, mesh=None,
        on_epoch: Callable[[dict], None] | None = None, sweep_layout: str = "vmap"):
    """Train one model (``weights`` (7,)) or a sweep of K models (``weights`` (K, 7)).

    Resumes from ``workdir``'s newest checkpoint if there is one. Returns (state, history);
    history is a list of per-epoch dicts. ``stop_after_epochs`` ends early (for tests of resume).
    ``mesh`` (:func:`pinnmsk.sharding.make_mesh`): split the sweep over its ``"sweep"`` axis and
    each batch over its ``"data"`` axis. ``on_epoch(record)`` is called with each epoch's history
    record ({"epoch", "loss" (K,), "terms" (K, 7)}), e.g. to write TensorBoard scalars.
    ``sweep_layout``: the K-model program's layout (:func:`pinnmsk.train.make_sweep_step`), a
    computational choice only; "unrolled_encoder" is the faster one on a CPU
    (``benchmarks/README.md``) and needs ``mesh=None``.
    Raises :class:`TrainingDiverged` if every model's loss becomes NaN/Inf.
    """
    with (checkpoint.Checkpoints(workdir) if workdir is not None
          else contextlib.nullcontext()) as ckpt:
        return _fit(prep, config, weights, workdir, ckpt, log, stop_after_epochs, mesh,
                    on_epoch, sweep_layout)


def _fit(prep, config, weights, workdir, ckpt, log, stop_after_epochs, mesh, on_epoch,
         sweep_layout):
    sweep = weights.ndim == 2
    n = len(prep.train)
    bs = min(config.batch_size, n)
    steps = n // bs
    tx = train.make_optimizer(config, steps)
    use_physics = losses.uses_physics(weights)
    if sweep and mesh is not None and sweep_layout != "vmap":
        raise ValueError(f"sweep layout '{sweep_layout}' runs on one device; use 'vmap' with a "
                         "mesh")
    step = make_train_step(prep, tx, use_physics, sweep, sweep_layout)
    init = lambda: new_state(prep, tx, config.seed)
    state = train.stack_states([init()] * len(weights)) if sweep else init()
    n_models = len(weights) if sweep else 1
    start, history, best = 0, [], None
    if workdir is not None:
        _check_config(workdir, {**dataclasses.asdict(config), "data_spec": prep.data.spec.path,
                                "data_spec_sha256": spec_fingerprint(prep.data.spec.path),
                                "data_sha256": data_fingerprint(prep.data),
                                "weights": np.asarray(weights).tolist()})
        start, state, history, best = ckpt.restore(state)
        if start:
            log(f"resuming from the checkpoint of epoch {start} in {workdir}/checkpoints")
    data = _device_data(prep.train)
    w = jnp.asarray(weights, jnp.float32)
    if mesh is not None:
        if bs % mesh.shape["data"]:
            raise ValueError(f"batch size {bs} is not divisible by the mesh's data axis "
                             f"({mesh.shape['data']}); change --batch_size")
        if sweep and len(weights) % mesh.shape["sweep"]:
            raise ValueError(f"{len(weights)} sweep settings do not split over the mesh's sweep "
                             f"axis ({mesh.shape['sweep']})")
        if not sweep and mesh.shape["sweep"] != 1:
            raise ValueError("a single run needs a mesh with sweep axis 1")
        state = (sharding.shard_stacked if sweep else sharding.replicate)(state, mesh)
        w = (sharding.shard_stacked if sweep else sharding.replicate)(w, mesh)
        data = sharding.replicate(data, mesh)
    step_fn = make_step_fn(step, mesh)
    score_fn = evaluation.validation_scorer(prep, sweep)
    end = config.epochs if stop_after_epochs is None else min(config.epochs, stop_after_epochs)
    t0, done0 = time.time(), start
    diverged = np.zeros(len(weights) if sweep else 1, bool)
    last_saved = start
    for epoch in range(start, end):
        perm = np.random.default_rng([config.seed, epoch]).permutation(n)[: steps * bs]
        idx = jnp.asarray(perm.reshape(steps, bs))
        ms = []
        for i in range(steps):
            state, m = step_fn(state, data, idx, i, w)
            ms.append((m["loss"], m["terms"]))
        ms = jax.device_get(ms)  # the one host round trip per epoch
        loss = np.stack([x[0] for x in ms])  # (steps[, K])
        terms = np.stack([x[1] for x in ms]).mean(0)
        ep_loss = loss.mean(0)
        now_bad = ~np.isfinite(np.atleast_1d(ep_loss))
        if now_bad.all():
            kept = (f"the last good checkpoint (epoch {last_saved}) is kept in "
                    f"{workdir}/checkpoints" if last_saved and workdir else
                    "no checkpoint was written")
            raise TrainingDiverged(
                f"training diverged at epoch {epoch + 1} (loss {ep_loss}); {kept}; lower "
                "--learning_rate or --physics_weight")
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
                        "terms": np.atleast_2d(terms).tolist(),
                        "validation": [None if not np.isfinite(x) else float(x) for x in score]})
        if on_epoch is not None:
            on_epoch(history[-1])
        rate = (epoch + 1 - done0) * steps * bs / (time.time() - t0)
        eta = (end - epoch - 1) * steps * bs / rate
        tstr = " ".join(f"{k}={v:.3g}" for k, v in zip(losses.WEIGHT_NAMES,
                                                        np.atleast_2d(terms).mean(0)))
        vstr = f" val={np.nanmean(score):.4g}" if np.isfinite(score).any() else ""
        log(f"epoch {epoch + 1}/{config.epochs} loss={np.nanmean(ep_loss):.4g} [{tstr}]{vstr} "
            f"| {rate:,.0f} windows/s{' x ' + str(len(weights)) + ' models' if sweep else ''}"
            f" | ETA {eta:.0f} s")
        if ckpt is not None and ((epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == end):
            ckpt.save(epoch + 1, state, history, best)
            last_saved = epoch + 1
    if best is None:  # nothing left to train: the run had already ended
        best = Best(jax.device_get(state.params), np.full(n_models, start), np.full(n_models,
                                                                                   np.nan))
    return state, history, diverged, best


INFERENCE_RECORD = "inference.json"


def inference_record(prep: Prepared, config: TrainConfig) -> dict:
    """What inference needs that training data determined: per subject the EMG normaliser and
    rest values (muscle order), the network's output scalings and window, and the spec's
    fingerprint. Saved beside a run so that ``predict`` starts without the training data."""
    head = prep.net.head
    return {"data_spec_sha256": spec_fingerprint(prep.data.spec.path),
            "subjects": list(prep.data.subjects),
            "normaliser_v": np.asarray(prep.data.normaliser_v).tolist(),
            "rest_v": np.asarray(prep.data.rest_v).tolist(),
            "q_mean": list(head.q_mean), "q_std": list(head.q_std),
            "f_scale": list(head.f_scale), "window": prep.window,
            "n_coords": head.n_coords, "n_muscles": head.n_muscles,
            "model": config.model, "latent": config.latent,
            "bounds": np.asarray(prep.consts.bounds).tolist(), "seed": config.seed}


def net_from_record(rec: dict, spec) -> models.PINNModel:
    """The run's network rebuilt from its :func:`inference_record` and its spec."""
    return models.make_model(rec["model"], rec["n_coords"], rec["n_muscles"],
                             spec.windows.history_s, np.asarray(rec["q_mean"]),
                             np.asarray(rec["q_std"]), np.asarray(rec["f_scale"]),
                             rec["latent"])


def restore_from_record(workdir: str, rec: dict, spec, config: TrainConfig):
    """(net, best parameters) of ``workdir``'s newest checkpoint, from its inference record and
    spec alone (no data loaded). Raises ConfigMismatch if there is no checkpoint."""
    net = net_from_record(rec, spec)
    tx = train.make_optimizer(config, 1)  # the optimiser state's structure only
    # shapes only (jax.eval_shape): running the initialisers eagerly compiles ~120 small
    # programs, 4.6 s of predict's start-up
    template = jax.eval_shape(lambda: train.init_state(
        net, tx, (rec["window"], rec["n_muscles"]), len(rec["subjects"]), rec["n_muscles"],
        np.asarray(rec["bounds"], np.float32), rec["seed"]))
    epoch, _, _, best = checkpoint.restore_latest(workdir, template)
    if epoch == 0:
        raise ConfigMismatch(f"{workdir}/checkpoints: no checkpoint; train first")
    return net, best.params


def new_state(prep: Prepared, tx, seed: int) -> train.TrainState:
    """The initial train state of ``prep``'s network and identified parameters (initialised in
    one compiled program: run eagerly, the initialisers compile ~120 small ones, ~5 s)."""
    return jax.jit(lambda: train.init_state(
        prep.net, tx, prep.train.emg.shape[1:], len(prep.data.subjects),
        prep.data.model_of(0).n_muscles, np.asarray(prep.consts.bounds), seed))()


def _json_safe(obj):
    """``obj`` with NumPy scalars as floats and NaN/Inf as null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str, obj) -> None:
    """Write strict JSON atomically (a temporary file renamed over ``path``): a crash or a full
    disk never leaves a half-written file; NaN/Inf are written as null."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(_json_safe(obj), f, indent=1, allow_nan=False, default=float)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
