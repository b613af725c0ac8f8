"""The loss terms by name: one registry entry per term (what it measures, how it is weighted),
and the loss weights as a pytree ``{name: array}`` that a sweep vmaps over.

A term is one function and its weight rule (:class:`Term`); :mod:`pinnmsk.losses` registers the
method's terms (angle, force, dynamics, hill, effort, residual, prior, ceiling) and evaluates
every registered term, so a new one is a :func:`register` call — nothing else counts or lists
terms. Host records (history ``"terms"``, TensorBoard) keep them in registration order
(:func:`names`). A leaf module (NumPy only).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Mapping

import numpy as np

KINDS = ("window", "point", "params")
SCALINGS = ("fixed", "lambda", "physics")


@dataclasses.dataclass(frozen=True)
class Term:
    """One loss term.

    Attributes:
      name: its name (history, TensorBoard, the ``<name>_weight`` setting).
      kind: what ``fn`` reads and how its value is reduced:
        ``"window"``: ``fn(fit: losses.WindowFit) -> scalar`` per window (the data terms), mean
        over the batch's windows;
        ``"point"``: ``fn(state: losses.PointState) -> residual array`` at each collocation time
        of each window; the term is the mean square over times, elements and windows;
        ``"params"``: ``fn(scales: dict, consts: losses.LossConstants) -> scalar`` once per
        batch from the identified parameters (:func:`pinnmsk.physio.physio_scales`).
        "point" and "params" terms are physics: a run whose weights are all 0 there compiles a
        data-only program.
      fn: the function.
      scaling: how its weight follows the physics weight λ: ``"fixed"`` (the multiplier
        itself), ``"lambda"`` (multiplier · λ) or ``"physics"`` (the multiplier where λ > 0).
      default: the multiplier; None where :class:`pinnmsk.config.TrainConfig` has a field
        ``<name>_weight`` holding it (the built-in terms with a flag of their own).
      labels: a force-label term: weight 0 without force labels, and averaged over the labelled
        windows only ("window" kind; its value is multiplied by the window's label flag).
    """

    name: str
    kind: str
    fn: Callable
    scaling: str = "lambda"
    default: float | None = 1.0
    labels: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"term '{self.name}': kind={self.kind!r} must be one of {KINDS}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"term '{self.name}': scaling={self.scaling!r} must be one of "
                             f"{SCALINGS}")
        if self.labels and self.kind != "window":
            raise ValueError(f"term '{self.name}': only a window term reads force labels")

    @property
    def physics(self) -> bool:
        return self.kind != "window"


_TERMS: dict[str, Term] = {}


def register(term: Term) -> Term:
    """Add ``term`` (after those registered before it); a name already taken is an error."""
    if term.name in _TERMS:
        raise ValueError(f"a loss term named '{term.name}' is already registered")
    _TERMS[term.name] = term
    return term


def unregister(name: str) -> None:
    del _TERMS[name]


def _registry() -> dict[str, Term]:
    """The registry, with the method's terms in it (:mod:`pinnmsk.losses` registers them when
    it is first imported)."""
    importlib.import_module("pinnmsk.losses")
    return _TERMS


def names() -> tuple[str, ...]:
    """The registered terms' names in registration order (the order of host records)."""
    return tuple(_registry())


def all_terms() -> tuple[Term, ...]:
    return tuple(_registry().values())


def physics_names() -> tuple[str, ...]:
    return tuple(n for n, t in _registry().items() if t.physics)


Weights = Mapping[str, np.ndarray | float]  # {term name: scalar, or (K,) for K models}


def _extra(config) -> dict[str, float]:
    """``config.term_weights`` ("name=value,..."), checked against the registry."""
    out = {}
    for item in filter(None, (s.strip() for s in config.term_weights.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in _registry():
            raise ValueError(f"term_weights: '{name}' is no registered loss term; registered: "
                             f"{', '.join(names())}")
        if hasattr(config, name + "_weight"):
            raise ValueError(f"term_weights: '{name}' has its own setting; use "
                             f"{name}_weight")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"term_weights: '{item}' must be name=number") from None
        if out[name] < 0:
            raise ValueError(f"term_weights: '{item}' must be >= 0")
    return out


def _multiplier(config, name: str, extra: dict[str, float]) -> float:
    """Term ``name``'s multiplier for ``config``: its ``<name>_weight`` field, else ``extra``
    (``config.term_weights``, :func:`_extra`), else the registered default."""
    own = getattr(config, name + "_weight", None)
    if own is not None:
        return float(own)
    if name in extra:
        return extra[name]
    default = _registry()[name].default
    if default is None:
        raise ValueError(f"loss term '{name}' has no default weight and the config no field "
                         f"{name}_weight")
    return float(default)


def weights_for(config, physics_weights=None) -> dict[str, np.ndarray]:
    """The loss weights ``{name: (K,) float32}`` for physics weights λ_k (default
    ``config.physics_weights``), each term's by its :class:`Term` rule."""
    # products in float64, then float32 (a multiplier · λ rounded once, as the flags give them)
    lams = np.atleast_1d(np.asarray(config.physics_weights if physics_weights is None
                                    else physics_weights, np.float64))
    extra = _extra(config)
    out = {}
    for t in all_terms():
        m = 0.0 if t.labels and not config.force_labels else _multiplier(config, t.name, extra)
        w = {"fixed": np.full_like(lams, m), "lambda": m * lams,
             "physics": np.where(lams > 0, m, 0.0)}[t.scaling]
        out[t.name] = w.astype(np.float32)
    return out


def run_weights(config, physics_weight: float | None = None) -> dict[str, np.float32]:
    """One model's weights ``{name: scalar}`` at λ = ``physics_weight`` (default: the config's
    one λ)."""
    lam = config.physics_weight if physics_weight is None else physics_weight
    return take(weights_for(config, [lam]), 0)


def take(weights: Weights, k) -> dict:
    """Model ``k``'s weights (scalars) from K models' ``{name: (K,)}``."""
    return {n: np.asarray(w)[k] for n, w in weights.items()}


def n_models(weights: Weights) -> int | None:
    """K for K models' weights ``{name: (K,)}``; None for one model's scalars."""
    shape = np.shape(next(iter(weights.values())))
    return shape[0] if shape else None


def stack(weights: Weights, xp=np):
    """The (..., T) array in :func:`names` order (``xp``: np, or jax.numpy inside a program)."""
    missing = [n for n in names() if n not in weights]
    if missing:
        raise ValueError(f"weights lack the registered term(s) {', '.join(missing)}")
    return xp.stack([xp.asarray(weights[n]) for n in names()], axis=-1)


def unstack(array, xp=np) -> dict:
    """``{name: (...)}`` from an array (..., T) in :func:`names` order."""
    array = xp.asarray(array)
    return {n: array[..., j] for j, n in enumerate(names())}


def uses_physics(weights: Weights) -> bool:
    """Whether any physics term's weight is non-zero (host-side check): a run without them
    compiles a data-only program."""
    return bool(any(np.any(np.asarray(weights[n]) != 0) for n in physics_names()))


def named(**values) -> dict[str, np.float32]:
    """Weights by keyword, every other registered term 0 (an unknown name is an error)."""
    unknown = set(values) - set(names())
    if unknown:
        raise ValueError(f"unknown loss term(s) {', '.join(sorted(unknown))}; registered: "
                         f"{', '.join(names())}")
    return {n: np.float32(values.get(n, 0.0)) for n in names()}
