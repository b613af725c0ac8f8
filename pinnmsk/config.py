"""A run's training settings: :class:`TrainConfig`, the single definition the binaries' flags
are generated from. A leaf module (no JAX), so configs and ``--help`` import it cheaply."""

from __future__ import annotations

import dataclasses

from pinnmsk import muscle_models

SWEEP_LAYOUTS = ("vmap", "unrolled_encoder")  # see pinnmsk.train.make_sweep_step


def _field(default, help: str, choices: tuple | None = None):
    """A :class:`TrainConfig` field with its one-line help (what ``--help`` prints) and, for
    string options, its choices."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


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
        reports them; README has the figures of both tendons on the shipped data).
      physics_weights: λ values, the weight of the physics residuals (0 = data only): one
        trains a run, several a sweep (one model per λ in one compiled program; a single run is
        a sweep of one). Each term's weight follows λ by its rule (:mod:`pinnmsk.terms`).
      force_labels: use force labels in the data term (False: angles only, label-free forces).
      label_fraction: fraction of training data (2-s segments) whose force labels are used.
      hill_weight: the Hill-consistency weight as a multiple of λ (the dynamics term gets λ).
        The Hill residual is divided by the force data term's scale σ_F, so 1 weighs a Hill
        misfit like a force-label misfit of the same size (see :class:`LossConstants`).
      effort_weight: weight of the effort term mean (F/F_max)² where λ > 0 (see
        :func:`pinnmsk.losses.effort_term`); it sets the co-contraction level when forces are
        unlabelled. 0 leaves it out.
      residual_weight: > 0 adds an identified residual joint torque per subject (a constant,
        damping and smooth bumps over the training range of q:
        :func:`pinnmsk.physio.residual_torque`) for what the model lacks (unmodelled
        muscles, ligaments), its mean square (in units of the torque scale) weighed by this
        multiple of λ. 0 (default): no residual torque.
      prior_weight: weight, as a multiple of λ, of the Gaussian prior on the identified F_max,
        l_opt and l_ts scales, centred on the lab's model with the spec's
        ``identification.prior_width`` (default ±30 %, ±5 %, ±5 %). 0 (default): flat bounds only.
      ceiling_weight: weight of mean relu(F/F_max − 1)² (forces above the subject's F_max,
        passive included) where λ > 0: forces a muscle can make. 0 (default) leaves it out.
      term_weights: ``"name=value,..."``: multipliers of loss terms a user registered
        (:func:`pinnmsk.terms.register`) that have no field of their own; others keep their
        registered default.
      epochs, batch_size, learning_rate, warmup_epochs, grad_clip: optimisation (Adam, warm-up
        then cosine decay, global-norm clipping).
      n_colloc: collocation times per window for the physics terms.
      latent: latent size z.
      checkpoint_every: epochs between checkpoints.
      seed: everything (init, shuffling, collocation) is a deterministic function of it.
      leave_out: a subject id the run never trains or selects on (:func:`pinnmsk.data.dataset.
        leave_subject_out`); its test part is the run's test data.
    """

    model: str = _field("cnn", "Encoder (cnn = the method; mlp, gru: baselines).",
                        ("cnn", "mlp", "gru"))
    accel: str = _field("autodiff", "Joint acceleration for the physics term: autodiff of the "
                        "head, the finite-difference baseline, or none (ablation: the equation "
                        "of motion without its inertial part).", ("autodiff", "fd", "none"))
    tendon: str = _field("spec", "Muscle model of the Hill term (pinnmsk.muscle_models): "
                         "compliant (fibre-tendon equilibrium, De Groote 2016 tendon curve), "
                         "rigid, one a user registered, or what the data spec's 'tendon' field "
                         "says (spec; rigid where it says nothing).")
    physics_weights: tuple = _field((10.0,), "Comma-separated physics weights λ (0 = data "
                                    "only): one trains a run, several a sweep, one model per "
                                    "λ in one program. --physics_weight is the same flag.")
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
    ceiling_weight: float = _field(0.0, "Weight of the penalty mean relu(F/F_max - 1)^2 on "
                                   "forces above the subject's F_max (passive included) where "
                                   "the physics weight is > 0; 0: none.")
    term_weights: str = _field("", "name=value,...: weights of loss terms registered by a "
                               "user (pinnmsk.terms) without a flag of their own.")
    epochs: int = _field(40, "Training epochs.")
    batch_size: int = _field(256, "Windows per step.")
    learning_rate: float = _field(3e-3, "Peak Adam learning rate.")
    warmup_epochs: int = _field(1, "Epochs of linear learning-rate warm-up.")
    grad_clip: float = _field(1.0, "Global gradient-norm clipping threshold.")
    n_colloc: int = _field(2, "Collocation times per window (physics terms).")
    latent: int = _field(64, "Size of the latent z between encoder and head.")
    checkpoint_every: int = _field(5, "Epochs between checkpoints.")
    seed: int = _field(0, "Random seed.")
    leave_out: str = _field("", "A subject left out of training (its validation, test and "
                            "labels unused): a new person for experiments.calibrate, which "
                            "adapts the run to it; empty: every subject trains.")

    def __post_init__(self):
        """Checks every field; a ValueError names the field, its value and what it must be."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            v = getattr(self, f.name)
            if choices and v not in choices:
                raise ValueError(f"{f.name}={v} must be one of {', '.join(choices)}")
        if self.tendon != "spec" and self.tendon not in muscle_models.names():
            raise ValueError(f"tendon={self.tendon} must be spec or a muscle model: "
                             f"{', '.join(muscle_models.names())}")
        if not 0.0 < self.label_fraction <= 1.0:
            raise ValueError(f"label_fraction={self.label_fraction} must be in (0, 1]")
        for name in ("epochs", "batch_size", "n_colloc", "checkpoint_every", "latent"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("learning_rate", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("effort_weight", "hill_weight", "residual_weight",
                     "prior_weight", "ceiling_weight", "warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
        lams = self.physics_weights
        if not isinstance(lams, tuple) or not lams or any(
                isinstance(x, bool) or not isinstance(x, (int, float)) or not x >= 0
                for x in lams):
            raise ValueError(f"physics_weights={lams} must be a non-empty tuple of numbers >= 0")

    @property
    def physics_weight(self) -> float:
        """The one λ of a single run (a ValueError for a config with several)."""
        if len(self.physics_weights) != 1:
            raise ValueError(f"physics_weights={self.physics_weights}: one λ expected here")
        return float(self.physics_weights[0])

    @classmethod
    def from_record(cls, rec: dict) -> "TrainConfig":
        """The config a run recorded (its config.json: other keys ignored, lists as tuples; a
        record of the single ``physics_weight`` of earlier versions read as a sweep of one)."""
        names = {f.name for f in dataclasses.fields(cls)}
        vals = {k: tuple(v) if isinstance(v, list) else v for k, v in rec.items() if k in names}
        if "physics_weights" not in vals and "physics_weight" in rec:
            vals["physics_weights"] = (float(rec["physics_weight"]),)
        return cls(**vals)


# Identified per subject and muscle (pinnmsk.physio), each bounded by a row of
# LossConstants.bounds: scales of nominal F_max, l_opt, l_ts; the EMG-to-excitation gain; the
# electromechanical delay [s]; the constant activation of a muscle without an EMG channel
# (LossConstants.measured).
PHYSIO_NAMES = ("f_max", "l_opt", "l_ts", "emg_gain", "delay_s", "unmeasured_activation")
MODES = ("emg", "emg+angles")  # what a calibration learns from (pinnmsk.calibration)
ADAPT = ("input", "output", "head", "all")  # what adapts besides the subject's parameters


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
    """How :func:`pinnmsk.calibration.calibrate` adapts a run to a new subject; each field's
    help is what ``--calibrate_<field>`` prints. Checked on construction."""

    mode: str = _field("emg", "What the calibration learns from: emg (the physics alone, the "
                       "angles unread) or emg+angles (the angle loss plus the physics). Never "
                       "force labels.", MODES)
    seconds: float = _field(0.0, "The first seconds of the subject's calibration recordings "
                            "used (0: all; their last part, the spec's validation fraction, validates).")
    adapt: str = _field("output", "What adapts besides the subject's parameters (and the "
                        "network's input scale, --calibrate_input_gain): input (nothing else), "
                        "output (the network's output layer: its force outputs, and its angle "
                        "outputs where the mode reads angles), head (the whole head) or all (the "
                        "whole network).", ADAPT)
    epochs: int = _field(10, "Calibration epochs (the best on the calibration validation part "
                         "is kept; epoch 0, the run as it was, included).")
    learning_rate: float = _field(1e-2, "Peak Adam learning rate (cosine decay).")
    physics_weight: float = _field(1.0, "λ of the physics terms (the run's other weights as "
                                   "multiples of it).")
    prior_weight: float = _field(0.01, "Weight of the Gaussian prior centring the subject's "
                                 "parameters on the trained subjects' (the physics alone trades "
                                 "F_max against the EMG gain).")
    hold: str = _field("", "Comma-separated identified parameters the calibration holds at the "
                       "trained subjects' (" + ", ".join(PHYSIO_NAMES) + "): those the person's "
                       "recordings cannot place, e.g. f_max where experiments.diagnose finds "
                       "that a free joint spring takes the F_max scale closing the torque far "
                       "from the lab's model (the physics alone would trade them away).")
    input_gain: bool = _field(True, "Scale the network's input by the subject's identified EMG "
                              "gain over the population's (folded into its first layer).")
    batch_size: int = _field(128, "Windows per calibration step.")
    seed: int = _field(0, "Random seed (data order, collocation times).")

    @property
    def held(self) -> tuple:
        """The names in ``hold``."""
        return tuple(h.strip() for h in self.hold.split(",") if h.strip())

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {', '.join(MODES)}")
        if self.adapt not in ADAPT:
            raise ValueError(f"adapt={self.adapt!r} must be one of {', '.join(ADAPT)}")
        if self.mode == "emg" and not self.physics_weight > 0:
            raise ValueError("mode=emg calibrates by the physics alone: physics_weight must "
                             "be > 0")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        unknown = [h for h in self.held if h not in PHYSIO_NAMES]
        if unknown:
            raise ValueError(f"hold={self.hold!r} names '{unknown[0]}'; hold any of "
                             f"{', '.join(PHYSIO_NAMES)}")
        for name in ("seconds", "prior_weight", "physics_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")
