"""Lagrangian joint dynamics for n coordinates, with accelerations by autodiff.

A body model is any pytree with a method ``lagrangian(q, qd) -> scalar`` [J] and a method
``passive_torque(q, qd) -> (n,)`` [N m] (damping, joint stiffness, limits). From the Lagrangian
L = T − V, with generalised forces Q:

    M = ∂²L/∂q̇²,   q̈ = M⁻¹ (Q + ∂L/∂q − (∂²L/∂q̇∂q) q̇)

so a new body only has to say how its energy depends on q and q̇. Three bodies ship:
:class:`Pendulum` (1-DOF wrist flexion/extension, 1-DOF elbow) and :class:`TwoLinkArm` (planar
shoulder/elbow, whose mass matrix depends on q). Everything is jit-, grad- and vmap-able, and a
batch of subjects is a vmap over the model pytree.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
from flax import struct

from pinnmsk.shapes import Coords, MassMatrix, MomentArms, Motion, MuscleVec, Scalar

Array = jax.Array


class BodyModel(Protocol):
    """What the dynamics functions need of a body."""

    def lagrangian(self, q: Coords, qd: Coords) -> Scalar: ...

    def passive_torque(self, q: Coords, qd: Coords) -> Coords: ...


def _as_vec(x) -> Array:
    return jnp.atleast_1d(jnp.asarray(x, jnp.float32))


def _terms(body: BodyModel, q: Array, qd: Array):
    """(M (n,n), ∂L/∂q (n,), ∂²L/∂q̇∂q (n,n)) at (q, q̇)."""
    dl_dqd = jax.grad(body.lagrangian, argnums=1)
    mass = jax.jacfwd(dl_dqd, argnums=1)(q, qd)
    dl_dq = jax.grad(body.lagrangian, argnums=0)(q, qd)
    cross = jax.jacfwd(dl_dqd, argnums=0)(q, qd)
    return mass, dl_dq, cross


def mass_matrix(body: BodyModel, q: Coords, qd: Coords | None = None) -> MassMatrix:
    """M(q) = ∂²L/∂q̇², shape (n, n) [kg m²]."""
    qd = jnp.zeros_like(q) if qd is None else qd
    return jax.hessian(body.lagrangian, argnums=1)(q, qd)


def bias_forces(body: BodyModel, q: Coords, qd: Coords) -> Coords:
    """h(q, q̇) = (∂²L/∂q̇∂q) q̇ − ∂L/∂q: Coriolis/centrifugal + gravity terms, (n,) [N m]."""
    _, dl_dq, cross = _terms(body, q, qd)
    return cross @ qd - dl_dq


def forward_dynamics(body: BodyModel, q: Coords, qd: Coords, tau: Coords) -> Coords:
    """q̈ (n,) [rad/s²] under applied generalised forces ``tau`` (n,) plus the body's passive torque."""
    mass, dl_dq, cross = _terms(body, q, qd)
    rhs = tau + body.passive_torque(q, qd) + dl_dq - cross @ qd
    return jnp.linalg.solve(mass, rhs)


def inverse_dynamics(body: BodyModel, q: Coords, qd: Coords, qdd: Coords) -> Coords:
    """Applied generalised force (n,) [N m] needed for ``qdd``: M q̈ + h − τ_passive."""
    mass, dl_dq, cross = _terms(body, q, qd)
    return mass @ qdd + cross @ qd - dl_dq - body.passive_torque(q, qd)


@jax.jit
def inverse_dynamics_along(body: BodyModel, q: Motion, qd: Motion, qdd: Motion) -> Motion:
    """:func:`inverse_dynamics` at every sample of a motion (T, n) [N m], one compiled program
    (run eagerly, the vmap compiles ~20 small programs per motion length)."""
    return jax.vmap(lambda a, b, c: inverse_dynamics(body, a, b, c))(q, qd, qdd)


def quasi_static_torque(body: BodyModel, q: Coords, qd: Coords) -> Coords:
    """Applied force (n,) [N m] that holds ``q`` against gravity and the passive torque at rates
    ``qd``, with no inertial forces: inverse dynamics with M q̈ and the Coriolis/centrifugal
    terms dropped (the no-inertia ablation of the physics term)."""
    return -jax.grad(body.lagrangian, argnums=0)(q, jnp.zeros_like(qd)) - body.passive_torque(q, qd)


def muscle_torque(moment_arms_m: MomentArms, forces_n: MuscleVec) -> Coords:
    """Generalised forces Σ_i r_i(q) F_i = Rᵀ F, (n,) [N m]; R: (M, n) [m], F: (M,) [N]."""
    return moment_arms_m.T @ forces_n


def energy(body: BodyModel, q: Coords, qd: Coords) -> Scalar:
    """Total mechanical energy E = q̇ ∂L/∂q̇ − L [J] (the Hamiltonian)."""
    return jnp.dot(qd, jax.grad(body.lagrangian, argnums=1)(q, qd)) - body.lagrangian(q, qd)


# --------------------------------------------------------------------------- bodies


@struct.dataclass
class Pendulum:
    """One rigid segment on a revolute joint (wrist flexion/extension, elbow flexion).

    The segment points along +x at q = 0 and rotates toward +y for positive q, so with gravity
    along −y the potential is V = m g c sin(q + q_offset).

    Attributes (scalars, or (1,)):
      mass_kg: segment mass [kg].
      com_m: distance joint → centre of mass [m].
      inertia_kgm2: moment of inertia about the centre of mass [kg m²].
      gravity_mps2: gravitational acceleration [m/s²] (0 disables gravity).
      q_offset_rad: segment angle to the horizontal at q = 0 [rad].
      damping_nms: viscous joint damping [N m s/rad].
      stiffness_nm: linear passive joint stiffness [N m/rad] about ``q_rest_rad``.
      q_rest_rad: rest angle of the passive stiffness [rad].
    """

    mass_kg: Array
    com_m: Array
    inertia_kgm2: Array
    gravity_mps2: Array = 9.81
    q_offset_rad: Array = 0.0
    damping_nms: Array = 0.0
    stiffness_nm: Array = 0.0
    q_rest_rad: Array = 0.0

    @property
    def joint_inertia(self) -> Array:
        return self.inertia_kgm2 + self.mass_kg * self.com_m**2

    def lagrangian(self, q: Array, qd: Array) -> Array:
        kinetic = 0.5 * self.joint_inertia * qd[0] ** 2
        potential = self.mass_kg * self.gravity_mps2 * self.com_m * jnp.sin(q[0] + self.q_offset_rad)
        return jnp.squeeze(kinetic - potential)

    def passive_torque(self, q: Array, qd: Array) -> Array:
        return _as_vec(-self.damping_nms * qd[0] - self.stiffness_nm * (q[0] - self.q_rest_rad)
                       ).reshape(1)


def wrist(**overrides) -> Pendulum:
    """Default 1-DOF wrist flexion/extension: hand 0.45 kg, COM 7 cm, as in the OpenSim sample."""
    kw = dict(mass_kg=0.45, com_m=0.07, inertia_kgm2=6e-4, damping_nms=0.05)
    kw.update(overrides)
    return Pendulum(**kw)


def elbow(**overrides) -> Pendulum:
    """Default 1-DOF elbow flexion: forearm + hand 1.6 kg, COM 16 cm (Winter's anthropometry)."""
    kw = dict(mass_kg=1.6, com_m=0.16, inertia_kgm2=0.011, damping_nms=0.3, q_offset_rad=-jnp.pi / 2)
    kw.update(overrides)
    return Pendulum(**kw)


@struct.dataclass
class TwoLinkArm:
    """Planar two-link arm (shoulder q₁, elbow q₂ relative), the kinetic energy built from the
    Cartesian velocities of the two centres of mass, so M(q) comes out of autodiff rather than
    being written down. Gravity along −y.

    ``q`` are the lab model's own coordinates (e.g. OpenSim's ``r_shoulder_elev``,
    ``r_elbow_flex``); the link angles are q + ``q_offset_rad`` (link 1 along +x and link 2 in
    line with link 1 at zero link angles). Link 1's centre of mass may sit off the line from the
    shoulder to the elbow by ``com1_offset_rad`` (arm26's humerus: −0.021 rad).

    Attributes: masses ``m1_kg``, ``m2_kg``; link-1 length ``l1_m``; COM distances ``lc1_m``,
    ``lc2_m``; COM inertias ``i1_kgm2``, ``i2_kgm2``; ``gravity_mps2``; per joint (scalar or
    (2,)): ``q_offset_rad`` [rad], ``damping_nms`` [N m s/rad], ``stiffness_nm`` [N m/rad] of a
    linear spring about ``q_rest_rad`` [rad, model coordinates].
    """

    # segments: upper arm, then forearm + hand (Winter's anthropometry)
    m1_kg: Array = 2.0
    m2_kg: Array = 1.6
    i1_kgm2: Array = 0.02
    i2_kgm2: Array = 0.011
    # where the segments' lengths and centres of mass lie
    l1_m: Array = 0.30
    lc1_m: Array = 0.15
    lc2_m: Array = 0.16
    com1_offset_rad: Array = 0.0
    gravity_mps2: Array = 9.81
    # joints: one value shared by both, or (2,) per joint, in the model's coordinates
    q_offset_rad: Array | float = 0.0
    damping_nms: Array | float = 0.0
    stiffness_nm: Array | float = 0.0
    q_rest_rad: Array | float = 0.0

    def com_positions(self, q: Array) -> tuple[Array, Array]:
        """Centres of mass of link 1 and link 2, each (2,) [m], at model coordinates ``q``."""
        a = q + self.q_offset_rad  # link angles
        c1 = a[0] + self.com1_offset_rad
        p1 = self.lc1_m * jnp.array([jnp.cos(c1), jnp.sin(c1)])
        elbow_pos = self.l1_m * jnp.array([jnp.cos(a[0]), jnp.sin(a[0])])
        p2 = elbow_pos + self.lc2_m * jnp.array([jnp.cos(a[0] + a[1]), jnp.sin(a[0] + a[1])])
        return p1, p2

    def lagrangian(self, q: Array, qd: Array) -> Array:
        (p1, p2), (v1, v2) = jax.jvp(self.com_positions, (q,), (qd,))
        kinetic = (0.5 * self.m1_kg * v1 @ v1 + 0.5 * self.m2_kg * v2 @ v2
                   + 0.5 * self.i1_kgm2 * qd[0] ** 2 + 0.5 * self.i2_kgm2 * (qd[0] + qd[1]) ** 2)
        potential = self.gravity_mps2 * (self.m1_kg * p1[1] + self.m2_kg * p2[1])
        return kinetic - potential

    def passive_torque(self, q: Array, qd: Array) -> Array:
        return -self.damping_nms * qd - self.stiffness_nm * (q - self.q_rest_rad)
