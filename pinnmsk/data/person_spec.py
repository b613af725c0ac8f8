"""The ``[person]`` table of a data spec: which of the person's parameters are identified before
training, and their priors (JAX-free; read by :mod:`pinnmsk.data.spec`, used by
:mod:`pinnmsk.person`). Each default is written once, here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pinnmsk.errors import DataError


@dataclasses.dataclass(frozen=True)
class Prior:
    """A Gaussian prior N(centre, width²) on one parameter, truncated to [lo, hi]."""

    centre: float
    width: float
    lo: float
    hi: float

    def as_list(self) -> list:
        return [self.centre, self.width, self.lo, self.hi]


# What can be identified, with its default prior (documented in data_specs/README.md):
#   held: each held (unrecorded) coordinate [rad]; centre = the spec's held value, the range
#     from person.held_range_rad (required), width PersonSpec.held_width_rad;
#   l_ts: tendon slack length, a scale of the lab's (CEINMS calibrates it within ±15 %);
#   passive_strain: fibre strain at one normalised passive force (De Groote 0.6; Thelen 2003
#     gives 0.5-0.7 for young to old adults; bounds wider, the prior holds it near 0.6);
#   f_max: a scale of the lab's F_max (as identification.prior_width.f_max);
#   emg_gain: excitation per unit normalised envelope; centre and bounds from the spec's
#     identification.emg_gain (the middle of the bounds), width half the range;
#   stiffness: linear passive joint stiffness [N m/rad] about the body's rest angle, per
#     coordinate (ligaments and capsule; small in mid-range, e.g. 1-3 N m/rad at the wrist).
PARAMETERS = ("held", "l_ts", "passive_strain", "f_max", "emg_gain", "stiffness")
DEFAULT_PRIORS = {
    "l_ts": Prior(1.0, 0.05, 0.85, 1.15),
    "passive_strain": Prior(0.6, 0.1, 0.4, 1.2),
    "f_max": Prior(1.0, 0.3, 0.5, 2.0),
    "stiffness": Prior(0.0, 5.0, 0.0, 50.0),
}


@dataclasses.dataclass(frozen=True)
class PersonSpec:
    """``identify``: the parameter kinds identified (:data:`PARAMETERS`); the others stay at
    the lab's model. ``held_range_rad``: {held coordinate: (lo, hi)} [rad] it may take.
    ``priors``: {kind: :class:`Prior`} overriding :data:`DEFAULT_PRIORS`. ``ceiling_weight``:
    weight of the penalty on forces above F_max (passive included) in the identification.
    ``correlation_s``: the time [s] over which the torque residual counts as one independent
    sample; the training motion's duration over it is N_eff. Default: one movement cycle
    (3 s; the shipped motions repeat every 2-5 s, the wrist's slowest every 18 s). Under a
    model that is not exactly the person's, the misfit repeats with each cycle, so evidence
    grows per cycle, not per sample: at the residual's own autocorrelation time (0.25-0.9 s on
    the shipped data) the OpenSim samples' F_max and l_ts move up to 2.2 prior widths away
    from their simulation truth, at 3 s at most 0.54 (``experiments.diagnose --identify``)."""

    identify: tuple = PARAMETERS
    held_range_rad: dict = dataclasses.field(default_factory=dict)
    held_width_rad: float = 0.35
    priors: dict = dataclasses.field(default_factory=dict)
    ceiling_weight: float = 100.0
    correlation_s: float = 3.0
    steps: int = 600

    def prior(self, kind: str) -> Prior:
        return self.priors.get(kind, DEFAULT_PRIORS[kind])


def parse(fields, held: dict) -> PersonSpec | None:
    """The ``[person]`` table (a ``toml_fields._Fields``) or None where the spec has none; ``held``:
    the geometry's held coordinates {name: value [rad]}."""
    if not fields.table:
        return None
    d = PersonSpec()
    identify = fields.get("identify", ("list", str), d.identify)
    ranges = fields.get("held_range_rad", ("map", ("pair",)), {})
    width = fields.get("held_width_rad", float, d.held_width_rad)
    raw = fields.get("priors", ("map", ("list", float)), {})
    ceiling = fields.get("ceiling_weight", float, d.ceiling_weight)
    corr = fields.get("correlation_s", float, d.correlation_s)
    steps = fields.get("steps", int, d.steps)
    fields.finish()
    path = fields.path
    for k in identify:
        if k not in PARAMETERS:
            raise DataError(f"{path}: field 'person.identify' names '{k}'; known: "
                            f"{', '.join(PARAMETERS)}")
    priors = {}
    for k, v in raw.items():
        if k not in DEFAULT_PRIORS:
            raise DataError(f"{path}: field 'person.priors' names '{k}'; known: "
                            f"{', '.join(DEFAULT_PRIORS)} (held: held_range_rad, held_width_rad)")
        if len(v) != 4 or not (v[2] <= v[0] <= v[3] and v[1] > 0 and v[2] < v[3]):
            raise DataError(f"{path}: field 'person.priors.{k}' = {list(v)} must be [centre, "
                            "width, low, high] with width > 0 and low <= centre <= high")
        priors[k] = Prior(*v)
    if "held" in identify:
        if not held:
            raise DataError(f"{path}: field 'person.identify' names 'held' but the geometry "
                            "holds no coordinate; set geometry.held_coordinates_rad (and a "
                            "length table over it) or leave 'held' out")
        for c, v in held.items():
            if c not in ranges:
                raise DataError(f"{path}: field 'person.held_range_rad' has no range for the "
                                f"held coordinate '{c}'; add {c} = [low, high] [rad]")
            lo, hi = ranges[c]
            if not lo <= v <= hi:
                raise DataError(f"{path}: field 'person.held_range_rad.{c}' = [{lo}, {hi}] "
                                f"must contain the held value {v} (the prior's centre)")
    unknown = [c for c in ranges if c not in held]
    if unknown:
        raise DataError(f"{path}: field 'person.held_range_rad' names '{unknown[0]}', which "
                        "geometry.held_coordinates_rad does not hold")
    if not (np.isfinite(width) and width > 0 and ceiling >= 0 and corr > 0 and steps > 0):
        raise DataError(f"{path}: fields 'person.held_width_rad', 'correlation_s' and 'steps' "
                        "must be > 0 and 'ceiling_weight' >= 0")
    return PersonSpec(tuple(identify), {c: tuple(r) for c, r in ranges.items()}, width, priors,
                      ceiling, corr, steps)
