"""Calibration of a trained run to a new subject, without force labels ever.

A run trained with ``leave_out`` never saw one subject (:func:`pinnmsk.prepare.fold_of`); its
network predicts that person from their EMG (normalised by their own MVC/rest or calibration
EMG) as it would anyone. :func:`calibrate` adapts it from the person's calibration recordings
(the spec's train and validation parts of their trials; never their test part):

* ``mode="emg"``: EMG only. The loss is the physics alone: the predicted motion and forces must
  satisfy the joint equation of motion and the Hill muscles driven by the person's EMG, with
  their identified parameters (F_max, lengths, EMG gain, delay; Gaussian prior on the lab's
  model); the recorded angles are not read (zeroed before anything sees them).
* ``mode="emg+angles"``: the angle loss plus the same physics.

What adapts: the person's identified parameters (those named in ``hold`` stay at the trained
subjects') and the network's output layer (``adapt="output"``, the default), its head
(``"head"``), the whole network (``"all"``) or nothing of it (``"input"``). The epoch, "none"
(the run as it was) included, is chosen by the same loss on the validation part of the
calibration recordings.
Pure: the caller reads and writes runs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pinnmsk import losses, models, physio, prepare, terms, train
from pinnmsk.config import CalibrationConfig, TrainConfig
from pinnmsk.data import dataset as ds_lib
from pinnmsk.errors import DataError
from pinnmsk.losses import Batch

MIN_STEPS = 20  # batches per calibration epoch, at least
VALIDATION_WINDOWS = 256  # windows of the calibration validation part scored per epoch



def weights_of(run: TrainConfig, cal: CalibrationConfig) -> dict:
    """The calibration's loss weights ``{name: scalar}``: the run's at λ =
    ``cal.physics_weight`` without force labels; angle weight 0 for EMG only."""
    w = terms.run_weights(dataclasses.replace(run, force_labels=False), cal.physics_weight)
    if cal.mode == "emg":
        w["angle"] = np.float32(0.0)
    return w


def _batch(w: ds_lib.Windows, s_local: int, angles: bool) -> Batch:
    """Device batch of calibration windows: no force labels (zeros, has_forces 0), the angles
    zeroed unless ``angles``, every window of the one subject ``s_local``."""
    n = len(w)
    q = w.q if angles else np.zeros_like(w.q)
    return Batch(jnp.asarray(w.emg), jnp.asarray(q), jnp.zeros(w.forces.shape, jnp.float32),
                 jnp.zeros((n,), jnp.float32), jnp.full((n,), s_local, jnp.int32))


def _mask(params: dict, adapt: str, n_coords: int, angles: bool, held: tuple = ()) -> dict:
    """1.0 where calibration updates a parameter, 0.0 where it is frozen (per leaf, or per
    element for the output layer: its force columns, and its angle columns only when the
    calibration reads angles, so that the physics alone never moves the angle outputs); the
    person's parameters named in ``held`` stay at the population's."""

    def leaf(path, x):
        name = jax.tree_util.keystr(path)
        if adapt == "all" or (adapt == "head" and "'head'" in name):
            return jnp.ones_like(x)
        if adapt == "output" and f"'head']['{models.OUTPUT_LAYER}'" in name:
            cols = jnp.arange(x.shape[-1]) >= (0 if angles else n_coords)
            return jnp.broadcast_to(cols, x.shape).astype(x.dtype)
        return jnp.zeros_like(x)

    return {"net": jax.tree_util.tree_map_with_path(leaf, params["net"]),
            "physio": {k: (jnp.zeros_like if k in held else jnp.ones_like)(v)
                       for k, v in params["physio"].items()}}


def population(physio: dict, s: int) -> dict:
    """The new subject ``s``'s starting parameters (1, ...): the mean over the trained subjects'
    raw identified parameters (the population the run learned), not the untrained row."""
    others = np.arange(jax.tree_util.tree_leaves(physio)[0].shape[0]) != s
    return jax.tree_util.tree_map(lambda a: jnp.mean(jnp.asarray(a)[others], 0, keepdims=True),
                                  physio)


def calibrate(prep: prepare.Prepared, run: TrainConfig, params: dict, cal: CalibrationConfig,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)
              ) -> tuple[dict, dict]:
    """(params calibrated to ``prep``'s new subject, report) from the run's ``params``
    ({"net", "physio" (S, ...)}); only the new subject's row of "physio" and the adapted part
    of the network change. report: the windows used, the validation loss per epoch (epoch 0:
    the run as it was) and the selected epoch."""
    if prep.new_subject is None:
        raise ValueError("the run has no new subject: train it with leave_out=<subject>")
    s = prep.new_subject
    spec = prep.data.spec
    parts = ds_lib.first_seconds(prep.calibration, cal.seconds, spec.labels.rate_hz,
                                 prep.window, spec.split.validation_fraction)
    if not parts["train"] or not parts["validation"]:
        raise DataError(f"{spec.path}: subject '{prep.data.subjects[s]}' has no calibration "
                        "train or validation part (field 'split'); give it recordings beside "
                        "its test part")
    angles = cal.mode == "emg+angles"
    tr = ds_lib.make_windows(parts["train"], prep.window, prep.history, spec.windows.stride)
    va = ds_lib.make_windows(parts["validation"], prep.window, prep.history, 1)
    # fixed sizes, so that one compiled program serves every subject, mode and budget
    va_take = np.linspace(0, len(va) - 1, VALIDATION_WINDOWS).round().astype(int)
    train_b = _batch(tr, 0, angles)
    val_b = jax.tree_util.tree_map(lambda a: a[va_take], _batch(va, 0, angles))
    weights = weights_of(run, cal)
    use_physics = terms.uses_physics(weights)
    weights = {n: jnp.asarray(w) for n, w in weights.items()}
    # the one subject's problem: its nominal model, its parameters starting at the population's
    pop_raw = population(params["physio"], s)
    pop = _scales(pop_raw, prep.consts.bounds)
    c = {"base": jax.tree_util.tree_map(lambda a: a[s:s + 1], prep.data.models),
         "pop_gain": pop["emg_gain"][0], "pop": pop,
         "widths": prior_widths(spec.identification, pop), "weights": weights,
         "prior_weight": jnp.float32(cal.prior_weight)}
    own = {"net": params["net"], "physio": pop_raw}
    mask = _mask(own, cal.adapt, prep.data.model_of(0).n_coords, angles, cal.held)
    tx, step, score = _programs(prep, use_physics, cal.input_gain, run.grad_clip)
    bs = cal.batch_size
    # at least MIN_STEPS batches an epoch: a few seconds of recordings would otherwise give a
    # handful of steps in all (windows are drawn again where an epoch needs more than there are)
    steps = max(MIN_STEPS, len(tr) // bs)
    sched = optax.cosine_decay_schedule(cal.learning_rate, max(cal.epochs * steps, 1), 0.05)
    lrs = np.asarray(sched(np.arange(cal.epochs * steps)), np.float32)  # one evaluation
    key = jax.random.PRNGKey(cal.seed + 1)
    state = train.TrainState(own, tx.init(own), jnp.zeros((), jnp.int32),
                             jax.random.PRNGKey(cal.seed))
    best, best_epoch = own, 0
    scores = [float(score(own, val_b, key, c))]
    t0 = time.time()
    for epoch in range(cal.epochs):
        rng = np.random.default_rng([cal.seed, epoch])
        order = rng.permutation(len(tr))
        while len(order) < steps * bs:  # fewer windows than the epoch's batches: draw again
            order = np.concatenate([order, rng.permutation(len(tr))])
        for i, idx in enumerate(order[: steps * bs].reshape(steps, bs)):
            state = step(state, train_b, idx, lrs[epoch * steps + i], c, mask)
        scores.append(float(score(state.params, val_b, key, c)))
        if np.isfinite(scores[-1]) and scores[-1] < scores[best_epoch]:
            best, best_epoch = jax.device_get(state.params), epoch + 1
        log(f"  calibrate {prep.data.subjects[s]} ({cal.mode}, {cal.seconds or 'all'} s): "
            f"epoch {epoch + 1}/{cal.epochs} validation loss {scores[-1]:.4g} "
            f"({time.time() - t0:.0f} s)")
    physio = jax.tree_util.tree_map(lambda full, r: jnp.asarray(full).at[s].set(r[0]),
                                    params["physio"], best["physio"])
    used = sum(len(t.time_s) for t in parts["train"] + parts["validation"])
    # the recordings spanned: what was used plus the window-long gap before each validation part
    seconds = (used + prep.window * len(parts["validation"])) / spec.labels.rate_hz
    report = {**dataclasses.asdict(cal), "subject": prep.data.subjects[s],
              "recordings_s": round(seconds, 2), "used_s": round(used / spec.labels.rate_hz, 2),
              "train_trials": [t.id for t in parts["train"]],
              "validation_trials": [t.id for t in parts["validation"]],
              "train_windows": len(tr), "validation_windows": int(len(va_take)),
              "validation_loss": scores, "selected_epoch": best_epoch,
              "selected_by": ("the calibration loss (" + ("angles + physics" if angles else
                              "physics only, EMG-driven") + ") on the validation part of the "
                              "calibration recordings; epoch 0 is the run as it was")}
    net = best["net"]
    if cal.input_gain:
        scale = input_scale(best["physio"], c["pop_gain"], prep.consts.bounds)
        net = fold_input_scale(net, scale)
        report["input_scale"] = dict(zip(spec.muscle_names, np.asarray(scale).tolist()))
    return {"net": net, "physio": physio}, report


def _programs(prep: prepare.Prepared, use_physics: bool, input_gain: bool, grad_clip: float):
    """(tx, step, score) of the calibration, compiled once per ``prep`` and settings (kept in
    ``prep.programs``): what differs between subjects, modes and budgets (the subject's model,
    the population, the loss weights, the mask of what adapts, the learning rate) are
    arguments. ``step(state, windows, idx, lr, c, mask)`` gathers its batch ``idx`` (B,) from
    the device ``windows`` inside the program; ``score(params, batch, key, c)`` is the loss."""
    key = ("calibration", use_physics, input_gain, grad_clip)
    if key in prep.programs:
        return prep.programs[key]
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), optax.scale_by_adam())
    bounds = prep.consts.bounds

    def loss(p, batch, rng, c):
        return (_loss(prep, c["base"], c["pop_gain"], p, batch, c["weights"], rng, use_physics,
                      input_gain)
                + c["prior_weight"] * population_prior(_scales(p["physio"], bounds), c["pop"],
                                                       c["widths"]))

    def step(state: train.TrainState, windows: Batch, idx, lr, c, mask):
        batch = jax.tree_util.tree_map(lambda a: a[idx], windows)
        rng, sub = jax.random.split(state.rng)
        masked = lambda tree: jax.tree_util.tree_map(lambda a, m: a * m, tree, mask)
        grads = masked(jax.grad(loss)(state.params, batch, sub, c))
        updates, opt = tx.update(grads, state.opt_state, state.params)
        updates = jax.tree_util.tree_map(lambda u: -lr * u, masked(updates))
        return train.TrainState(optax.apply_updates(state.params, updates), opt,
                                state.step + 1, rng)

    prep.programs[key] = (tx, jax.jit(step), jax.jit(loss))
    return prep.programs[key]


def _scales(row: dict, bounds) -> dict:
    out = physio.physio_scales(row, jnp.asarray(bounds))
    return {k: out[k] for k in (*physio.PHYSIO_NAMES, "shape_a")}


def prior_widths(identification: dict, pop: dict) -> dict:
    """Widths of :func:`population_prior` per parameter (1, M): the spec's prior widths
    (fractions) of the population's F_max, l_opt, l_ts; the EMG gain as wide as F_max (the two
    trade off); a quarter of the bounds for the delay and an unmeasured muscle's activation;
    0.5 for the activation shape."""
    w = identification["prior_width"]
    quarter = lambda k: 0.25 * (identification[k][1] - identification[k][0])
    return {"f_max": w["f_max"] * pop["f_max"], "l_opt": w["l_opt"] * pop["l_opt"],
            "l_ts": w["l_ts"] * pop["l_ts"], "emg_gain": w["f_max"] * pop["emg_gain"],
            "delay_s": jnp.full_like(pop["delay_s"], max(quarter("delay_s"), 1e-3)),
            "unmeasured_activation": jnp.full_like(pop["delay_s"],
                                                   max(quarter("unmeasured_activation"), 1e-3)),
            "shape_a": jnp.full_like(pop["delay_s"], 0.5)}


def population_prior(scales: dict, pop: dict, widths: dict) -> jax.Array:
    """Σ_k mean over muscles of ((θ_k − θ_k,population) / width_k)²: a Gaussian prior centring
    the new subject's parameters on the population the run learned."""
    return sum(jnp.mean(((scales[k] - pop[k]) / widths[k]) ** 2) for k in widths)


def population_gain(physio: dict, s: int, bounds) -> jax.Array:
    """The EMG gain (M,) (excitation per unit normalised envelope) of the population's
    parameters (:func:`population`), so that the new subject starts at input scale 1 (what
    :func:`calibrate` takes from the population's scales)."""
    return _scales(population(physio, s), bounds)["emg_gain"][0]


def input_scale(physio_row: dict, pop_gain: jax.Array, bounds) -> jax.Array:
    """(M,) the factor on the network's input: the subject's identified EMG gain over the
    population's, so the network sees the envelope as the population's would read."""
    return physio.physio_scales(physio_row, jnp.asarray(bounds))["emg_gain"][0] / pop_gain


def fold_input_scale(net_vars: dict, scale: jax.Array) -> dict:
    """``net_vars`` of a network computing ``net(window · scale)``: the first convolution is
    linear in its input, so the scale of channel c multiplies its kernel's input slice c."""
    enc = net_vars["params"]["encoder"]
    if "conv0" not in enc:
        raise ValueError("input scaling folds into the CNN encoder's first convolution; use "
                         "input_gain=False for the baseline encoders")
    k = jnp.asarray(enc["conv0"]["kernel"])
    conv0 = {**enc["conv0"], "kernel": k * jnp.asarray(scale)[None, :, None]}
    return {**net_vars, "params": {**net_vars["params"], "encoder": {**enc, "conv0": conv0}}}


def _loss(prep, base, pop_gain, p, batch: Batch, weights, key, use_physics: bool,
          input_gain: bool):
    """The calibration loss of one subject's batch: :func:`pinnmsk.losses.batch_loss` with the
    network's input scaled by :func:`input_scale` (``input_gain``), so the EMG gain the physics
    identifies also reaches the network."""
    net = prep.net
    r = (input_scale(p["physio"], pop_gain, prep.consts.bounds) if input_gain
         else jnp.ones_like(pop_gain))
    encode = lambda w: net.apply(p["net"], w * r, method=type(net).encode)
    decode = lambda z, t: net.apply(p["net"], z, t, method=type(net).decode)
    return losses.batch_loss(encode, decode, base, p["physio"], prep.consts, batch, weights,
                             key, use_physics)[0]
