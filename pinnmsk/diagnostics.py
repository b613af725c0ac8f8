"""What a dataset can tell before any network is trained: model-free ceilings and physics-only fits.

Two questions decide whether the physics-informed CNN can reach good accuracy on a dataset:

- *Does the EMG carry the joint angle?* :func:`ridge_r2` on lagged envelopes (:func:`lagged`)
  gives a linear ceiling from the recent EMG history; the same decoder on recorded forces shows
  how much of the angle the forces carry (through force-length and passive force).
- *Do the kinematics fix the forces?* The joint torque that the kinematics require is
  Σ_i r_i(q) F_i, and with F_i = F_passive,i(q) + g_i e_i F_active,i(q, q̇) (Hill, activation
  g_i e_i) it is linear in the per-muscle EMG gains g (:func:`gain_problem`). Solving it
  (:func:`calibrate_gains`, as EMG-driven models are calibrated) or sharing the torque by
  least activation (:func:`static_optimisation`) are the two classical label-free routes; how
  far their forces fall from recorded ones bounds what the physics terms alone can identify.
  In one degree of freedom, co-contraction makes no net torque, so its level is invisible to
  both.

Everything here takes and returns arrays (SI units); the ``experiments.diagnose`` binary does
the reading and printing.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pinnmsk import dynamics, geometry, msk, muscle
from pinnmsk.msk import MskModel


def lagged(x: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Rows [x(t), x(t − l₁), …] for t ≥ max lag: (T − L, C · len(lags)) from x (T, C)."""
    top = int(np.max(lags))
    return np.concatenate([x[top - l:len(x) - l] for l in lags], axis=1)


def ridge_r2(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
             alphas=(1e-2, 1.0, 1e2, 1e4)) -> dict:
    """Test R² (mean over the columns of y) of ridge regression, {alpha: R²}.

    Features are standardised on the training rows; ``alpha`` is the ridge penalty on the
    standardised weights. x: (N, D); y: (N, k) or (N,).
    """
    y_train = np.asarray(y_train, float).reshape(len(y_train), -1)
    y_test = np.asarray(y_test, float).reshape(len(y_test), -1)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-12
    xs, xt = (x_train - mu) / sd, (x_test - mu) / sd
    y_mu = y_train.mean(0)
    gram, rhs = xs.T @ xs, xs.T @ (y_train - y_mu)
    ss = ((y_test - y_test.mean(0)) ** 2).sum(0)
    out = {}
    for a in alphas:
        w = np.linalg.solve(gram + a * np.eye(len(gram)), rhs)
        pred = xt @ w + y_mu
        out[float(a)] = float(np.mean(1.0 - ((pred - y_test) ** 2).sum(0) / ss))
    return out


def lags(history_samples: float, n: int = 10) -> np.ndarray:
    """``n`` lags [samples] spread evenly over ``history_samples`` (0 included, duplicates
    dropped): the lagged copies of the envelope the ridge decoders read."""
    return np.unique(np.round(np.linspace(0, history_samples, n)).astype(int))


def ridge_decoder(train_trials, val_trials, test_trials, lags, signal, goal) -> dict | None:
    """{"alpha", "validation_r2", "test_r2", "chosen_on"}: ridge from ``signal(trial)`` (T, C)
    at ``lags`` samples back to ``goal(trial)`` (T, k), fitted on ``train_trials``, its strength
    chosen on ``val_trials`` (on the training trials when there are none), test R² at that
    strength; None where a trial lacks the signal or the goal."""
    if any(signal(t) is None or goal(t) is None for t in train_trials + val_trials + test_trials):
        return None

    def stack(trials):
        xs = [lagged(signal(t), lags) for t in trials]
        return np.concatenate(xs), np.concatenate([goal(t)[int(np.max(lags)):] for t in trials])

    train_xy = stack(train_trials)
    val = ridge_r2(*train_xy, *stack(val_trials or train_trials))
    alpha = max(val, key=val.get)
    test = ridge_r2(*train_xy, *stack(test_trials), alphas=(alpha,))[alpha]
    return {"alpha": alpha, "validation_r2": val[alpha], "test_r2": test,
            "chosen_on": "validation" if val_trials else "training data (no validation data)"}


def derivatives(time_s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q̇, q̈ (T, n) of a sampled trajectory q (T, n) by a quintic interpolating spline."""
    from scipy.interpolate import make_interp_spline  # here: 0.3 s to import

    s = make_interp_spline(time_s, q, k=5, axis=0)
    return s.derivative(1)(time_s), s.derivative(2)(time_s)


class TorqueTerms(NamedTuple):
    """The drive-independent pieces of the torque balance along a trajectory of T samples.

    arms: (T, M, n) moment arms [m]; tau: (T, n) torque the kinematics require [N m];
    passive: (T, M) passive forces P [N]; active: (T, M) full-activation active forces U [N].
    """

    arms: np.ndarray
    tau: np.ndarray
    passive: np.ndarray
    active: np.ndarray


def torque_terms(model: MskModel, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray
                 ) -> TorqueTerms:
    """:class:`TorqueTerms` of rigid-tendon Hill muscles at q, q̇, q̈ (T, n) [rad, rad/s, rad/s²]."""
    arms, tau, passive, full = _torque_terms(model, *(jnp.asarray(x, jnp.float32)
                                                      for x in (q, qd, qdd)))
    passive = np.asarray(passive, float)
    return TorqueTerms(np.asarray(arms, float), np.asarray(tau, float), passive,
                       np.asarray(full, float) - passive)


@jax.jit
def _torque_terms(model: MskModel, q, qd, qdd):
    """(moment arms, inverse-dynamics torque, passive forces, full-activation forces) along a
    motion, one program."""
    f = jax.vmap(lambda a, q_, qd_: msk.muscle_forces(model, a, q_, qd_), in_axes=(None, 0, 0))
    arms, tau = _arms_and_torque(model, q, qd, qdd)
    return arms, tau, f(jnp.zeros(model.n_muscles), q, qd), f(jnp.ones(model.n_muscles), q, qd)


def compliant_hill_forces(model: MskModel, a: np.ndarray, q: np.ndarray, qd: np.ndarray,
                          iterations: int = 60, doublings: int = 12) -> np.ndarray:
    """Compliant-tendon Hill forces (T, M) [N] at activations ``a`` (T, M) along q, q̇ (T, n):
    the tendon force in fibre-tendon equilibrium with Ḟ = 0
    (:func:`pinnmsk.muscle.equilibrium_tendon_force`). NaN where no root lies below
    2^(doublings + 1) F_max: no force is reported that is not an equilibrium."""
    def one(a_t, q_t, qd_t):
        l_mt, ldot = model.geometry.length_and_velocity(q_t, qd_t)
        f, found = muscle.equilibrium_tendon_force(a_t, l_mt, ldot, model.muscles, iterations,
                                                   doublings)
        return jnp.where(found, f, jnp.nan)

    return np.asarray(jax.jit(jax.vmap(one))(*(jnp.asarray(x, jnp.float32) for x in (a, q, qd))),
                      float)


def gain_problem(terms: TorqueTerms, excitation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The joint torque balance as a linear problem ``A g = b`` in per-muscle EMG gains.

    With activation a_i = g_i e_i, F_i = P_i + g_i e_i U_i, and the required torque
    τ = Σ_i r_i F_i reads A g = b. ``excitation``: (T, M) normalised EMG e (ones for
    :func:`static_optimisation`). Returns A (T·n, M) [N m per unit gain] and b (T·n,) [N m].
    """
    m = excitation.shape[1]
    a_mat = np.einsum("tmn,tm->tnm", terms.arms, excitation * terms.active)
    b_vec = terms.tau - np.einsum("tmn,tm->tn", terms.arms, terms.passive)
    return a_mat.reshape(-1, m), b_vec.reshape(-1)


def f_max_scale_from_torque(terms: list[TorqueTerms], forces_n: list[np.ndarray],
                            qs: list[np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """The one F_max scale s for all muscles that best closes the torque balance over trials,
    τ = s Σ_i r_i F_i (least squares over samples and coordinates), from each trial's
    :class:`TorqueTerms` (moment arms, required torque) and the muscle forces F (T, M) [N] that
    the lab's model makes there at the recorded drive. Hill forces scale with F_max exactly, for
    rigid and for compliant tendons (the tendon's state depends on F / F_max only).

    With the trials' angles ``qs`` (T, n) [rad] a joint spring and offset per coordinate are
    fitted beside it (τ = s Σ r F + k q + c), as an identified residual torque would be: if s
    then moves far, the torque cannot tell the muscles' strength from the joint's passive
    torque, and label-free identification of F_max rests on its prior. Returns (s, the other
    coefficients (2n,): k [N m/rad] then c [N m] per coordinate; empty without ``qs``).
    """
    rows, goal = [], []
    for k, (x, f) in enumerate(zip(terms, forces_n)):
        cols = [net_and_gross_torque(x.arms, f)[0].reshape(-1, 1)]
        if qs is not None:
            q = np.asarray(qs[k], float)
            n = q.shape[1]
            eye = np.eye(n)[None]  # one spring and one offset per coordinate
            cols += [(q[:, :, None] * eye).reshape(-1, n), np.broadcast_to(
                eye, (len(q), n, n)).reshape(-1, n)]
        rows.append(np.concatenate(cols, axis=1))
        goal.append(x.tau.reshape(-1))
    coef = np.linalg.lstsq(np.concatenate(rows), np.concatenate(goal), rcond=None)[0]
    return float(coef[0]), coef[1:]


def net_and_gross_torque(arms: np.ndarray, forces_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Net muscle torque Σ_i r_i F_i and gross torque Σ_i |r_i F_i|, each (T, n) [N m], from
    moment arms (T, M, n) [m] and forces (T, M) [N].

    Their ratio measures co-contraction: where the net torque is a small fraction of the gross,
    a relative error ε in every force is an error of about ε · gross/net in the net torque, so
    the torque (hence the kinematics) pins the forces only to within ε ≈ net/gross.
    """
    per = arms * np.asarray(forces_n, float)[:, :, None]  # (T, M, n)
    return per.sum(1), np.abs(per).sum(1)


def calibrate_gains(a_mat: np.ndarray, b_vec: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative least-squares gains g (M,) for ``A g = b`` and the RMS torque residual [N m]."""
    from scipy.optimize import nnls

    g, _ = nnls(a_mat, b_vec)
    return g, float(np.sqrt(np.mean((a_mat @ g - b_vec) ** 2)))


def static_optimisation(a_mat: np.ndarray, b_vec: np.ndarray, n_coords: int = 1,
                        torque_weight: float = 1e3) -> np.ndarray:
    """Unit-gain activations (T, M) ≥ 0 minimising Σ a² with the torque met, one NNLS per sample.

    ``a_mat``, ``b_vec``: :func:`gain_problem` with ``excitation = 1`` (so ``a_mat`` rows are
    r U); the torque equality is a heavily weighted least-squares row per coordinate.
    """
    from scipy.optimize import nnls

    a3 = a_mat.reshape(-1, n_coords, a_mat.shape[1])
    b2 = b_vec.reshape(-1, n_coords)
    m = a3.shape[2]
    out = np.empty((len(a3), m))
    for k in range(len(a3)):
        lhs = np.vstack([torque_weight * a3[k], np.eye(m)])
        out[k], _ = nnls(lhs, np.concatenate([torque_weight * b2[k], np.zeros(m)]))
    return out


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
    l_mt, passive, full = (np.asarray(x, float) for x in _rigid_isometric(model, qj))
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
    arms, tau = (np.asarray(x, float) for x in _arms_and_torque(
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


@jax.jit
def _arms_and_torque(model: MskModel, q, qd, qdd):
    """(moment arms (T, M, n), inverse-dynamics torque (T, n)) along a motion, one program."""
    return (geometry.moment_arms_along(model.geometry, q),
            dynamics.inverse_dynamics_along(model.body, q, qd, qdd))


@jax.jit
def _rigid_isometric(model: MskModel, q):
    """(l_mt (T, M), passive (T, M), full-activation (T, M)) rigid-tendon isometric forces."""
    zeros = jnp.zeros(model.n_muscles)
    f = lambda a: jax.vmap(lambda q_: msk.muscle_forces(model, a, q_, jnp.zeros_like(q_)))(q)
    return jax.vmap(model.geometry.length)(q), f(zeros), f(zeros + 1.0)


def torque_budget(model: MskModel, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray,
                  forces_n: np.ndarray, tau_residual: np.ndarray | None = None) -> dict:
    """How predicted forces (T, M) [N] account for the torque a motion q, q̇, q̈ (T, n) needs:
    RMS [N m] per coordinate of the required torque (inverse dynamics incl. passive joint
    terms), the muscle torque Rᵀ F, the residual torque (if given) and what is left unexplained,
    plus the peak force of each muscle as a fraction of its F_max."""
    arms, need = (np.asarray(x, float) for x in _arms_and_torque(
        model, *(jnp.asarray(x, jnp.float32) for x in (q, qd, qdd))))
    muscle_tau = np.einsum("tmn,tm->tn", arms, forces_n)
    res = np.zeros_like(need) if tau_residual is None else np.asarray(tau_residual, float)
    rms = lambda x: np.sqrt(np.mean(x**2, axis=0)).tolist()
    return {"required_rms_nm": rms(need), "muscle_rms_nm": rms(muscle_tau),
            "residual_torque_rms_nm": rms(res),
            "unexplained_rms_nm": rms(need - muscle_tau - res),
            "peak_force_over_f_max": (forces_n.max(0) / np.asarray(model.muscles.f_max_n)).tolist(),
            "min_force_n": forces_n.min(0).tolist()}
