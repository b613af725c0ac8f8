"""The bodies a data spec can name (``[body] model = "..."``): one registry entry each.

An entry says which class computes the body (a pytree with ``lagrangian(q, qd)`` and
``generalized_forces``..., see :mod:`pinnmsk.dynamics`), how many coordinates it has and how
the spec's ``[body]`` fields are read: which fields exist, which must be given, which may hold
one value per coordinate, which may be negative (angles). The spec reader and the model
builder read nothing else, so a new body is one :func:`register` call. Kept free of JAX (the
class is named as ``"module:Class"`` and imported when a model is built) so that reading a spec
stays light.
"""

from __future__ import annotations

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class BodyType:
    """cls: the body's class, or ``"module:Class"``; n_dof: its coordinates; fields: the
    ``[body]`` fields it takes (SI units in their names); required: those a spec must give (the
    others have the class's defaults); per_joint: fields that may be a list of one value per
    coordinate; signed: fields that may be negative."""

    cls: object
    n_dof: int
    fields: tuple
    required: tuple = ()
    per_joint: tuple = ()
    signed: tuple = ()

    def resolve(self) -> type:
        if not isinstance(self.cls, str):
            return self.cls
        module, name = self.cls.split(":")
        return getattr(importlib.import_module(module), name)


_JOINT = ("damping_nms", "q_offset_rad", "stiffness_nm", "q_rest_rad")

BODIES: dict[str, BodyType] = {
    "pendulum": BodyType(
        "pinnmsk.dynamics:Pendulum", 1,
        ("mass_kg", "com_m", "inertia_kgm2", "gravity_mps2", "q_offset_rad", "damping_nms",
         "stiffness_nm", "q_rest_rad"),
        required=("mass_kg", "com_m", "inertia_kgm2"),
        signed=("q_offset_rad", "q_rest_rad")),
    "two_link": BodyType(
        "pinnmsk.dynamics:TwoLinkArm", 2,
        ("m1_kg", "m2_kg", "l1_m", "lc1_m", "lc2_m", "i1_kgm2", "i2_kgm2", "gravity_mps2",
         "damping_nms", "q_offset_rad", "com1_offset_rad", "stiffness_nm", "q_rest_rad"),
        per_joint=_JOINT, signed=("q_offset_rad", "q_rest_rad", "com1_offset_rad")),
}


def register(name: str, body: BodyType) -> None:
    """Make ``[body] model = name`` available to data specs."""
    if name in BODIES and BODIES[name] != body:
        raise ValueError(f"body '{name}' is already registered")
    BODIES[name] = body
