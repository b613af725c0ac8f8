"""The muscle models a run can name (``tendon`` in a data spec or ``--tendon``): one registry
entry each.

A muscle model computes, from the activation ``a`` (M,), the musculotendon length ``l_mt_m`` and
its rate ``ldot_mt_mps`` (M,) and the muscles' :class:`pinnmsk.muscle.MuscleParams`:

* ``force(a, l_mt_m, ldot_mt_mps, params) -> (M,)`` the tendon force [N] (what the simulator
  integrates and the person's identification fits), and
* ``residual(f_n, fdot_nps, a, l_mt_m, ldot_mt_mps, params) -> (M,)`` how far a given tendon
  force (and its rate) is from the model's [N] (the physics loss's Hill term; zero where they
  agree).

Built in: ``"rigid"`` and ``"compliant"`` (:mod:`pinnmsk.tendons`). A new model is a class with
those two methods and one :func:`register` call; the spec reader, the train step, the
simulator and the identification read nothing else. Kept free of JAX (classes named as
``"module:Class"``, imported on use) so that reading a spec stays light.
"""

from __future__ import annotations

import importlib

MUSCLE_MODELS: dict[str, object] = {
    "rigid": "pinnmsk.tendons:RigidTendon",
    "compliant": "pinnmsk.tendons:CompliantTendon",
}


def register(name: str, cls) -> None:
    """Make ``name`` a muscle model data specs and ``--tendon`` may choose (``cls``: a class
    with ``force`` and ``residual``, or ``"module:Class"``)."""
    if name in MUSCLE_MODELS and MUSCLE_MODELS[name] != cls:
        raise ValueError(f"muscle model '{name}' is already registered")
    MUSCLE_MODELS[name] = cls


def names() -> tuple:
    return tuple(MUSCLE_MODELS)


def get(name: str):
    """An instance of the muscle model ``name``; a ValueError naming the known ones."""
    if name not in MUSCLE_MODELS:
        raise ValueError(f"unknown muscle model '{name}'; known: {', '.join(MUSCLE_MODELS)}")
    cls = MUSCLE_MODELS[name]
    if isinstance(cls, str):
        module, attr = cls.split(":")
        cls = getattr(importlib.import_module(module), attr)
    return cls()
