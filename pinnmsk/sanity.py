"""A model checked against the motion it will be trained on, before any training: slack or
overstretched fibres, implausible passive forces and torques the muscles cannot make
(:func:`model_sanity`), per subject of a loaded dataset (:func:`sanity_by_subject`) and as the
table the binaries print (:func:`sanity_table`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from pinnmsk import muscle
from pinnmsk.diagnostics import (arms_and_torque, compliant_hill_forces, derivatives,
                                 rigid_isometric)
from pinnmsk.msk import MskModel


class MuscleSanity(NamedTuple):
    """A model's muscles over a motion, before any training (per muscle, (M,) arrays).

    fibre_length_norm: (M, 2) min/max fibre length / l_opt (rigid tendon, or compliant at
      passive equilibrium);
    slack_fraction: share of samples where l_mt ≤ l_ts (the musculotendon unit cannot pull);
    passive_force_n: (M,) peak passive force [N] with the chosen tendon model;
    passive_torque_nm: (M, n) peak |r F_passive| per coordinate [N m];
    required_torque_nm: (n,) 95th percentile of |torque the motion needs| [N m];
    infeasible_fraction: (n,) share of samples where the torque the motion needs lies outside
      what the muscles can make (each between passive and full activation, the others free);
    shortfall_nm: (n,) the largest such gap [N m];
    warnings: one line per implausibility;
    unsolved_fraction: share of samples where a compliant muscle has no fibre-tendon
      equilibrium below :data:`UNSOLVED_LIMIT_FMAX` F_max (left out of the figures above).
    """

    fibre_length_norm: np.ndarray
    slack_fraction: np.ndarray
    passive_force_n: np.ndarray
    passive_torque_nm: np.ndarray
    required_torque_nm: np.ndarray
    infeasible_fraction: np.ndarray
    shortfall_nm: np.ndarray
    warnings: tuple
    unsolved_fraction: float = 0.0


UNSOLVED_LIMIT_FMAX = 2.0 ** 13  # compliant_hill_forces' bracket: 2 F_max doubled 12 times


def model_sanity(model: MskModel, names, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray,
                 tendon: str = "rigid", torque_ratio: float = 10.0,
                 max_activation: np.ndarray | None = None) -> MuscleSanity:
    """Check a model against the motion it will be trained on (q, q̇, q̈: (T, n) SI).

    Warns when a muscle is slack over the whole motion (it can make no force at all), when its
    passive force exceeds F_max, when its passive torque exceeds ``torque_ratio`` × the peak
    torque the motion needs (gravity + inertia), or when over more than 10 % of the motion no
    activation of the modelled muscles can make the torque the motion needs (the model lacks
    muscles or its passive forces are too high): the physics term would then fight the data.
    ``tendon``: "rigid" or "compliant" (passive force in fibre-tendon equilibrium).
    ``max_activation`` (M,): the most activation each muscle can have (default 1; a muscle
    without an EMG channel: the upper bound of its identified constant activation).
    """
    p = model.muscles
    a_max = np.ones(model.n_muscles) if max_activation is None else np.asarray(max_activation)
    qj = jnp.asarray(q, jnp.float32)
    l_mt, passive, full = (np.asarray(x, float) for x in rigid_isometric(model, qj))
    l_norm, _, _ = muscle.fibre_kinematics(jnp.asarray(l_mt), jnp.zeros_like(l_mt), p)
    l_norm = np.asarray(l_norm, float)
    slack = (l_mt <= np.asarray(p.l_ts_m)[None]).mean(0)
    zeros = np.zeros((len(q), model.n_muscles))
    if tendon == "compliant":
        passive = compliant_hill_forces(model, zeros, q, np.zeros_like(q))
        full = compliant_hill_forces(model, zeros + a_max[None], q, np.zeros_like(q))
        # the fibre at passive equilibrium, not the rigid-tendon estimate
        l_norm = np.asarray(muscle.compliant_fibre_kinematics(
            jnp.asarray(l_mt), jnp.zeros_like(l_mt), jnp.asarray(np.nan_to_num(passive)),
            jnp.zeros_like(l_mt), p)[0], float)
    else:  # isometric rigid-tendon force is linear in activation
        full = passive + a_max[None] * (full - passive)
    arms, tau = (np.asarray(x, float) for x in arms_and_torque(
        model, qj, jnp.asarray(qd, jnp.float32), jnp.asarray(qdd, jnp.float32)))
    solved = np.isfinite(passive).all(1) & np.isfinite(full).all(1)  # (T,)
    passive, full = np.where(solved[:, None], passive, np.nan), np.where(solved[:, None], full,
                                                                         np.nan)
    p_torque = np.nan_to_num(np.nanmax(np.abs(arms * passive[:, :, None]), 0))  # (M, n)
    need = np.percentile(np.abs(tau), 95, axis=0)  # robust to spikes of differentiated angles
    # Torque range the muscles can make at each sample (isometric: each muscle between passive
    # and full activation), per coordinate.
    lo_hi = np.stack([arms * passive[:, :, None], arms * full[:, :, None]])  # (2, T, M, n)
    tau_min, tau_max = lo_hi.min(0).sum(1), lo_hi.max(0).sum(1)  # (T, n)
    gap = np.maximum(tau_min - tau, 0) + np.maximum(tau - tau_max, 0)
    tol = 0.05 * need[None] + 1e-9
    infeasible = (gap[solved] > tol).mean(0) if solved.any() else np.zeros(gap.shape[1])
    shortfall = gap[solved].max(0) if solved.any() else np.zeros(gap.shape[1])
    f_max = np.asarray(p.f_max_n, float)
    warn = []
    for i, name in enumerate(names):
        if slack[i] >= 1.0:
            warn.append(f"muscle '{name}' is slack over the whole motion (musculotendon length "
                        f"below its tendon slack length {float(p.l_ts_m[i]):.3f} m): it cannot "
                        "pull; check l_ts, the length table and the held coordinates")
        if np.nanmax(passive[:, i], initial=0.0) > f_max[i]:
            warn.append(f"muscle '{name}' peaks at {np.nanmax(passive[:, i]):.0f} N of passive "
                        f"force ({tendon} tendon), above its F_max {f_max[i]:.0f} N (fibre up to "
                        f"{np.nanmax(l_norm[:, i]):.2f} l_opt); check l_opt, l_ts and the "
                        "length table")
        for j in range(arms.shape[2]):
            if p_torque[i, j] > torque_ratio * max(need[j], 1e-9):
                warn.append(f"muscle '{name}' makes up to {p_torque[i, j]:.1f} N m of passive "
                            f"torque at coordinate {j}, over {torque_ratio:g}x the "
                            f"{need[j]:.1f} N m the motion needs")
    for j in range(arms.shape[2]):
        if infeasible[j] > 0.1:
            warn.append(f"over {100 * infeasible[j]:.0f} % of the motion no activation of the "
                        f"modelled muscles makes the torque coordinate {j} needs (short by up to "
                        f"{shortfall[j]:.1f} N m): the model lacks muscles or its passive forces "
                        "are too high; consider --residual_weight, other muscles or the "
                        "model's tendon slack lengths")
    l_norm = l_norm[solved] if solved.any() else l_norm
    return MuscleSanity(np.stack([l_norm.min(0), l_norm.max(0)], 1), slack,
                        np.nan_to_num(np.nanmax(passive, 0, initial=0.0)), p_torque, need,
                        infeasible, shortfall, tuple(warn), float(1.0 - solved.mean()))


def sanity_by_subject(data, trials, tendon: str) -> dict:
    """{subject: :class:`MuscleSanity` as a JSON-able dict} over each subject's ``trials``
    (a loaded :class:`pinnmsk.data.dataset.Dataset` and its trials; rates by quintic spline)."""
    out = {}
    for s, subject in enumerate(data.subjects):
        mine = [t for t in trials if t.subject == s]
        if not mine:
            continue
        q = np.concatenate([t.q_rad for t in mine]).astype(np.float64)
        rates = [derivatives(t.time_s, t.q_rad.astype(np.float64)) for t in mine]
        qd = np.concatenate([r[0] for r in rates])
        qdd = np.concatenate([r[1] for r in rates])
        step = max(1, len(q) // 2000)  # the report needs the motion's range, not every sample
        a_max = np.where(data.spec.measured, 1.0,
                         data.spec.identification["unmeasured_activation"][1])
        r = model_sanity(data.model_of(s), data.spec.muscle_names, q[::step], qd[::step],
                         qdd[::step], tendon, max_activation=a_max)
        names = data.spec.muscle_names
        out[subject] = {
            "tendon": tendon,
            "fibre_length_norm": {m: r.fibre_length_norm[i].tolist() for i, m in enumerate(names)},
            "slack_fraction": dict(zip(names, r.slack_fraction.tolist())),
            "peak_passive_force_n": dict(zip(names, r.passive_force_n.tolist())),
            "peak_passive_torque_nm": {m: r.passive_torque_nm[i].tolist()
                                       for i, m in enumerate(names)},
            "required_torque_p95_nm": r.required_torque_nm.tolist(),
            "infeasible_fraction": r.infeasible_fraction.tolist(),
            "shortfall_nm": r.shortfall_nm.tolist(),
            "unsolved_fraction": r.unsolved_fraction,
            "unsolved_limit_fmax": UNSOLVED_LIMIT_FMAX,
            "warnings": list(r.warnings)}
    return out


def sanity_table(report: dict) -> str:
    """The per-subject sanity report as text: one line per muscle (range over subjects)."""
    if not report:
        return ""
    subjects = list(report)
    first = report[subjects[0]]
    fibre = "rigid tendon" if first["tendon"] == "rigid" else "compliant, at passive equilibrium"
    lines = [f"model sanity over the training motion ({first['tendon']} tendon; range over "
             f"{len(subjects)} subject(s)); torque the motion needs (95th pct): "
             + ", ".join(f"{min(report[s]['required_torque_p95_nm'][j] for s in subjects):.1f}-"
                         f"{max(report[s]['required_torque_p95_nm'][j] for s in subjects):.1f} N m"
                         for j in range(len(first["required_torque_p95_nm"])))]
    for m in first["fibre_length_norm"]:
        lo = min(report[s]["fibre_length_norm"][m][0] for s in subjects)
        hi = max(report[s]["fibre_length_norm"][m][1] for s in subjects)
        pf = max(report[s]["peak_passive_force_n"][m] for s in subjects)
        pt = max(max(report[s]["peak_passive_torque_nm"][m]) for s in subjects)
        sl = max(report[s]["slack_fraction"][m] for s in subjects)
        lines.append(f"  {m:10s} fibre {lo:.2f}-{hi:.2f} l_opt ({fibre})  slack {100 * sl:5.1f} % "
                     f"of samples  peak passive {pf:8.0f} N, {pt:7.1f} N m")
    # per coordinate, the worst subject's share and that same subject's shortfall
    parts = []
    for j in range(len(first["infeasible_fraction"])):
        worst = max(subjects, key=lambda s: (report[s]["infeasible_fraction"][j],
                                             report[s]["shortfall_nm"][j]))
        parts.append(f"{100 * report[worst]['infeasible_fraction'][j]:.0f} % of samples in "
                     f"{worst} (up to {report[worst]['shortfall_nm'][j]:.1f} N m short there)")
    lines.append("  torque the muscles cannot make, worst subject: " + ", ".join(parts))
    unsolved = [s for s in subjects if report[s].get("unsolved_fraction", 0) > 0]
    for s in unsolved:
        lines.append(f"warning ({s}): no fibre-tendon equilibrium below "
                     f"{report[s]['unsolved_limit_fmax']:g} F_max in "
                     f"{100 * report[s]['unsolved_fraction']:.1f} % of samples (left out of the "
                     "passive peaks and infeasible share): the fibres are stretched beyond any "
                     "physiological length; check l_opt, l_ts and the held coordinates")
    seen = []
    for s in subjects:
        for w in report[s]["warnings"]:
            if w not in seen:
                seen.append(w)
                lines.append(f"warning ({s}): {w}")
    return "\n".join(lines)
