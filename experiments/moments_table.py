"""Joint moments from EMG on real gait, method beside method, on one split.

  python -m experiments.moments_table --data_spec=data_specs/ceinms_gait.toml --workdir=runs/gait

A ``format = "ceinms"`` spec (CEINMS's layout, read as it is) gives trials with musculotendon
lengths and moment arms over time and inverse-dynamics moments. On its test trials (never used
for a choice) the table reports per degree of freedom the moment R² and RMSE [N m] of:
  (a) the EMG-driven Hill model with the uncalibrated subject (no training);
  (b) the same with CEINMS's calibrated subject (``calibrated_subject``), computed as CEINMS
      computes it (pinnmsk.emg_driven);
  (c) the same model with strength, activation (c1, c2, shape factor) per EMG group and tendon
      slack lengths identified by pinnmsk from the training trials' moments (no network),
      within CEINMS's bounds, with forces above strength x F_max penalised: the prior weight
      is chosen on the spec's validation trials (fit on the other training trials), then the
      model is refit on all training trials;
  (d') a linear decoder (ridge on lagged excitations; strength chosen on validation), the
      data-only reference a network has to beat;
  (d) a data-only network (an MLP on the same lagged excitations, trained on the moments);
  (e) the physics-informed network: the same MLP corrects row (c)'s EMG-driven Hill force of
      each unit (bounded by strength x F_max); the forces' moment through the measured
      geometry is fitted to the moments while a Hill weight holds the forces to the Hill
      model's (pinnmsk.gait_net).
      The Hill weight and both networks' step counts are chosen on validation (networks trained
      on the other training trials, with row (c) identified on those), then refit on all
      training trials; --seeds networks each, figures their mean (± sd of RMSE over seeds).
Samples whose measured moment exceeds what every crossing unit at F_max could make (inverse
dynamics artefacts at heel strike or toe off; gait.valid_samples) are left out of the figures
and of (c)'s loss; metrics.json also has every row on all samples, and (c) against (b) and
(d'), (e) against (b), (c), (d), (d') trial by trial (``paired_test_rmse``: mean per-trial RMSE
difference, its standard error over the test trials, t; the networks' per-trial RMSE is their
mean over seeds, whose spread is in ``test_sd``). Writes
``WORKDIR/metrics.json``, ``WORKDIR/table.md`` and a moment plot per test trial.
"""

from __future__ import annotations

import os
import time

import numpy as np
from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("data_spec", None, "A format = \"ceinms\" data spec, e.g. "
                    "data_specs/ceinms_gait.toml; see data_specs/README.md.")
flags.mark_flag_as_required("data_spec")
flags.DEFINE_string("workdir", None, "Where metrics.json, table.md and plots/ go.")
flags.mark_flag_as_required("workdir")
flags.DEFINE_string("prior_weights", "0,0.01,0.1",
                    "Row (c): prior weights tried on the validation trials (comma-separated).")
flags.DEFINE_integer("steps", 500, "Row (c): optimiser steps per fit.")
flags.DEFINE_string("ridge_alphas", "1,10,100,1000,10000,100000",
                    "Row (d'): ridge strengths tried on the validation trials.")
flags.DEFINE_string("lags_ms", "0,25,50,100",
                    "Rows (d'), (d), (e): the EMG features are each channel at these lags [ms] "
                    "(causal; every trial's EMG must start this long before its first sample).")
flags.DEFINE_string("hill_weights", "0.1,1,10,100",
                    "Row (e): Hill weights tried on the validation trials (comma-separated).")
flags.DEFINE_integer("seeds", 3, "Rows (d), (e): networks (seeds) per setting.")
flags.DEFINE_integer("net_steps", 2000, "Rows (d), (e): the most AdamW steps per network.")
flags.DEFINE_boolean("plots", True, "Write plots/<trial>_moments.png per test trial.")


def _rows_on(names, xs, fn):
    """Predicted and measured moments (concatenated over ``names``) and the valid mask."""
    pred, true, valid = [], [], []
    for n in names:
        pred.append(np.asarray(fn(n)))
        true.append(np.asarray(xs[n].moment))
        valid.append(np.asarray(xs[n].valid) > 0)
    return np.concatenate(pred), np.concatenate(true), np.concatenate(valid)


def _score(pred, true, valid, scale):
    """Mean over dofs of the normalised squared error on valid samples (validation score)."""
    return float(np.mean(((pred[valid] - true[valid]) / scale) ** 2))


def main(argv):
    del argv
    import jax

    from experiments import common
    from pinnmsk import evaluation, gait, plots, records
    from pinnmsk.data import ceinms, gait_trials

    weights = common.as_float_list(FLAGS.prior_weights, "prior_weights")
    alphas = common.as_float_list(FLAGS.ridge_alphas, "ridge_alphas")
    hill_weights = common.as_float_list(FLAGS.hill_weights, "hill_weights")
    lags_s = tuple(1e-3 * x for x in common.as_float_list(FLAGS.lags_ms, "lags_ms"))
    if min(lags_s) < 0:
        raise cli.UsageError("--lags_ms must be >= 0 (the features are causal)")
    for name in ("steps", "seeds", "net_steps"):
        if getattr(FLAGS, name) < 1:
            raise cli.UsageError(f"--{name} must be >= 1")
    spec = gait_trials.load_gait_spec(FLAGS.data_spec)
    if not spec.test or not spec.train:
        raise cli.UsageError(f"{spec.path}: the split needs training and test trials")
    with common.claimed_workdir(FLAGS.workdir):
        t_start = time.time()
        subject = ceinms.read_subject(spec.subject, spec.pennation_unit).select(spec.units)
        trials = {n: gait_trials.load_gait_trial(spec, n) for n in spec.train + spec.test}
        xs = {n: gait.to_arrays(t, subject.f_max_n) for n, t in trials.items()}
        feats = {n: gait.lagged_excitations(t, lags_s) for n, t in trials.items()}
        for n in spec.train + spec.test:
            bad = int(np.sum(np.asarray(xs[n].valid) == 0))
            if bad:
                print(f"note: trial '{n}': {bad} of {len(trials[n].time_s)} samples have a "
                      "measured moment beyond what its muscles could make at F_max (an "
                      "inverse-dynamics artefact); left out of the figures")
        base, curves = gait.params_of(subject)
        predict = jax.jit(lambda p, x: gait.predict(p, curves, x))
        rows = {"a": ("EMG-driven, uncalibrated subject", base)}
        if spec.calibrated_subject:
            cal = ceinms.read_subject(spec.calibrated_subject, spec.pennation_unit)
            rows["b"] = ("EMG-driven, CEINMS calibrated", gait.params_of(cal.select(spec.units))[0])

        # (c): the prior weight on validation, then refit on every training trial.
        _, group = gait.groups_of(spec)
        fit_on = [n for n in spec.train if n not in spec.validation] or list(spec.train)
        scale = None
        if spec.validation:
            val = [np.asarray(xs[n].moment)[np.asarray(xs[n].valid) > 0] for n in spec.validation]
            scale = np.maximum(np.concatenate(val).std(0), 1.0)
        choice, thetas = {}, {}

        def progress(i, n, loss):
            print(f"  step {i}/{n}: loss {loss:.4g} ({time.time() - t_start:.0f} s)", flush=True)

        if spec.validation and len(weights) > 1:
            for w in weights:
                print(f"(c) prior weight {w:g}: fit on {', '.join(fit_on)}", flush=True)
                theta, _ = gait.identify(base, curves, group, [xs[n] for n in fit_on], float(w),
                                         FLAGS.steps, progress=progress)
                thetas[float(w)] = theta
                p = gait.apply_theta(theta, base, group)
                pred, true, valid = _rows_on(spec.validation, xs,
                                             lambda n: predict(p, xs[n])[1])
                choice[float(w)] = _score(pred, true, valid, scale)
                print(f"  validation score {choice[float(w)]:.4g}")
            best_w = min(choice, key=choice.get)
        else:
            best_w = float(weights[0])
        print(f"(c) prior weight {best_w:g}: refit on all training trials", flush=True)
        theta, history = gait.identify(base, curves, group, [xs[n] for n in spec.train], best_w,
                                       FLAGS.steps, progress=progress)
        rows["c"] = ("EMG-driven, identified by pinnmsk", gait.apply_theta(theta, base, group))

        # (d'): ridge on lagged excitations, alpha on validation, refit on all training trials.
        target = {n: t.moment_nm for n, t in trials.items()}
        keep = {n: np.asarray(xs[n].valid) > 0 for n in trials}
        ridge_scores = {}
        if spec.validation and len(alphas) > 1:
            for alpha in alphas:
                w, norm = gait.fit_ridge([feats[n][keep[n]] for n in fit_on],
                                         [target[n][keep[n]] for n in fit_on], float(alpha))
                pred, true, valid = _rows_on(spec.validation, xs,
                                             lambda n: gait.ridge_predict(w, norm, feats[n]))
                ridge_scores[float(alpha)] = _score(pred, true, valid, scale)
            best_alpha = min(ridge_scores, key=ridge_scores.get)
        else:
            best_alpha = float(alphas[0])
        ridge = gait.fit_ridge([feats[n][keep[n]] for n in spec.train],
                               [target[n][keep[n]] for n in spec.train], best_alpha)

        results, per_trial, moments = {}, {n: {} for n in spec.test}, {}
        for key, (label, p) in rows.items():
            out = {n: predict(p, xs[n]) for n in spec.test}
            moments[key] = {n: np.asarray(out[n][1]) for n in spec.test}
            pred, true, valid = _rows_on(spec.test, xs, lambda n: out[n][1])
            force = np.concatenate([np.asarray(out[n][0])[np.asarray(xs[n].valid) > 0]
                                    for n in spec.test])
            arms = np.concatenate([np.asarray(xs[n].moment_arm)[np.asarray(xs[n].valid) > 0]
                                   for n in spec.test])
            plaus = gait.force_plausibility(force, arms, p, spec.dofs, spec.units)
            results[key] = {"label": label,
                            "test": gait.moment_metrics(pred[valid], true[valid], spec.dofs),
                            "test_all_samples": gait.moment_metrics(pred, true, spec.dofs),
                            "forces": plaus}
            for n in spec.test:
                per_trial[n][f"({key}) {label}"] = moments[key][n]
        pred, true, valid = _rows_on(spec.test, xs,
                                     lambda n: gait.ridge_predict(*ridge, feats[n]))
        results["d'"] = {"label": "linear decoder (ridge, lagged EMG; data only)",
                         "test": gait.moment_metrics(pred[valid], true[valid], spec.dofs),
                         "test_all_samples": gait.moment_metrics(pred, true, spec.dofs)}
        moments["d'"] = {n: gait.ridge_predict(*ridge, feats[n]) for n in spec.test}
        for n in spec.test:
            per_trial[n]["(d') ridge"] = moments["d'"][n]

        # (d), (e): networks; choices on validation with (c) identified without it.
        net_choice = {}
        if spec.validation and best_w in thetas:
            p_fit = gait.apply_theta(thetas[best_w], base, group)
            nets = _network_rows(spec, fit_on, trials, xs, feats, keep, p_fit, rows["c"][1],
                                 predict, hill_weights, t_start)
            for key, (label, sel, out) in nets.items():
                net_choice[key] = {"hill_weight": sel.weight, "steps": sel.steps,
                                   "validation_scores": sel.scores}
                results[key] = _seed_rows(label, out, xs, keep, target, spec, rows["c"][1])
                moments[key] = {n: np.mean([o[n][0] for o in out], 0) for n in spec.test}
                for n in spec.test:
                    per_trial[n][f"({key}) {label}"] = moments[key][n]
        else:
            print("note: rows (d) and (e) need validation trials and a prior weight chosen on "
                  "them; skipped")

        # Trial by trial: a difference within the spread over test trials is noise
        # (evaluation.paired_vs_baseline; (a)-(c) and (d') are deterministic, the networks'
        # per-trial RMSE is their mean over seeds).
        rmse = {k: np.array([np.sqrt(np.mean((m[n][keep[n]] - target[n][keep[n]]) ** 2, 0))
                             for n in spec.test]) for k, m in moments.items()}
        for key in ("d", "e"):
            if key in results:
                rmse[key] = np.mean([_trial_rmse(o, spec.test, keep, target)
                                     for o in nets[key][2]], 0)
        against = {"c": ("b", "d'"), "e": ("b", "c", "d", "d'")}
        paired = {f"{a}_vs_{k}": {d: evaluation.paired_vs_baseline(rmse[a][:, j], rmse[k][:, j])
                                  for j, d in enumerate(spec.dofs)}
                  for a, ks in against.items() if a in rmse for k in ks if k in rmse}
        identified = rows["c"][1]
        metrics = {
            "data_spec": os.path.abspath(spec.path),
            "split": {"train": spec.train, "validation": spec.validation, "test": spec.test},
            "rows": results,
            "paired_test_rmse": paired,
            "selection": {"c_prior_weight": best_w, "c_validation_scores": choice,
                          "c_steps": FLAGS.steps, "c_final_training_loss": history[-1],
                          "ridge_alpha": best_alpha, "ridge_validation_scores": ridge_scores,
                          "networks": net_choice, "seeds": FLAGS.seeds},
            "identified": {u: {"strength": float(identified.strength[i]),
                               "l_ts_m": float(identified.l_ts_m[i]),
                               "c1": float(identified.c1[i]), "c2": float(identified.c2[i]),
                               "shape_factor": float(identified.shape_factor[i])}
                           for i, u in enumerate(spec.units)},
            "excluded_test_samples": {n: int(np.sum(np.asarray(xs[n].valid) == 0))
                                      for n in spec.test},
            "wall_s": time.time() - t_start,
        }
        table = table_markdown(results, spec.dofs)
        if FLAGS.plots:
            plot_dir = os.path.join(FLAGS.workdir, "plots")
            os.makedirs(plot_dir, exist_ok=True)
            plt = plots._pyplot()
            for n in spec.test:
                fig = plots.moment_figure(trials[n].time_s, trials[n].moment_nm, per_trial[n],
                                          spec.dofs, np.asarray(xs[n].valid) > 0, title=n)
                fig.savefig(os.path.join(plot_dir, f"{n.strip('_')}_moments.png"), dpi=90)
                plt.close(fig)
        with open(os.path.join(FLAGS.workdir, "table.md"), "w") as f:
            f.write(table)
        records.write_json(os.path.join(FLAGS.workdir, "metrics.json"), metrics)
        print(table)
        print(f"wrote {os.path.join(FLAGS.workdir, 'metrics.json')} ({metrics['wall_s']:.0f} s)")


def _network_rows(spec, fit_on, trials, xs, feats, keep, p_fit, p_final, predict,
                  hill_weights, t_start) -> dict:
    """Rows (d) and (e): {key: (label, gait_net.Selection, per seed {trial: (moments, forces)})};
    ``fit_on``: the training trials outside validation (row (c)'s ``p_fit`` was fit on them)."""
    from pinnmsk import gait_net

    hill = {n: np.asarray(predict(p_fit, xs[n])[0]) for n in fit_on + list(spec.validation)}
    hill_final = {n: np.asarray(predict(p_final, xs[n])[0]) for n in spec.train + spec.test}

    def samples(names, norm, forces):
        return gait_net.samples([feats[n] for n in names], norm,
                                [trials[n].moment_nm for n in names],
                                [trials[n].moment_arm_m for n in names],
                                [forces[n] for n in names],
                                [keep[n].astype(np.float32) for n in names])

    norm_fit = gait_net.standardiser([feats[n] for n in fit_on])
    norm = gait_net.standardiser([feats[n] for n in spec.train])
    scale = np.maximum(np.concatenate([trials[n].moment_nm[keep[n]] for n in fit_on]).std(0),
                       1.0)
    cap = tuple(np.asarray(p.f_max_n * p.strength) for p in (p_fit, p_final))
    cfg = gait_net.NetConfig(steps=FLAGS.net_steps)

    def progress(kind, w, scores, steps):
        print(f"({'d' if kind == 'data' else 'e'}) {kind} network, Hill weight {w:g}: "
              f"validation {np.mean(scores):.4g} ± {np.std(scores):.2g} over {len(scores)} "
              f"seeds, best at step {steps} ({time.time() - t_start:.0f} s)", flush=True)

    out = {}
    for key, kind, label in (("d", "data", "data-only network (MLP, lagged EMG)"),
                             ("e", "physics", "physics-informed network (forces, Hill)")):
        sel = gait_net.choose_and_fit(
            kind, hill_weights, FLAGS.seeds, cfg, samples(fit_on, norm_fit, hill),
            samples(spec.validation, norm_fit, hill), samples(spec.train, norm, hill_final),
            cap, scale, progress)
        per_seed = [{n: gait_net.predict(kind, prm, samples([n], norm, hill_final), cap[1], cfg)
                     for n in spec.test} for prm in sel.params]
        out[key] = (label, sel, per_seed)
    return out


def _trial_rmse(out: dict, names, keep, target) -> np.ndarray:
    """(trials, D): RMSE per test trial of one network's moments on its valid samples."""
    return np.array([np.sqrt(np.mean((out[n][0][keep[n]] - target[n][keep[n]]) ** 2, 0))
                     for n in names])


def _seed_rows(label, per_seed, xs, keep, target, spec, p_final) -> dict:
    """A network row: test metrics per seed, their mean and sd; force plausibility of the
    forces of every seed together (physics networks)."""
    from pinnmsk import gait

    def cat(o, i, mask=True):
        return np.concatenate([o[n][i][keep[n]] if mask else o[n][i] for n in spec.test])

    true = np.concatenate([target[n][keep[n]] for n in spec.test])
    true_all = np.concatenate([target[n] for n in spec.test])
    seeds = [gait.moment_metrics(cat(o, 0), true, spec.dofs) for o in per_seed]
    seeds_all = [gait.moment_metrics(cat(o, 0, False), true_all, spec.dofs) for o in per_seed]
    mean = lambda ms: {d: {k: float(np.mean([m[d][k] for m in ms])) for k in ms[0][d]}
                       for d in spec.dofs}
    row = {"label": label, "test": mean(seeds), "test_all_samples": mean(seeds_all),
           "test_sd": {d: {k: float(np.std([m[d][k] for m in seeds], ddof=1))
                           if len(seeds) > 1 else 0.0 for k in ("r2", "rmse")}
                       for d in spec.dofs},
           "test_per_seed": seeds}
    if per_seed[0][spec.test[0]][1] is not None:
        force = np.concatenate([cat(o, 1) for o in per_seed])
        arms = np.concatenate([np.concatenate([np.asarray(xs[n].moment_arm)[keep[n]]
                                               for n in spec.test])] * len(per_seed))
        row["forces"] = gait.force_plausibility(force, arms, p_final, spec.dofs, spec.units)
    return row


def table_markdown(results: dict, dofs) -> str:
    """The rows as a markdown table: per dof test R² and RMSE [N m] (networks: mean over seeds
    ± sd of RMSE), peak force / (s F_max), co-contraction share (mean over dofs)."""
    head = "| row | " + " | ".join(f"{d} R² / RMSE" for d in dofs) + \
        " | peak F / (s F_max) | co-contraction |\n"
    head += "|---" * (len(dofs) + 3) + "|\n"
    lines = []
    for key, r in results.items():
        sd = r.get("test_sd")
        cells = [f"{r['test'][d]['r2']:.2f} / {r['test'][d]['rmse']:.0f}"
                 + (f" ± {sd[d]['rmse']:.0f}" if sd else "") for d in dofs]
        f = r.get("forces")
        peak = f"{f['peak_force_over_strength_fmax']:.2f} ({f['peak_unit']})" if f else "—"
        co = f"{np.mean(list(f['cocontraction_share'].values())):.2f}" if f else "—"
        lines.append(f"| ({key}) {r['label']} | " + " | ".join(cells) + f" | {peak} | {co} |")
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    cli.run(main)
