"""Data and physics losses of the physics-informed model (Zhang et al., arXiv 2207.01435).

The loss is Σ_k w_k · term_k over the registered terms (:mod:`pinnmsk.terms`): the weights are a
pytree ``{name: scalar}`` (``(K,)`` per name in a sweep, which vmaps over them). This module
registers the method's terms — the data terms (angle, force), the physics residuals at the
collocation times (dynamics, hill, effort, residual, ceiling) and the prior on the identified
parameters (:mod:`pinnmsk.physio`) — and evaluates every registered term, a user's included.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from pinnmsk import msk, muscle, terms
from pinnmsk.activation import window_activation
from pinnmsk.models import Decoder, LatentDecoder, kinematics, kinematics_fd
from pinnmsk.msk import MskModel
from pinnmsk.physio import physio_scales, prior_penalty, residual_torque, subject_model
from pinnmsk.shapes import (Activation, CoordHistory, Coords, EmgBatch, EmgWindow, ForceHistory,
                            Latent, LatentBatch, MuscleVec, PerWindow, Scalar, Subjects,
                            TermVector)

Array = jax.Array
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
    activation of muscles without an EMG channel (:data:`pinnmsk.physio.PHYSIO_NAMES` order).
    rate_hz: label rate. accel: "autodiff" | "fd" | "none" (:func:`point_state`).
    tendon: the Hill term's muscle model (:mod:`pinnmsk.muscle_models`: "rigid", "compliant"
    or one a user registered).
    prior_width (3,): widths of the Gaussian prior on the F_max, l_opt, l_ts scales (fractions;
    the spec's ``identification.prior_width``); needed where the prior term is evaluated.
    residual_torque: whether the identified residual joint torque enters the equation of motion.
    residual_knots_rad (n, RESIDUAL_KNOTS): centres of its bumps
    (:func:`pinnmsk.physio.residual_knots`).
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
    prior_width: Array | None = None
    residual_torque: bool = struct.field(pytree_node=False, default=False)
    measured: Array | None = None
    residual_knots_rad: Array | None = None


class WindowFit(NamedTuple):
    """What a "window" term reads: the head's q̂ (H, n) [rad] and F̂ (H, M) [N] over the
    window's label history, the labels q (H, n), F (H, M), and the constants."""

    q_hat: CoordHistory
    q: CoordHistory
    f_hat: ForceHistory
    f: ForceHistory
    consts: LossConstants


class PointState(NamedTuple):
    """What a "point" term reads at one collocation time τ: q, q̇, q̈ (n,) [rad, rad/s, rad/s²]
    and F, Ḟ (M,) [N, N/s] of the head (autodiff, or the "fd" baseline); the activation a (M,);
    the subject's identified ``model``; its nominal F_max (M,) [N]; the residual joint torque
    (n,) [N m] (zeros without one); the constants."""

    q: Coords
    qd: Coords
    qdd: Coords
    f: MuscleVec
    fd: MuscleVec
    a: MuscleVec
    model: MskModel
    nominal_f_max: MuscleVec
    tau_res: Coords
    consts: LossConstants


def angle_term(w: WindowFit) -> Scalar:
    """Mean squared angle error in units of σ_q."""
    return jnp.mean(((w.q_hat - w.q) / w.consts.sigma_q) ** 2)


def force_term(w: WindowFit) -> Scalar:
    """Mean squared force error in units of σ_F (labelled windows only)."""
    return jnp.mean(((w.f_hat - w.f) / w.consts.sigma_f) ** 2)


def dynamics_term(p: PointState) -> Coords:
    """The equation of motion's residual (n,) / tau_scale, the residual torque acting beside the
    muscles; without inertia (``accel="none"``) M q̈ and the velocity-product terms are left out."""
    res = msk.dynamics_residual(p.model, p.q, p.qd, p.qdd, p.f, tau_ext=p.tau_res,
                                inertial=p.consts.accel != "none")
    return res / p.consts.tau_scale


def hill_term(p: PointState) -> MuscleVec:
    """The muscle model's residual (M,) / σ_F (:func:`pinnmsk.msk.tendon_residual`)."""
    return msk.tendon_residual(p.model, p.a, p.q, p.qd, p.f, p.fd, p.consts.tendon) / \
        p.consts.sigma_f


def effort_term(p: PointState) -> MuscleVec:
    """F / F_max (nominal: the effort does not move θ), whose mean square is static
    optimisation's criterion. Without force labels the joint torque fixes only the flexor-extensor
    difference, and F_max trades off against the EMG gain, so the co-contraction level is weakly
    identified; an effort weight prefers the least co-contraction that explains the motion."""
    return p.f / p.nominal_f_max


def residual_term(p: PointState) -> Coords:
    """The residual joint torque (n,) / tau_scale: its size is penalised."""
    return p.tau_res / p.consts.tau_scale


def ceiling_term(p: PointState) -> MuscleVec:
    """relu(F / F_max − 1) (M,), F_max of the subject's identified model: forces no muscle can
    make, passive included; zero below F_max, so it changes nothing where forces are plausible."""
    return jax.nn.relu(p.f / p.model.muscles.f_max_n - 1.0)


def prior_term(scales: dict, consts: LossConstants) -> Scalar:
    """The Gaussian prior Σ ((scale − 1) / width)² on the F_max, l_opt, l_ts scales (mean over
    subjects and muscles; widths ``consts.prior_width``)."""
    return prior_penalty(scales, consts.prior_width)


# The method's terms, in the order of the host records. Multipliers of those with a TrainConfig
# field <name>_weight live there; angle and force weigh 1, dynamics λ.
for _t in (terms.Term("angle", "window", angle_term, "fixed"),
           terms.Term("force", "window", force_term, "fixed", labels=True),
           terms.Term("dynamics", "point", dynamics_term, "lambda"),
           terms.Term("hill", "point", hill_term, "lambda", None),
           terms.Term("effort", "point", effort_term, "physics", None),
           terms.Term("residual", "point", residual_term, "lambda", None),
           terms.Term("prior", "params", prior_term, "lambda", None),
           terms.Term("ceiling", "point", ceiling_term, "physics", None)):
    terms.register(_t)


def point_state(decode: Decoder, model: MskModel, nominal_f_max: MuscleVec,
                activation: Activation, consts: LossConstants, tau: Scalar,
                residual_coef: Array | None = None) -> PointState:
    """The :class:`PointState` at one time τ ≤ 0 of the head ``decode(τ) -> (q, F)``: q̇, q̈
    and Ḟ by autodiff of the head (``consts.accel``: "fd" is the finite-difference baseline);
    with ``consts.residual_torque`` the subject's residual torque (``residual_coef``
    (n, RESIDUAL_BASIS)); ``activation`` (K, M) the window's
    (:func:`pinnmsk.activation.window_activation`), sampled at τ and shaped by the model's
    ``shape_a``."""
    kin = kinematics_fd if consts.accel == "fd" else kinematics
    q, qd, qdd, f, fd = kin(decode, tau)
    tau_res = (residual_torque(residual_coef, q, qd, consts.tau_scale, consts.residual_knots_rad)
               if consts.residual_torque and residual_coef is not None else jnp.zeros_like(q))
    a = muscle.activation_shape(_excitation_at(activation, tau, consts.rate_hz),
                                model.muscles.shape_a)
    return PointState(q, qd, qdd, f, fd, a, model, nominal_f_max, tau_res, consts)


def physics_residuals(decode: Decoder, model: MskModel, nominal_f_max: MuscleVec,
                      activation: Activation, consts: LossConstants, tau: Scalar,
                      residual_coef: Array | None = None) -> dict[str, Array]:
    """Every registered "point" term's residual at τ (:func:`point_state`), by name."""
    p = point_state(decode, model, nominal_f_max, activation, consts, tau, residual_coef)
    return {t.name: t.fn(p) for t in terms.all_terms() if t.kind == "point"}


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
                   key: Array, use_physics: bool) -> dict[str, Scalar]:
    """The unweighted per-window terms by name ("params" terms, which do not depend on the
    window, are 0 here; :func:`latent_batch_loss` adds them). ``z``: the window's latent (the
    encoder's output for ``window``)."""
    h = q_hist.shape[0]
    dec = lambda t: decode(z, t)
    taus = -(h - 1 - jnp.arange(h)) / consts.rate_hz
    q_hat, f_hat = jax.vmap(dec)(taus)
    fit = WindowFit(q_hat, q_hist, f_hat, f_hist, consts)
    out = {}
    for t in terms.all_terms():
        if t.kind == "window":
            out[t.name] = has_f * t.fn(fit) if t.labels else t.fn(fit)
    zero = jnp.zeros_like(out[next(iter(out))])
    if not use_physics:
        return {n: out.get(n, zero) for n in terms.names()}
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
    res = jax.vmap(lambda t: physics_residuals(dec, model, f_nom, activation, consts, t, coef))(
        tau_c)
    out.update({n: jnp.mean(r**2) for n, r in res.items()})
    return {n: out.get(n, zero) for n in terms.names()}


def batch_loss(encode: Callable[[EmgWindow], Latent],
               decode: LatentDecoder, base: MskModel,
               physio_raw: dict, consts: LossConstants, batch: Batch,
               weights: terms.Weights, key: Array, use_physics: bool
               ) -> tuple[Scalar, TermVector]:
    """Weighted total loss and the mean terms (T,) in :func:`pinnmsk.terms.names` order over a
    batch (``encode``: window (W, C) → latent; ``weights``: ``{name: scalar}``)."""
    return latent_batch_loss(jax.vmap(encode)(batch.emg), decode, base, physio_raw, consts,
                             batch, weights, key, use_physics)


def latent_batch_loss(z: LatentBatch,
                      decode: LatentDecoder,
                      base: MskModel, physio_raw: dict, consts: LossConstants, batch: Batch,
                      weights: terms.Weights, key: Array, use_physics: bool
                      ) -> tuple[Scalar, TermVector]:
    """:func:`batch_loss` given the batch's latents ``z`` (B, latent) instead of the encoder.

    A force-label term is averaged over labelled windows only, so its scale does not depend on
    the label fraction.
    """
    keys = jax.random.split(key, batch.emg.shape[0])
    per = jax.vmap(lambda z, w, q, f, hf, s, k: example_losses(
        z, decode, base, physio_raw, consts, w, q, f, hf, s, k, use_physics))(
        z, batch.emg, batch.q, batch.forces, batch.has_forces, batch.subject, keys)
    mean = terms.unstack(jnp.mean(terms.stack(per, jnp), axis=0), jnp)
    scales = physio_scales(physio_raw, consts.bounds) if use_physics else None
    for t in terms.all_terms():
        if t.labels:
            mean[t.name] = jnp.sum(per[t.name]) / jnp.maximum(jnp.sum(batch.has_forces), 1.0)
        elif t.kind == "params" and use_physics:
            mean[t.name] = t.fn(scales, consts)
    mean = terms.stack(mean, jnp)
    return jnp.dot(terms.stack(weights, jnp).astype(mean.dtype), mean), mean
