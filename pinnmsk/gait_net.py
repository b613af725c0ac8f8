"""Networks for joint moments on gait trials: a data-only moment network and the physics-informed
one, whose outputs are muscle forces held to the EMG-driven Hill model.

Both map the same causal EMG features at each sample time (:func:`pinnmsk.gait.lagged_excitations`,
standardised on the training samples) through the same MLP:
- ``"data"``: the network's outputs are the joint moments (D,); loss: the normalised squared
  moment error.
- ``"physics"``: the outputs correct the EMG-driven Hill force F_Hill of each musculotendon
  unit (the identified model's, :func:`pinnmsk.gait.predict`) in logit space,
  F = s F_max sigmoid(logit(F_Hill / (s F_max)) + out): zero outputs give the Hill model
  (clipped to what the unit can make), and no output gives a force above strength x F_max.
  The moment is the geometry's sum_m r_dm F_m at that sample (moment arms given over time).
  Loss: the same moment error plus ``hill_weight`` x the mean squared gap between F and
  F_Hill in units of s F_max. A large weight keeps the Hill model; a small one lets the network
  correct it where the moments say so.

Training is full-batch Adam; the step count is chosen on validation samples when they are given
(the score every ``eval_every`` steps), otherwise the configured number is run.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

KINDS = ("data", "physics")


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """hidden: widths of the MLP's hidden layers; steps: Adam steps (the most when validation
    chooses); learning_rate; weight_decay (AdamW, decoupled); eval_every: steps between
    validation scores."""

    hidden: Sequence[int] = (32, 32)
    steps: int = 2000
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    eval_every: int = 50


class Samples(NamedTuple):
    """Training or evaluation samples (N leading): features (N, F) standardised; moment (N, D)
    [N m]; moment_arm (N, D, M) [m]; hill_force (N, M) [N] (the EMG-driven model's);
    valid (N,) 1.0 where the measured moment counts."""

    features: jax.Array
    moment: jax.Array
    moment_arm: jax.Array
    hill_force: jax.Array
    valid: jax.Array


class MLP(nn.Module):
    hidden: Sequence[int]
    n_out: int

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.gelu(nn.Dense(h)(x))
        return nn.Dense(self.n_out)(x)


def outputs(kind: str, net: MLP, params, x: Samples, capacity_n: jax.Array
            ) -> tuple[jax.Array, jax.Array | None]:
    """(moments (N, D) [N m], forces (N, M) [N] or None for ``"data"``)."""
    out = net.apply(params, x.features)
    if kind == "data":
        return out, None
    prior = jnp.clip(x.hill_force / capacity_n, 1e-3, 1.0 - 1e-3)
    force = capacity_n * jax.nn.sigmoid(jnp.log(prior / (1.0 - prior)) + out)
    return jnp.einsum("ndm,nm->nd", x.moment_arm, force), force


def loss(kind: str, net: MLP, params, x: Samples, capacity_n, scale_nm, hill_weight
         ) -> jax.Array:
    """Mean over valid samples of the mean over dofs of ((moment - measured) / scale)²; for
    ``"physics"`` plus ``hill_weight`` x mean over samples and units of
    ((F - F_Hill) / (s F_max))²."""
    moment, force = outputs(kind, net, params, x, capacity_n)
    err = jnp.mean(((moment - x.moment) / scale_nm) ** 2, 1)
    total = jnp.sum(err * x.valid) / jnp.maximum(jnp.sum(x.valid), 1.0)
    if force is not None:
        total = total + hill_weight * jnp.mean(((force - x.hill_force) / capacity_n) ** 2)
    return total


def _net(kind: str, x: Samples, cfg: NetConfig) -> MLP:
    """The MLP for ``kind``: one output per dof (``"data"``) or per unit (``"physics"``)."""
    return MLP(tuple(cfg.hidden), x.moment.shape[1] if kind == "data" else x.hill_force.shape[1])


@functools.partial(jax.jit, static_argnames=("kind", "net", "learning_rate", "weight_decay"))
def _steps(params, opt_state, x, capacity_n, scale_nm, hill_weight, n, *, kind, net,
           learning_rate, weight_decay):
    """``n`` AdamW steps of :func:`loss` on ``x`` (one compiled loop for any ``n``)."""
    tx = optax.adamw(learning_rate, weight_decay=weight_decay)

    def body(_, carry):
        p, s = carry
        g = jax.grad(lambda q: loss(kind, net, q, x, capacity_n, scale_nm, hill_weight))(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    return jax.lax.fori_loop(0, n, body, (params, opt_state))


def fit(kind: str, train: Samples, capacity_n, scale_nm, hill_weight: float, seed: int,
        cfg: NetConfig, val: Samples | None = None) -> tuple[dict, int, list]:
    """Train one network. Returns (parameters, steps, validation scores every ``eval_every``
    steps). With ``val``: the parameters at the step with the lowest validation moment score
    (mean normalised squared error), which is returned as the step count; without: ``cfg.steps``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: one of {KINDS}")
    net = _net(kind, train, cfg)
    params = net.init(jax.random.PRNGKey(seed), train.features[:1])
    static = dict(kind=kind, net=net, learning_rate=cfg.learning_rate,
                  weight_decay=cfg.weight_decay)
    state = optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay).init(params)
    args = (jnp.asarray(capacity_n, jnp.float32), jnp.asarray(scale_nm, jnp.float32),
            jnp.float32(hill_weight))
    if val is None:
        params, _ = _steps(params, state, train, *args, cfg.steps, **static)
        return params, cfg.steps, []
    best, best_step, scores = params, 0, []
    for step in range(cfg.eval_every, cfg.steps + 1, cfg.eval_every):
        params, state = _steps(params, state, train, *args, cfg.eval_every, **static)
        s = float(loss(kind, net, params, val, args[0], args[1], 0.0))
        scores.append(s)
        if s <= min(scores):
            best, best_step = params, step
    return best, best_step, scores


def predict(kind: str, params, x: Samples, capacity_n, cfg: NetConfig
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """(moments (N, D), forces (N, M) or None) of a trained network on ``x``."""
    m, f = outputs(kind, _net(kind, x, cfg), params, x, jnp.asarray(capacity_n, jnp.float32))
    return np.asarray(m), None if f is None else np.asarray(f)


def standardiser(features: list) -> np.ndarray:
    """(2, F): the mean and standard deviation of the training features."""
    x = np.concatenate(features)
    return np.stack([x.mean(0), x.std(0) + 1e-8])


def samples(features: list, norm: np.ndarray, moment: list, moment_arm: list, hill_force: list,
            valid: list) -> Samples:
    """Trials' arrays concatenated into :class:`Samples` (float32)."""
    f32 = lambda parts: jnp.asarray(np.concatenate(parts), jnp.float32)
    return Samples(f32([(f - norm[0]) / norm[1] for f in features]), f32(moment),
                   f32(moment_arm), f32(hill_force), f32(valid))


class Selection(NamedTuple):
    """What validation chose for one kind of network, and the networks refit with it.
    weight: the Hill weight (0 for ``"data"``); steps: the median over seeds of the best step;
    scores: {weight: [best validation score per seed]}; params: one per seed (refit)."""

    weight: float
    steps: int
    scores: dict
    params: list


def choose_and_fit(kind: str, weights, seeds: int, cfg: NetConfig, fit_on: Samples,
                   val: Samples, final: Samples, capacity: tuple, scale_nm, progress=None
                   ) -> Selection:
    """Choose the Hill weight (from ``weights``; ``"data"``: none) and the step count on
    ``val`` with networks trained on ``fit_on`` (``seeds`` seeds each; the weight with the
    lowest mean validation score), then train ``seeds`` networks on ``final`` with them.
    ``capacity``: s F_max (M,) [N] of the models behind ``fit_on`` and ``final`` (each its own
    identified strengths); ``scale_nm`` (D,): the moment normaliser."""
    scores, steps = {}, {}
    for w in (weights if kind == "physics" else [0.0]):
        runs = [fit(kind, fit_on, capacity[0], scale_nm, float(w), s, cfg, val)
                for s in range(seeds)]
        scores[float(w)] = [min(r[2]) for r in runs]
        steps[float(w)] = int(np.median([r[1] for r in runs]))
        if progress is not None:
            progress(kind, float(w), scores[float(w)], steps[float(w)])
    best = min(scores, key=lambda w: np.mean(scores[w]))
    final_cfg = dataclasses.replace(cfg, steps=max(steps[best], 1))
    params = [fit(kind, final, capacity[1], scale_nm, best, s, final_cfg)[0]
              for s in range(seeds)]
    return Selection(best, final_cfg.steps, scores, params)
