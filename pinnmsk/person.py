"""A model of the person: what the lab's generic model gets wrong for each subject, identified
from the subject's training motion and EMG before any network is trained.


Per subject, the spec's ``[person]`` table (:class:`pinnmsk.data.person_spec.PersonSpec`)
frees some of: the value of each held (unrecorded) coordinate [rad] (the hip during a knee
task: the length polynomial over knee × hip is evaluated there), each muscle's tendon slack
length (a scale), passive fibre strain at one normalised force, F_max (a scale) and EMG gain,
and an added linear passive joint stiffness [N m/rad] per coordinate. The others stay at the lab's
model. The fit is a maximum a posteriori estimate: the muscles driven by the recorded EMG
(activation dynamics, the spec's tendon) must make the torque the recorded motion needs
(inverse dynamics), with

  loss = ½ N_eff log(mean squared torque residual)      (Gaussian, unknown noise level)
       + ½ Σ ((θ − centre) / width)²                     (the priors, over free entries)
       + ceiling_weight · N_eff · mean Σ_m relu(F_m / F_max,m − 1)²   (forces a muscle can make)

N_eff = the training motion's duration / ``correlation_s`` (one independent torque sample per
movement cycle: the misfit of a model that is not exactly the person's repeats with each cycle). Each
parameter is bounded by its prior's [lo, hi] (a sigmoid). The posterior width is the Laplace
approximation (the inverse Hessian of the loss at the optimum). The EMG-driven activation uses
the middle of the spec's delay bounds and, for muscles without a channel, the middle of
``identification.unmeasured_activation``.

:func:`identify` is pure (arrays in, arrays out, one compiled program for all subjects);
:func:`pinnmsk.personalise.personalise` applies it to a loaded
:class:`pinnmsk.data.dataset.Dataset`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax

from pinnmsk import dynamics, muscle, muscle_models, ode
from pinnmsk.data.person_spec import PARAMETERS, PersonSpec
from pinnmsk.geometry import PolynomialGeometry
from pinnmsk.msk import MskModel


Array = jax.Array


class Motion(NamedTuple):
    """The subjects' training motions, concatenated per subject and padded to T samples.

    q, qd, qdd: (S, T, n) [rad, rad/s, rad/s²]; u: (S, T, M) excitation per unit gain (the
    normalised envelope, delayed); start: (S, T) 1.0 at each trial's first sample; weight:
    (S, T) 1.0 on real samples, 0.0 on padding; unmeasured: (S, M) constant activation of a
    muscle without a channel (NaN for a measured one)."""

    q: Array
    qd: Array
    qdd: Array
    u: Array
    start: Array
    weight: Array
    unmeasured: Array


class Priors(NamedTuple):
    """Per kind (:data:`PARAMETERS` order) an array (4, size): centre, width, lo, hi; and a
    free mask per kind (size,), 1.0 where identified."""

    table: dict
    free: dict


def priors_for(person: PersonSpec, held_rad: np.ndarray, gain_bounds, n_muscles: int,
               n_coords: int) -> Priors:
    """The :class:`Priors` of a spec's ``[person]`` table: ``held_rad`` (H,) the spec's held
    values (the prior centres), ``gain_bounds`` the spec's identification.emg_gain."""
    lo, hi = gain_bounds
    sizes = {"held": len(held_rad), "l_ts": n_muscles, "passive_strain": n_muscles,
             "f_max": n_muscles, "emg_gain": n_muscles, "stiffness": n_coords}
    table, free = {}, {}
    ranges = list(person.held_range_rad.values())
    for kind in PARAMETERS:
        n = sizes[kind]
        if kind == "held":
            rows = [[c, person.held_width_rad, *ranges[i]] if i < len(ranges) else [c, 1.0, c, c]
                    for i, c in enumerate(held_rad)]
            t = np.asarray(rows, np.float32).reshape(n, 4).T
        elif kind == "emg_gain":
            t = np.tile([[0.5 * (lo + hi)], [max(0.5 * (hi - lo), 1e-3)], [lo], [hi]], (1, n))
        else:
            t = np.tile(np.asarray(person.prior(kind).as_list())[:, None], (1, n))
        table[kind] = jnp.asarray(t, jnp.float32)
        on = kind in person.identify and (kind != "emg_gain" or hi > lo)
        free[kind] = jnp.full((n,), 1.0 if on else 0.0, jnp.float32)
    return Priors(table, free)


def _values(raw: dict, priors: Priors) -> dict:
    """Bounded parameter values from unconstrained ``raw``; fixed kinds at their centre."""
    out = {}
    for kind, t in priors.table.items():
        v = t[2] + (t[3] - t[2]) * jax.nn.sigmoid(raw[kind])
        out[kind] = jnp.where(priors.free[kind] > 0, v, t[0])
    return out


def _raw_at_centre(priors: Priors) -> dict:
    out = {}
    for kind, t in priors.table.items():
        frac = jnp.clip((t[0] - t[2]) / jnp.maximum(t[3] - t[2], 1e-9), 1e-3, 1 - 1e-3)
        out[kind] = jnp.log(frac / (1 - frac))
    return out


def person_model(base: MskModel, held_geo: PolynomialGeometry | None, values: dict
                 ) -> tuple[MskModel, callable]:
    """One subject's model with ``values`` applied (geometry aside) and its length function
    q (n,) -> l_mt (M,) [m] (over the recorded coordinates, the held ones at ``values["held"]``)."""
    m = base.muscles
    muscles = m.replace(f_max_n=m.f_max_n * values["f_max"], l_ts_m=m.l_ts_m * values["l_ts"],
                        passive_strain=values["passive_strain"])
    body = base.body.replace(stiffness_nm=jnp.asarray(base.body.stiffness_nm, jnp.float32)
                             + values["stiffness"])
    if held_geo is None:
        length = base.geometry.length
    else:
        length = lambda q: held_geo.length(jnp.concatenate([q, values["held"]]))
    return base.replace(muscles=muscles, body=body), length


def _forces(model: MskModel, length, a, q, qd, tendon: str):
    """(forces (M,) [N], moment arms (M, n) [m]) at one sample."""
    l_mt, ldot = jax.jvp(length, (q,), (qd,))
    arms = -jax.jacfwd(length)(q)
    return muscle_models.get(tendon).force(a, l_mt, ldot, model.muscles), arms


def activations(u: Array, start: Array, gain: Array, params: muscle.MuscleParams, dt_s: float,
                unmeasured: Array) -> Array:
    """EMG-driven activation (T, M) of concatenated trials: excitation clip(gain · u) through
    De Groote's activation dynamics, restarted (a = excitation) at each trial's first sample;
    a muscle without a channel holds its constant ``unmeasured`` (NaN: measured)."""
    e = jnp.clip(gain * u, 0.0, 1.0)

    def step(a, x):
        e_t, s_t = x
        nxt = jnp.clip(ode.rk4_step(lambda y: muscle.activation_rate(e_t, y, params), a, dt_s),
                       0.0, 1.0)
        nxt = jnp.where(s_t > 0, e_t, nxt)
        return nxt, nxt

    _, a = jax.lax.scan(step, e[0], (e, start))
    return jnp.where(jnp.isnan(unmeasured), a, unmeasured)


def terms(values: dict, base: MskModel, held_geo, motion_s: Motion, dt_s: float, tendon: str
          ) -> dict:
    """One subject's torque balance under ``values``: need (T, n) [N m] (inverse dynamics,
    passive joint torque included), muscle (T, n) [N m], forces (T, M) [N], f_max (M,) [N]."""
    model, length = person_model(base, held_geo, values)
    a = activations(motion_s.u, motion_s.start, values["emg_gain"], model.muscles, dt_s,
                    motion_s.unmeasured)
    f, arms = jax.vmap(lambda a_, q, qd: _forces(model, length, a_, q, qd, tendon))(
        a, motion_s.q, motion_s.qd)
    need = jax.vmap(lambda q, qd, qdd: dynamics.inverse_dynamics(model.body, q, qd, qdd))(
        motion_s.q, motion_s.qd, motion_s.qdd)
    return {"need": need, "muscle": jnp.einsum("tmn,tm->tn", arms, f), "forces": f,
            "f_max": model.muscles.f_max_n}


def loss(values: dict, base: MskModel, held_geo, motion_s: Motion, priors: Priors,
         n_eff: Array, ceiling_weight: float, dt_s: float, tendon: str) -> Array:
    """The negative log posterior of one subject (module docstring)."""
    t = terms(values, base, held_geo, motion_s, dt_s, tendon)
    w = motion_s.weight
    mse = jnp.sum(w[:, None] * (t["need"] - t["muscle"]) ** 2) / (
        jnp.sum(w) * t["need"].shape[1])
    over = jnp.sum(w[:, None] * jax.nn.relu(t["forces"] / t["f_max"] - 1.0) ** 2) / jnp.sum(w)
    prior = sum(jnp.sum(priors.free[k] * ((values[k] - tab[0]) / tab[1]) ** 2)
                for k, tab in priors.table.items())
    return (0.5 * n_eff * jnp.log(mse + 1e-6) + 0.5 * prior
            + ceiling_weight * n_eff * over)


def identify(base: MskModel, held_geo, motion: Motion, priors: Priors, n_eff: Array,
             person: PersonSpec, dt_s: float, tendon: str) -> tuple[dict, dict]:
    """MAP values per subject {kind: (S, size)} and their Laplace posterior sd (NaN where the
    Hessian is not positive definite; 0 for fixed entries). ``base``, ``held_geo`` (or None),
    ``motion``, ``n_eff`` (S,) stacked over subjects; ``priors`` shared."""
    return _identify(base, held_geo, motion, priors, n_eff, float(person.ceiling_weight),
                     int(person.steps), dt_s, tendon)


@functools.partial(jax.jit, static_argnames=("ceiling_weight", "steps", "dt_s", "tendon"))
def _identify(base, held_geo, motion, priors, n_eff, ceiling_weight, steps, dt_s, tendon):
    tx = optax.adam(optax.cosine_decay_schedule(0.1, steps, alpha=0.01))

    def one(base_s, geo_s, motion_s, n_s):
        f = lambda raw: loss(_values(raw, priors), base_s, geo_s, motion_s, priors, n_s,
                             ceiling_weight, dt_s, tendon)
        raw0 = _raw_at_centre(priors)

        def step(carry, _):
            raw, opt = carry
            g = jax.grad(f)(raw)
            upd, opt = tx.update(g, opt)
            return (optax.apply_updates(raw, upd), opt), None

        (raw, _), _ = jax.lax.scan(step, (raw0, tx.init(raw0)), None, length=steps)
        vals = _values(raw, priors)
        return vals, _laplace_sd(vals, base_s, geo_s, motion_s, priors, n_s, ceiling_weight,
                                 dt_s, tendon)

    return jax.vmap(one)(base, held_geo, motion, n_eff)


def _laplace_sd(vals, base_s, geo_s, motion_s, priors, n_s, ceiling_weight, dt_s, tendon
                ) -> dict:
    flat, unravel = jax.flatten_util.ravel_pytree(vals)
    free, _ = jax.flatten_util.ravel_pytree(priors.free)
    h = jax.hessian(lambda x: loss(unravel(x), base_s, geo_s, motion_s, priors, n_s,
                                   ceiling_weight, dt_s, tendon))(flat)
    h = jnp.where(free[:, None] * free[None, :] > 0, h, jnp.eye(len(flat)))
    cov = jnp.linalg.inv(h)
    d = jnp.diag(cov)
    ok = jnp.all(jnp.linalg.eigvalsh(h) > 0)
    return unravel(jnp.where(free > 0, jnp.where(ok & (d > 0), jnp.sqrt(jnp.abs(d)), jnp.nan),
                             0.0))


# every subject's torque balance in one program (the subjects' pytrees stacked)
terms_all = jax.jit(jax.vmap(terms, in_axes=(0, 0, 0, 0, None, None)),
                     static_argnames=("dt_s", "tendon"))
