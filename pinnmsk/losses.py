"""Data and physics losses of the physics-informed model (Zhang et al., arXiv 2207.01435).

Loss weights are a run-time array
``[w_q, w_F, λ_dyn, λ_hill, λ_effort, λ_residual, λ_prior, λ_ceiling]``
(:data:`WEIGHT_NAMES`), so a sweep vmaps over them. Subject-specific physiological parameters θ
are unconstrained arrays mapped into their bounds by a sigmoid (:func:`physio_scales`); a
Gaussian prior centred on the lab's model (``prior`` term) keeps them near it unless the data
insist. An identified residual joint torque per subject (``residual_torque``) stands for what the
model lacks (unmodelled muscles, ligaments); its size is penalised (``residual`` term).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from pinnmsk import msk, muscle
from pinnmsk.models import Decoder, LatentDecoder, kinematics, kinematics_fd
from pinnmsk.msk import MskModel
from pinnmsk.shapes import (Activation, CoordHistory, Coords, EmgBatch, EmgWindow, ForceHistory,
                            Latent, LatentBatch, MuscleVec, PerWindow, Scalar, Subjects,
                            TermVector)

Array = jax.Array


class LossTerms(NamedTuple):
    """The loss terms, or their weights, by name (scalars, or arrays with the same leading axes:
    a pytree, so jit and vmap see one leaf per term). The host records them as arrays
    (..., N_TERMS) in field order (:meth:`stack`, :meth:`of`)."""

    angle: Array
    force: Array
    dynamics: Array
    hill: Array
    effort: Array
    residual: Array
    prior: Array
    ceiling: Array

    def stack(self) -> Array:
        """The (..., N_TERMS) array in field order."""
        return jnp.stack([jnp.asarray(t) for t in self], axis=-1)

    @classmethod
    def of(cls, array) -> "LossTerms":
        """From an array (..., N_TERMS) in field order (NumPy stays NumPy)."""
        xp = np if isinstance(array, np.ndarray) else jnp
        return cls(*xp.moveaxis(xp.asarray(array), -1, 0))

    def total(self, weights: "LossTerms") -> Array:
        """Σ_k weight_k · term_k of scalar terms."""
        return jnp.dot(weights.stack(), self.stack())


WEIGHT_NAMES = LossTerms._fields
N_TERMS = len(WEIGHT_NAMES)
PHYSICS_TERMS = ("dynamics", "hill", "effort", "residual", "prior", "ceiling")


def uses_physics(weights) -> bool:
    """Whether any weight (..., N_TERMS) of a physics term is non-zero (host-side NumPy check): a run
    without them compiles a data-only program."""
    w = LossTerms.of(np.asarray(weights))
    return bool(any(np.any(getattr(w, n) != 0) for n in PHYSICS_TERMS))
# The residual joint torque per subject and coordinate, in units of tau_scale:
# c0 + c1 q̇ + Σ_k c_(k+2) φ_k(q), with RESIDUAL_KNOTS Gaussian bumps φ_k spread evenly over the
# coordinate's training range (LossConstants.residual_knots_rad; width one knot spacing): smooth
# in the state and free in shape over the motion, as the passive torque of a ligament or of
# muscles the model lacks is; beyond the motion it fades to the constant and damping terms.
RESIDUAL_KNOTS = 8
RESIDUAL_BASIS = 2 + RESIDUAL_KNOTS
# Identified per subject and muscle, each bounded by a row of LossConstants.bounds: scales of
# nominal F_max, l_opt, l_ts; the EMG-to-excitation gain; the electromechanical delay [s]; the
# constant activation of a muscle without an EMG channel (LossConstants.measured).
PHYSIO_NAMES = ("f_max", "l_opt", "l_ts", "emg_gain", "delay_s", "unmeasured_activation")
# Activation dynamics are integrated over the last ACTIVATION_TAIL_S of each window: enough for
# the largest delay (0.1 s) plus ~5 deactivation time constants.
ACTIVATION_TAIL_S = 0.5


def loss_weights(angle=1.0, force=1.0, dynamics=1.0, hill=1.0, effort=0.0, residual=0.0,
                 prior=0.0, ceiling=0.0) -> Array:
    """The weight vector (N_TERMS,) in :data:`WEIGHT_NAMES` order.

    ``residual`` weighs the mean squared residual joint torque (in units of ``tau_scale``);
    ``prior`` the Gaussian prior Σ ((scale − 1) / width)² on F_max, l_opt and l_ts (mean over
    subjects and muscles; widths in ``LossConstants.prior_width``).

    ``effort`` weighs mean (F/F_max)², the static-optimisation criterion. Without force labels
    the joint torque fixes only the flexor-extensor difference, and F_max trades off against the
    EMG gain, so the co-contraction level is weakly identified; an effort weight prefers the
    least co-contraction that explains the motion, as static optimisation and CMC do. Off by
    default: on the OpenSim wrist sample it did not improve label-free forces.

    ``ceiling`` weighs mean_m relu(F_m / F_max,m − 1)² (F_max of the subject's identified
    model): forces no muscle can make, passive included. Zero below F_max, so it changes
    nothing where the forces are plausible.
    """
    return LossTerms(angle, force, dynamics, hill, effort, residual, prior, ceiling).stack(
    ).astype(jnp.float32)


class Batch(NamedTuple):
    """A batch of windows (B leading). emg (B, W, M); q (B, H, n) [rad]; forces (B, H, M) [N]
    (zeros where unlabelled); has_forces (B,) 1.0/0.0; subject (B,) int."""

    emg: EmgBatch
    q: CoordHistory
    forces: ForceHistory
    has_forces: PerWindow
    subject: Subjects


@struct.dataclass
class LossConstants:
    """Fixed scales and settings (pytree; the non-array fields are static).

    sigma_q (n,) [rad], sigma_f (M,) [N], tau_scale (n,) [N m]: normalisers of the residuals.
    The Hill residual is divided by sigma_f, the scale of the force data term, so the Hill and
    force terms are in the same units and ``hill`` weights are ratios of comparable terms.
    bounds (6, 2): [lo, hi] for F_max, l_opt, l_ts (fractions of nominal), the EMG gain
    (excitation = gain · normalised envelope), the electromechanical delay [s] and the constant
    activation of muscles without an EMG channel (:data:`PHYSIO_NAMES` order).
    rate_hz: label rate. accel: "autodiff" | "fd" | "none" (:func:`physics_residuals`).
    tendon: "compliant" (fibre-tendon equilibrium, De Groote's tendon curve) | "rigid".
    prior_width (3,): widths of the Gaussian prior on the F_max, l_opt, l_ts scales (fractions).
    residual_torque: whether the identified residual joint torque enters the equation of motion.
    residual_knots_rad (n, RESIDUAL_KNOTS): centres of its bumps (:func:`residual_knots`).
    measured (M,): 1.0 for a muscle driven by an EMG channel, 0.0 for one without (its
    activation is the subject's identified constant ``unmeasured_activation``); None: all are.
    """

    sigma_q: Array
    sigma_f: Array
    tau_scale: Array
    bounds: Array
    rate_hz: float = struct.field(pytree_node=False)
    horizon_s: float = struct.field(pytree_node=False)
    n_colloc: int = struct.field(pytree_node=False, default=8)
    accel: str = struct.field(pytree_node=False, default="autodiff")
    tendon: str = struct.field(pytree_node=False, default="rigid")
    prior_width: Array = struct.field(default_factory=lambda: jnp.asarray([0.3, 0.05, 0.05]))
    residual_torque: bool = struct.field(pytree_node=False, default=False)
    measured: Array | None = None
    residual_knots_rad: Array | None = None


def init_physio(n_subjects: int, n_muscles: int, bounds, n_coords: int = 1) -> dict:
    """Raw θ that maps to the nominal values (scale 1) for every subject and muscle, and a zero
    residual joint torque (S, n, :data:`RESIDUAL_BASIS`)."""
    raw = {}
    for k, name in enumerate(PHYSIO_NAMES):
        lo, hi = float(bounds[k][0]), float(bounds[k][1])
        # scales start at nominal (1); the EMG gain, the delay and the unmeasured muscles'
        # activation at the middle of their bounds
        p = (0.5 if name in ("emg_gain", "delay_s", "unmeasured_activation") or hi <= lo
             else (1.0 - lo) / (hi - lo))
        p = min(max(p, 1e-3), 1 - 1e-3)
        raw[name] = jnp.full((n_subjects, n_muscles), jnp.log(p / (1 - p)), jnp.float32)
    raw["shape_a"] = jnp.full((n_subjects, n_muscles), -3.0, jnp.float32)  # A ≈ −0.14
    raw["residual_torque"] = jnp.zeros((n_subjects, n_coords, RESIDUAL_BASIS), jnp.float32)
    return raw


def residual_torque(coef: Array, q: Array, qd: Array, tau_scale: Array, knots_rad: Array
                    ) -> Array:
    """The residual joint torque (n,) [N m] of one subject: ``coef`` (n, RESIDUAL_BASIS) in
    units of ``tau_scale`` (n,) on the basis [1, q̇, φ_1(q) … φ_K(q)] per coordinate, φ_k a
    Gaussian bump centred on ``knots_rad`` (n, K) [rad] with the knot spacing as its width."""
    width = jnp.maximum(knots_rad[:, 1] - knots_rad[:, 0], 1e-3)  # (n,)
    bumps = jnp.exp(-0.5 * ((q[:, None] - knots_rad) / width[:, None]) ** 2)  # (n, K)
    basis = jnp.concatenate([jnp.ones_like(q)[:, None], qd[:, None], bumps], axis=-1)
    return tau_scale * jnp.sum(coef * basis, axis=-1)


def residual_knots(q_train: np.ndarray) -> np.ndarray:
    """Knots (n, RESIDUAL_KNOTS) [rad] of the residual torque's bumps: evenly over each
    coordinate's range in the training motion ``q_train`` (T, n)."""
    lo, hi = q_train.min(0), q_train.max(0)
    hi = np.maximum(hi, lo + 1e-2)
    return np.linspace(lo, hi, RESIDUAL_KNOTS, axis=1).astype(np.float32)


def prior_penalty(scales: dict, width: Array) -> Array:
    """Mean over subjects and muscles of Σ_k ((scale_k − 1) / width_k)², k ∈ F_max, l_opt, l_ts."""
    return sum(jnp.mean(((scales[k] - 1.0) / width[i]) ** 2)
               for i, k in enumerate(("f_max", "l_opt", "l_ts")))


def physio_scales(raw: dict, bounds: Array) -> dict:
    """Bounded {f_max, l_opt, l_ts} (S, M) fractions of nominal, emg_gain (S, M) excitation per
    unit normalised envelope, delay_s (S, M) [s], unmeasured_activation (S, M), and
    shape_a ∈ (−3, 0)."""
    out = {}
    for k, name in enumerate(PHYSIO_NAMES):
        lo, hi = bounds[k, 0], bounds[k, 1]
        out[name] = lo + (hi - lo) * jax.nn.sigmoid(raw[name])
    out["shape_a"] = -3.0 * jax.nn.sigmoid(raw["shape_a"])
    return out


def subject_model(base: MskModel, scales: dict, s: Array) -> MskModel:
    """Subject ``s``'s model from the stacked nominal models ``base`` (S, ...) with its
    identified muscle parameters."""
    nominal = msk.select(base, s)
    m = msk.scale_muscles(nominal, scales["f_max"][s], scales["l_opt"][s], scales["l_ts"][s])
    return m.replace(muscles=m.muscles.replace(shape_a=scales["shape_a"][s]))


def window_activation(window: EmgWindow, gain: MuscleVec, delay_s: MuscleVec,
                      params: muscle.MuscleParams, rate_hz: float) -> Activation:
    """Activation (K, M) over the last K samples of an excitation window (W, M).

    Excitation is ``gain`` · the window, delayed by ``delay_s`` (M,) [s] (linear interpolation,
    differentiable in the delay), then De Groote's first-order activation dynamics
    (:func:`pinnmsk.muscle.integrate_activation`) from the delayed excitation's first value.
    K = min(W, ACTIVATION_TAIL_S · rate).
    """
    w = window.shape[0]
    k = min(w, max(2, int(round(ACTIVATION_TAIL_S * rate_hz))))
    t = jnp.arange(w, dtype=window.dtype) / rate_hz
    u = jnp.clip(gain * muscle.delay(t, window, delay_s), 0.0, 1.0)[w - k:]
    return muscle.integrate_activation(u, 1.0 / rate_hz, params)


def physics_residuals(decode: Decoder, model: MskModel, nominal_f_max: MuscleVec,
                      activation: Activation, consts: LossConstants, tau: Scalar,
                      residual_coef: Array | None = None
                      ) -> tuple[Coords, MuscleVec, MuscleVec, Coords, MuscleVec]:
    """Physics residuals at one time τ ≤ 0 of the head ``decode(τ) -> (q, F)``.

    Returns (dynamics (n,) / tau_scale, Hill (M,) / sigma_f, effort (M,) = F / F_max nominal,
    residual torque (n,) / tau_scale, force above the ceiling (M,) = relu(F / F_max − 1) with
    the model's (identified) F_max); with ``consts.residual_torque`` the subject's residual
    torque (``residual_coef`` (n, RESIDUAL_BASIS)) acts at the joint beside the muscles;
    q̇, q̈ come from autodiff of the head (``consts.accel``: "fd" is the finite-difference
    baseline; "none" the no-inertia ablation, the equation of motion without M q̈ and the
    velocity-product terms);
    ``activation`` (K, M) is the window's activation (:func:`window_activation`), sampled at τ.
    """
    kin = kinematics_fd if consts.accel == "fd" else kinematics
    q, qd, qdd, f, fd = kin(decode, tau)
    tau_res = (residual_torque(residual_coef, q, qd, consts.tau_scale, consts.residual_knots_rad)
               if consts.residual_torque and residual_coef is not None else jnp.zeros_like(q))
    res = msk.dynamics_residual(model, q, qd, qdd, f, tau_ext=tau_res,
                                inertial=consts.accel != "none")
    res = res / consts.tau_scale
    a = muscle.activation_shape(_excitation_at(activation, tau, consts.rate_hz),
                                model.muscles.shape_a)
    hill = msk.tendon_residual(model, a, q, qd, f, fd, consts.tendon) / consts.sigma_f
    over = jax.nn.relu(f / model.muscles.f_max_n - 1.0)
    return res, hill, f / nominal_f_max, tau_res / consts.tau_scale, over


def _excitation_at(window: Activation, tau: Scalar, rate_hz: float) -> MuscleVec:
    """Excitation (M,) at time τ ≤ 0 by linear interpolation of the window (W, M)."""
    w = window.shape[0]
    pos = jnp.clip((w - 1) + tau * rate_hz, 0.0, w - 1.0)
    i0 = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, w - 2)
    frac = pos - i0
    return (1 - frac) * window[i0] + frac * window[i0 + 1]


def example_losses(z: Latent, decode: LatentDecoder,
                   base: MskModel, physio_raw: dict, consts: LossConstants, window: EmgWindow,
                   q_hist: CoordHistory, f_hist: ForceHistory, has_f: Scalar, subject: Subjects,
                   key: Array, use_physics: bool) -> LossTerms:
    """The unweighted per-window loss terms (the prior, which does not depend on the window,
    is 0 here; :func:`batch_loss` adds it). ``z``: the window's latent (the encoder's output
    for ``window``)."""
    h = q_hist.shape[0]
    dec = lambda t: decode(z, t)
    taus = -(h - 1 - jnp.arange(h)) / consts.rate_hz
    q_hat, f_hat = jax.vmap(dec)(taus)
    l_q = jnp.mean(((q_hat - q_hist) / consts.sigma_q) ** 2)
    l_f = has_f * jnp.mean(((f_hat - f_hist) / consts.sigma_f) ** 2)
    zero = jnp.zeros_like(l_q)
    if not use_physics:
        return LossTerms(l_q, l_f, zero, zero, zero, zero, zero, zero)
    scales = physio_scales(physio_raw, consts.bounds)
    model = subject_model(base, scales, subject)
    activation = window_activation(window, scales["emg_gain"][subject],
                                   scales["delay_s"][subject], model.muscles, consts.rate_hz)
    if consts.measured is not None:  # muscles without a channel: a constant, bounded activation
        activation = jnp.where(consts.measured > 0, activation,
                               scales["unmeasured_activation"][subject])
    f_nom = base.muscles.f_max_n[subject]  # nominal: the effort term does not move θ
    tau_c = -consts.horizon_s * jax.random.uniform(key, (consts.n_colloc,))
    coef = physio_raw["residual_torque"][subject]
    res, hill, eff, tres, over = jax.vmap(lambda t: physics_residuals(
        dec, model, f_nom, activation, consts, t, coef))(tau_c)
    return LossTerms(l_q, l_f, jnp.mean(res**2), jnp.mean(hill**2), jnp.mean(eff**2),
                     jnp.mean(tres**2), zero, jnp.mean(over**2))


def batch_loss(encode: Callable[[EmgWindow], Latent],
               decode: LatentDecoder, base: MskModel,
               physio_raw: dict, consts: LossConstants, batch: Batch,
               weights: TermVector | LossTerms, key: Array, use_physics: bool
               ) -> tuple[Scalar, TermVector]:
    """Weighted total loss and the mean terms (N_TERMS,) over a batch (``encode``: window
    (W, C) → latent; ``weights``: (N_TERMS,) in :class:`LossTerms` order, or a
    :class:`LossTerms`)."""
    return latent_batch_loss(jax.vmap(encode)(batch.emg), decode, base, physio_raw, consts,
                             batch, weights, key, use_physics)


def latent_batch_loss(z: LatentBatch,
                      decode: LatentDecoder,
                      base: MskModel, physio_raw: dict, consts: LossConstants, batch: Batch,
                      weights: TermVector | LossTerms, key: Array, use_physics: bool
                      ) -> tuple[Scalar, TermVector]:
    """:func:`batch_loss` given the batch's latents ``z`` (B, latent) instead of the encoder.

    The force term is averaged over labelled windows only, so its scale does not depend on the
    label fraction.
    """
    keys = jax.random.split(key, batch.emg.shape[0])
    terms = jax.vmap(lambda z, w, q, f, hf, s, k: example_losses(
        z, decode, base, physio_raw, consts, w, q, f, hf, s, k, use_physics))(
        z, batch.emg, batch.q, batch.forces, batch.has_forces, batch.subject, keys)
    mean = LossTerms.of(jnp.mean(terms.stack(), axis=0))
    mean = mean._replace(force=jnp.sum(terms.force) / jnp.maximum(jnp.sum(batch.has_forces), 1.0))
    if use_physics:
        mean = mean._replace(prior=prior_penalty(physio_scales(physio_raw, consts.bounds),
                                                 consts.prior_width))
    w = weights if isinstance(weights, LossTerms) else LossTerms.of(weights)
    return mean.total(w), mean.stack()
