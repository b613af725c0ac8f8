"""What a run builds from its data and configuration before the first step, without files.

Data statistics and loss scales (:func:`prepare`), the network and its initial state
(:func:`new_state`), the train step (:func:`make_train_step`), and what inference needs that
the training data determined (:func:`inference_record`, :func:`net_from_record`). Pure: the
dataset comes in loaded, the record goes out as a dict; :mod:`pinnmsk.records` reads and writes
files.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import diagnostics, dynamics, models, personalise, physio, train
from pinnmsk.data import dataset as ds_lib
from pinnmsk.errors import DataError
from pinnmsk.losses import LossConstants
from pinnmsk.config import TrainConfig


@dataclasses.dataclass
class Prepared:
    """Everything a run needs that depends on data and config, built once."""

    data: ds_lib.Dataset
    train: ds_lib.Windows
    val: ds_lib.Windows | None  # validation windows (forces NaN where unlabelled), or None
    test_trials: list
    val_trials: list
    train_trials: list  # the trials the training windows come from (this run's fold)
    consts: LossConstants
    net: models.PINNModel
    window: int
    history: int
    n_labelled: int
    predict: train.PredictFn  # jitted, at τ = 0; compiled once per run
    # the person's model identified before training (the spec's [person] table; None without),
    # :func:`pinnmsk.personalise.personalise`'s report; ``data.models`` are then the identified ones
    person: dict | None = None
    # with config.leave_out: the new subject's index and its calibration recordings
    # ({"train", "validation"} trial lists, :func:`pinnmsk.data.dataset.leave_subject_out`)
    new_subject: int | None = None
    calibration: dict | None = None
    # the jitted programs of :func:`pinnmsk.runner.fit`, by the settings they depend on: a second
    # fit of the same Prepared with the same settings (resume, a sweep's single runs) reuses
    # them instead of tracing and compiling again
    programs: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)


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


def seeded(config: TrainConfig) -> bool:
    """Whether :func:`prepare` reads ``config.seed`` (the labelled fraction's segments): if not,
    runs that differ only in their seed can share one Prepared, and with it its compiled
    programs (:func:`pinnmsk.runner.programs` keys them without the seed)."""
    return config.force_labels and config.label_fraction < 1.0


def tendon_of(config: TrainConfig, spec) -> str:
    """The Hill term's tendon: the config's, or the data spec's where the config says "spec"."""
    return spec.tendon if config.tendon == "spec" else config.tendon


def prepare(data: ds_lib.Dataset, config: TrainConfig) -> Prepared:
    spec = data.spec
    rate = spec.labels.rate_hz
    window = int(round(spec.windows.length_s * rate))
    history = int(round(spec.windows.history_s * rate)) + 1
    parts, new, calibration = fold_of(data, config)
    if not parts["train"]:
        raise DataError(f"{spec.path}: field 'split' leaves no training trials")
    if not parts["test"]:
        raise DataError(f"{spec.path}: field 'split.test' selects no trials")
    data, person_report = personalise.personalise(data, parts["train"], tendon_of(config, spec))
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
        torques.append(np.asarray(dynamics.inverse_dynamics_along(
            body, *(jnp.asarray(x, jnp.float32) for x in (t.q_rad, qd, qdd)))))
    tau_scale = np.maximum(np.sqrt(np.mean(np.concatenate(torques) ** 2, axis=0)), 1e-3)
    bounds = np.asarray([spec.identification[k] for k in physio.PHYSIO_NAMES], np.float32)
    consts = LossConstants(jnp.asarray(q_std, jnp.float32), jnp.asarray(sigma_f, jnp.float32),
                           jnp.asarray(tau_scale, jnp.float32), jnp.asarray(bounds), rate,
                           spec.windows.history_s, config.n_colloc, config.accel,
                           tendon_of(config, spec),
                           jnp.asarray([spec.identification["prior_width"][k]
                                        for k in ("f_max", "l_opt", "l_ts")], jnp.float32),
                           config.residual_weight > 0,
                           None if spec.measured.all() else jnp.asarray(spec.measured,
                                                                         jnp.float32),
                           jnp.asarray(physio.residual_knots(q_all)))
    net = models.make_model(config.model, data.model_of(0).n_coords, data.model_of(0).n_muscles,
                            spec.windows.history_s, q_mean, q_std, f_scale, config.latent)
    val = (ds_lib.make_windows(parts["validation"], window, 1) if parts["validation"] else None)
    if val is not None and not config.force_labels:
        val.has_forces[:] = False  # label-free: forces are not there to select by
    return Prepared(data, tr, val, parts["test"], parts["validation"], parts["train"], consts,
                    net, window, history, int(has_labels.sum()), train.make_predict(net),
                    person=person_report, new_subject=new, calibration=calibration)


def fold_of(data: ds_lib.Dataset, config: TrainConfig) -> tuple[dict, int | None, dict | None]:
    """(parts, new subject's index, its calibration parts) of the spec's split: without
    ``config.leave_out``, the split itself (None, None)."""
    parts = data.split()
    if not config.leave_out:
        return parts, None, None
    if config.leave_out not in data.subjects:
        raise DataError(f"{data.spec.path}: leave_out='{config.leave_out}' names no subject of "
                        f"the spec; its subjects: {', '.join(data.subjects)}")
    s = data.subjects.index(config.leave_out)
    fold, calibration = ds_lib.leave_subject_out(parts, s)
    return fold, s, calibration


def new_state(prep: Prepared, tx, seed: int) -> train.TrainState:
    """The initial train state of ``prep``'s network and identified parameters (initialised in
    one compiled program: run eagerly, the initialisers compile ~120 small ones, ~5 s)."""
    return make_init(prep, tx)(seed)


def make_init(prep: Prepared, tx):
    """``init(seed) -> TrainState`` of :func:`new_state`, jitted once for any seed."""
    shape, n_subjects = prep.train.emg.shape[1:], len(prep.data.subjects)
    n_muscles, bounds = prep.data.model_of(0).n_muscles, np.asarray(prep.consts.bounds)
    return jax.jit(lambda seed: train.init_state(prep.net, tx, shape, n_subjects, n_muscles,
                                                 bounds, seed))


def make_train_step(prep: Prepared, tx, use_physics: bool, sweep: bool,
                    layout: str = "vmap", batch_per_model: bool = False):
    """The pure train step for ``prep``'s model; for a sweep, the K-model step of
    ``layout`` (:data:`pinnmsk.train.SWEEP_LAYOUTS`, default "vmap"), whose "vmap" layout uses
    the model form that vmaps well (:func:`pinnmsk.models.for_sweep`: same parameters and
    function); ``batch_per_model``: each model gathers its own batch (seeds)."""
    if not sweep:
        return train.make_train_step(prep.net, tx, prep.data.models, prep.consts, use_physics)
    net = models.for_sweep(prep.net) if layout == "vmap" else prep.net
    return train.make_sweep_step(net, tx, prep.data.models, prep.consts, use_physics, layout,
                                 batch_per_model)


def inference_record(prep: Prepared, config: TrainConfig, spec_sha256: str) -> dict:
    """What inference needs that training data determined: per subject the EMG normaliser and
    rest values (muscle order), the network's output scalings and window, and the spec's
    fingerprint ``spec_sha256`` (:func:`pinnmsk.records.spec_fingerprint`). Saved beside a run so
    that ``predict`` starts without the training data."""
    head = prep.net.head
    return {"data_spec_sha256": spec_sha256,
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
