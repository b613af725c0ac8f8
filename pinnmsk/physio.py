"""The identified parameters of each subject (arXiv 2412.04213): unconstrained raw arrays θ
mapped into their bounds by a sigmoid (:func:`physio_scales`), the subject's model built from them
(:func:`subject_model`), the Gaussian prior centring them on the lab's model
(:func:`prior_penalty`), and the identified residual joint torque (:func:`residual_torque`) that
stands for what the model lacks (unmodelled muscles, ligaments).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import msk
from pinnmsk.config import PHYSIO_NAMES
from pinnmsk.msk import MskModel

Array = jax.Array

# The residual joint torque per subject and coordinate, in units of tau_scale:
# c0 + c1 q̇ + Σ_k c_(k+2) φ_k(q), with RESIDUAL_KNOTS Gaussian bumps φ_k spread evenly over the
# coordinate's training range (LossConstants.residual_knots_rad; width one knot spacing): smooth
# in the state and free in shape over the motion, as the passive torque of a ligament or of
# muscles the model lacks is; beyond the motion it fades to the constant and damping terms.
RESIDUAL_KNOTS = 8
RESIDUAL_BASIS = 2 + RESIDUAL_KNOTS

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
