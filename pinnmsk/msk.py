"""The musculoskeletal model as one pytree: body + muscles + geometry, and the maps between them.

``MskModel`` is what the simulator integrates and what the physics losses evaluate; a batch of
subjects is a ``jax.vmap`` over it (every leaf gains a leading axis).
"""

from __future__ import annotations

import jax
from flax import struct

from pinnmsk import dynamics, muscle, muscle_models, ode
from pinnmsk.dynamics import BodyModel
from pinnmsk.geometry import PolynomialGeometry
from pinnmsk.muscle import MuscleParams
from pinnmsk.shapes import Coords, MuscleVec

Array = jax.Array


@struct.dataclass
class MskModel:
    """Attributes: ``body`` (a :class:`pinnmsk.dynamics.BodyModel` pytree), ``muscles``
    (:class:`MuscleParams`, (M,) leaves), ``geometry`` (:class:`PolynomialGeometry`)."""

    body: BodyModel
    muscles: MuscleParams
    geometry: PolynomialGeometry

    @property
    def n_muscles(self) -> int:
        return self.muscles.n_muscles

    @property
    def n_coords(self) -> int:
        return self.geometry.n_coords


def muscle_forces(model: MskModel, a: MuscleVec, q: Coords, qd: Coords) -> MuscleVec:
    """Hill forces (M,) [N] for activations ``a`` (M,), angles ``q`` (n,) [rad], rates ``qd``."""
    l_mt, ldot = model.geometry.length_and_velocity(q, qd)
    return muscle.hill_force(a, l_mt, ldot, model.muscles)


def tendon_residual(model: MskModel, a: MuscleVec, q: Coords, qd: Coords, forces_n: MuscleVec,
                    fdot_nps: MuscleVec, tendon: str = "compliant") -> MuscleVec:
    """Hill consistency of tendon forces ``forces_n`` (M,) [N] (rate ``fdot_nps``) at activations
    ``a``: the residual [N] of the muscle model ``tendon`` (:mod:`pinnmsk.muscle_models`), e.g.
    ``"compliant"`` (fibre-tendon equilibrium at the fibre state the tendon force implies) or
    ``"rigid"`` (F minus the rigid-tendon Hill force)."""
    l_mt, ldot = model.geometry.length_and_velocity(q, qd)
    return muscle_models.get(tendon).residual(forces_n, fdot_nps, a, l_mt, ldot, model.muscles)


def joint_torque(model: MskModel, forces_n: MuscleVec, q: Coords) -> Coords:
    """Generalised muscle forces Rᵀ F (n,) [N m]."""
    return dynamics.muscle_torque(model.geometry.moment_arms(q), forces_n)


def dynamics_residual(model: MskModel, q: Coords, qd: Coords, qdd: Coords, forces_n: MuscleVec,
                      tau_ext: Coords | None = None, inertial: bool = True) -> Coords:
    """Equation-of-motion residual (n,) [N m]: M q̈ + h − τ_passive − Rᵀ F − τ_ext.

    ``inertial=False`` drops M q̈ and the velocity-product terms (the no-inertia ablation:
    gravity − τ_passive − Rᵀ F − τ_ext)."""
    tau = joint_torque(model, forces_n, q)
    if tau_ext is not None:
        tau = tau + tau_ext
    if not inertial:
        return dynamics.quasi_static_torque(model.body, q, qd) - tau
    return dynamics.inverse_dynamics(model.body, q, qd, qdd) - tau


def accelerations(model: MskModel, q: Coords, qd: Coords, forces_n: MuscleVec,
                  tau_ext: Coords | None = None) -> Coords:
    """Forward dynamics q̈ (n,) [rad/s²] under muscle forces (and an optional external torque)."""
    tau = joint_torque(model, forces_n, q)
    if tau_ext is not None:
        tau = tau + tau_ext
    return dynamics.forward_dynamics(model.body, q, qd, tau)


def scale_muscles(model: MskModel, f_max=1.0, l_opt=1.0, l_ts=1.0) -> MskModel:
    """A copy with F_max, l_opt and l_ts multiplied by factors (scalars or (M,))."""
    m = model.muscles
    return model.replace(muscles=m.replace(f_max_n=m.f_max_n * f_max, l_opt_m=m.l_opt_m * l_opt,
                                           l_ts_m=m.l_ts_m * l_ts))


def stack(models) -> MskModel:
    """Stack models along a new leading axis (for vmap over subjects)."""
    return ode.tree_stack(models)


@jax.jit
def select(models: MskModel, s) -> MskModel:
    """Model ``s`` (an integer, possibly traced) of models stacked by :func:`stack`; one program
    (indexed eagerly, each leaf shape compiles its own)."""
    return jax.tree_util.tree_map(lambda x: x[s], models)
