"""Train state, the pure jitted train step, the vmapped sweep, prediction and metrics.

``train_step(state, batch, weights) -> (state, metrics)`` is pure; a sweep runs
``jax.vmap(train_step, in_axes=(0, None, 0))`` over K stacked states and K weight vectors, so K
models train in one compiled program with one pass over the data. No I/O here; the host loop with
checkpoints lives in :mod:`pinnmsk.runner`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, TypedDict

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jaxtyping import PyTree

from pinnmsk import losses, ode
from pinnmsk.losses import Batch, LossConstants
from pinnmsk.models import PINNModel
from pinnmsk.msk import MskModel
from pinnmsk.shapes import CoordBatch, EmgBatch, ForceBatch, TermVector

Array = jax.Array


def _field(default, help: str, choices: tuple | None = None, flag: bool = True):
    """A :class:`TrainConfig` field with its one-line help (what ``--help`` prints) and, for
    string options, its choices."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices,
                                                        "flag": flag})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one run (saved to ``workdir/config.json``); the single definition
    the binaries' flags are generated from (``experiments.common.define_train_flags``: each
    field's help and choices), checked on construction (``__post_init__``).

    Attributes:
      model: encoder, ``"cnn"`` (the method) or the baselines ``"mlp"``, ``"gru"``.
      accel: ``"autodiff"`` (q̈ by jax.jvp of the head), ``"fd"`` (finite-difference baseline)
        or ``"none"`` (ablation: the dynamics term without its inertial part, M q̈ + Coriolis).
      tendon: the Hill term's tendon, ``"rigid"`` or ``"compliant"`` (fibre-tendon equilibrium
        with De Groote's tendon curve), or ``"spec"`` (default): what the data spec's ``tendon``
        field says (itself rigid unless the spec says otherwise). A spec chooses compliant where
        its model's passive forces are implausible with a rigid tendon (``experiments.diagnose``
        reports them; on the real knee data a rigid rectus femoris reaches 13.8 kN of passive
        force, 1.6-2.2 kN compliant). For reference only, not used to choose: label-free on the
        OpenSim wrist v2 sample compliant reached test force R² 0.652 against rigid's 0.761,
        although its ceiling with the true activations is higher (0.866 vs 0.759).
      physics_weight: λ, the weight of both physics residuals (0 = data only).
      force_labels: use force labels in the data term (False: angles only, label-free forces).
      label_fraction: fraction of training data (2-s segments) whose force labels are used.
      hill_weight: the Hill-consistency weight as a multiple of λ (the dynamics term gets λ).
        The Hill residual is divided by the force data term's scale σ_F, so 1 weighs a Hill
        misfit like a force-label misfit of the same size (see :class:`LossConstants`).
      effort_weight: weight of the effort term mean (F/F_max)² where λ > 0 (see
        :func:`pinnmsk.losses.loss_weights`); it sets the co-contraction level when forces are
        unlabelled. 0 leaves it out.
      residual_weight: > 0 adds an identified residual joint torque per subject (a constant,
        damping and smooth bumps over the training range of q:
        :func:`pinnmsk.losses.residual_torque`) for what the model lacks (unmodelled
        muscles, ligaments), its mean square (in units of the torque scale) weighed by this
        multiple of λ. 0 (default): no residual torque.
      prior_weight: weight, as a multiple of λ, of the Gaussian prior on the identified F_max,
        l_opt and l_ts scales, centred on the lab's model with the spec's
        ``identification.prior_width`` (default ±30 %, ±5 %, ±5 %). 0 (default): flat bounds only.
      epochs, batch_size, learning_rate, warmup_epochs, grad_clip: optimisation (Adam, warm-up
        then cosine decay, global-norm clipping).
      n_colloc: collocation times per window for the physics terms.
      latent: latent size z.
      checkpoint_every: epochs between checkpoints.
      seed: everything (init, shuffling, collocation) is a deterministic function of it.
    """

    model: str = _field("cnn", "Encoder (cnn = the method; mlp, gru: baselines).",
                        ("cnn", "mlp", "gru"))
    accel: str = _field("autodiff", "Joint acceleration for the physics term: autodiff of the "
                        "head, the finite-difference baseline, or none (ablation: the equation "
                        "of motion without its inertial part).", ("autodiff", "fd", "none"))
    tendon: str = _field("spec", "Tendon of the Hill term: compliant (fibre-tendon equilibrium, "
                         "De Groote 2016 tendon curve), rigid, or what the data spec's 'tendon' "
                         "field says (spec; rigid where it says nothing).",
                         ("spec", "compliant", "rigid"))
    physics_weight: float = _field(10.0, "λ: weight of the dynamics and Hill residuals (0 = "
                                   "data only).", flag=False)
    force_labels: bool = _field(True, "Use force labels in the loss (false: angles only; forces "
                                "come from the physics terms).")
    label_fraction: float = _field(1.0, "Fraction of training data (2-s segments, seeded) with "
                                   "force labels.")
    effort_weight: float = _field(0.0, "Weight of the effort term mean (F/F_max)^2 (static "
                                  "optimisation's criterion) where the physics weight is > 0; it "
                                  "sets the co-contraction level when forces are unlabelled.")
    hill_weight: float = _field(1.0, "Weight of the Hill-consistency term as a multiple of the "
                                "physics weight (the dynamics residual gets the physics weight "
                                "itself).")
    residual_weight: float = _field(0.0, "> 0: identify a residual joint torque per subject "
                                    "(constant, damping and smooth bumps over the motion's "
                                    "range of each coordinate) for what the model lacks, its "
                                    "mean square weighed by this multiple of the physics weight; "
                                    "0: none.")
    prior_weight: float = _field(0.0, "Weight (a multiple of the physics weight) of the Gaussian "
                                 "prior on the identified F_max, l_opt, l_ts scales, centred on "
                                 "the lab's model with the spec's identification.prior_width; "
                                 "0: flat bounds only.")
    epochs: int = _field(40, "Training epochs.")
    batch_size: int = _field(256, "Windows per step.")
    learning_rate: float = _field(3e-3, "Peak Adam learning rate.")
    warmup_epochs: int = _field(1, "Epochs of linear learning-rate warm-up.")
    grad_clip: float = _field(1.0, "Global gradient-norm clipping threshold.")
    n_colloc: int = _field(2, "Collocation times per window (physics terms).")
    latent: int = _field(64, "Size of the latent z between encoder and head.")
    checkpoint_every: int = _field(5, "Epochs between checkpoints.")
    seed: int = _field(0, "Random seed.")

    def __post_init__(self):
        """Checks every field; a ValueError names the field, its value and what it must be."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            v = getattr(self, f.name)
            if choices and v not in choices:
                raise ValueError(f"{f.name}={v} must be one of {', '.join(choices)}")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction={self.label_fraction} must be in (0, 1]")
        for name in ("epochs", "batch_size", "n_colloc", "checkpoint_every", "latent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("learning_rate", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("physics_weight", "effort_weight", "hill_weight", "residual_weight",
                     "prior_weight", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")

    @classmethod
    def flag_fields(cls) -> tuple:
        """The fields a binary exposes as flags of the same name (all but ``physics_weight``,
        which each binary defines as it needs: one λ, or a list for a sweep)."""
        return tuple(f for f in dataclasses.fields(cls) if f.metadata.get("flag", True))


class Params(TypedDict):
    """What the optimiser updates: the network's Flax variables, and per subject the raw
    identified parameters (:func:`pinnmsk.losses.init_physio`: (S, M) arrays per name, the
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


Metrics = dict  # {"loss": (), "terms": (7,), "grad_norm": ()}, with a leading K in a sweep
StepFn = Callable[[TrainState, Batch, TermVector], tuple[TrainState, Metrics]]
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
              "physio": losses.init_physio(n_subjects, n_muscles, bounds, n_coords)}
    return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), k_run)


def _fns(net: PINNModel, variables):
    encode = lambda w: net.apply(variables, w, method=PINNModel.encode)
    decode = lambda z, t: net.apply(variables, z, t, method=PINNModel.decode)
    return encode, decode


def make_train_step(net: PINNModel, tx: optax.GradientTransformation, base: MskModel,
                    consts: LossConstants, use_physics: bool = True) -> StepFn:
    """The pure step ``(state, batch, weights) -> (state, metrics)`` (not jitted: jit or vmap it).

    metrics: {"loss": scalar, "terms": (7,) unweighted means, "grad_norm": scalar}.
    ``use_physics=False`` drops the physics terms from the program (data-only runs).
    """

    def loss_fn(params, batch, weights, key):
        encode, decode = _fns(net, params["net"])
        return losses.batch_loss(encode, decode, base, params["physio"], consts, batch, weights,
                                 key, use_physics)

    def step(state: TrainState, batch: Batch, weights: TermVector):
        key, sub = jax.random.split(state.rng)
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, weights, sub)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new = TrainState(params, opt_state, state.step + 1, key)
        return new, {"loss": loss, "terms": terms, "grad_norm": optax.tree.norm(grads)}

    return step


SWEEP_LAYOUTS = ("vmap", "unrolled_encoder")


def make_sweep_step(net: PINNModel, tx: optax.GradientTransformation, base: MskModel,
                    consts: LossConstants, use_physics: bool = True, layout: str = "vmap"
                    ) -> StepFn:
    """K models at once: ``(states, batch, weights (K, 7)) -> (states, metrics)``, the states
    stacked on axis 0 and the batch shared; each model's numbers are those of
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
    if layout == "vmap":
        return jax.vmap(make_train_step(net, tx, base, consts, use_physics), in_axes=(0, None, 0))
    if layout != "unrolled_encoder":
        raise ValueError(f"unknown sweep layout '{layout}'; use one of {', '.join(SWEEP_LAYOUTS)}")

    def rest(params, z, batch, weights, key):
        _, decode = _fns(net, params["net"])
        return losses.latent_batch_loss(z, decode, base, params["physio"], consts, batch,
                                        weights, key, use_physics)

    def total(params, batch, weights, keys):
        z = jnp.stack([jax.vmap(_fns(net, ode.tree_index(params["net"], k))[0])(batch.emg)
                       for k in range(weights.shape[0])])
        loss, terms = jax.vmap(rest, in_axes=(0, 0, None, 0, 0))(params, z, batch, weights, keys)
        return jnp.sum(loss), (loss, terms)

    def step(states: TrainState, batch: Batch, weights: Array):
        keys = jax.vmap(jax.random.split)(states.rng)  # (K, 2, ...)
        (_, (loss, terms)), grads = jax.value_and_grad(total, has_aux=True)(
            states.params, batch, weights, keys[:, 1])
        updates, opt_state = jax.vmap(tx.update)(grads, states.opt_state, states.params)
        params = optax.apply_updates(states.params, updates)
        new = TrainState(params, opt_state, states.step + 1, keys[:, 0])
        return new, {"loss": loss, "terms": terms,
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


# --------------------------------------------------------------------------- metrics


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """RMSE, NRMSE (RMSE / range of the truth), R², Pearson r of one column."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    err = pred - true
    rmse = float(np.sqrt(np.mean(err**2)))
    rng = float(np.max(true) - np.min(true))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    r = float(np.corrcoef(pred, true)[0, 1]) if np.std(pred) > 0 and np.std(true) > 0 else 0.0
    return {"rmse": rmse, "nrmse": rmse / rng if rng > 0 else float("nan"), "r2": r2,
            "pearson_r": r}


def evaluation_metrics(q_pred, q_true, coords, f_pred=None, f_true=None, muscles=()) -> dict:
    """The ``metrics.json`` "test" block: angles per coordinate, forces per muscle and mean."""
    out = {"angle": {}}
    for j, c in enumerate(coords):
        m = regression_metrics(q_pred[:, j], q_true[:, j])
        m["rmse_deg"] = float(np.rad2deg(m["rmse"]))
        out["angle"][c] = m
    if f_true is not None:
        out["force"] = {m: regression_metrics(f_pred[:, i], f_true[:, i])
                        for i, m in enumerate(muscles)}
        out["force"]["mean"] = {k: float(np.mean([out["force"][m][k] for m in muscles]))
                                for k in ("rmse", "nrmse", "r2", "pearson_r")}
    return out
