"""The sweep's work, shared by ``experiments.sweep`` and ``experiments.train --seeds``: train
every (λ, seed) model in one program, evaluate each, write sweep.json; with several seeds, the
figures over seeds, the choice per seed and the chosen λ's seeds as an ensemble with calibrated
bands. Defines no flags (the binaries do); reads --workdir, --data_spec and --plots.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from pinnmsk import ode  # imported by the binaries' main, after the flags

FLAGS = flags.FLAGS


def run(config, n_seeds: int) -> None:
    """Train every λ of ``config.physics_weights`` with ``n_seeds`` seeds (``config.seed``
    onwards) in one program into --workdir and write sweep.json (see ``experiments/sweep.py``)."""
    import numpy as np

    from experiments import common
    from pinnmsk import prepare, records, run_report, terms

    records.check_resumable(FLAGS.workdir, FLAGS.data_spec)
    data = common.load_data(FLAGS.data_spec)
    prep = prepare.prepare(data, config)
    sanity = common.report_sanity(prep)
    lams = config.physics_weights
    seeds = [config.seed + j for j in range(n_seeds)]
    models = [(float(lam), seed) for lam in lams for seed in seeds]
    weights = terms.weights_for(config, [lam for lam, _ in models])
    print(f"sweep of {len(models)} models (lambda = {', '.join(map(str, lams))}"
          f"{f' x {len(seeds)} seeds' if len(seeds) > 1 else ''}) on {len(prep.train)} windows, "
          f"{config.epochs} epochs", file=sys.stderr, flush=True)
    _, history, diverged, best = common.fit_or_exit(
        prep, config, weights, [lam for lam, _ in models],
        [s for _, s in models] if len(seeds) > 1 else None)
    results, tests, test_preds = [], {}, {}
    for k, (lam, seed) in enumerate(models):
        entry = {"physics_weight": lam, "diverged": bool(diverged[k])}
        tag = f"_lambda{lam:g}"
        if len(seeds) > 1:
            entry["seed"], tag = seed, f"{tag}_seed{seed}"
        if not diverged[k]:
            block, per_trial = run_report.metrics_block(
                prep, ode.tree_index(best.params, k),
                dataclasses.replace(config, physics_weights=(lam,), seed=seed),
                run_report.selection_record(best, k))
            entry.update(block)
            tests[k], test_preds[k] = block["test"], per_trial
            common.write_plots(FLAGS.workdir, prep, per_trial, None, tag=tag)
            print(f"lambda={lam:g}{f' seed {seed}' if len(seeds) > 1 else ''}:\n"
                  f"{run_report.summary(block['test'])}")
        results.append(entry)
    labels = [f"λ={lam:g}" + (f" s{seed}" if len(seeds) > 1 else "") for lam, seed in models]
    common.write_plots(FLAGS.workdir, prep, None, history, labels, weights=weights)
    ok = [k for k in range(len(models)) if not diverged[k] and np.isfinite(best.score[k])]
    out = {"results": results, "chosen_on_validation": None, "model_sanity": sanity}
    if ok and len(seeds) == 1:
        out["chosen_on_validation"] = _choice_one_seed(prep, lams, best, ok)
    elif ok:
        out.update(_choice_over_seeds(prep, models, seeds, best, ok, tests, test_preds))
    records.write_json(os.path.join(FLAGS.workdir, "sweep.json"), out)
    records.write_json(os.path.join(FLAGS.workdir, "history.json"), history)
    print(f"wrote {FLAGS.workdir}/sweep.json")


def _choice_one_seed(prep, lams, best, ok) -> dict:
    from pinnmsk import evaluation

    k = min(ok, key=lambda i: best.score[i])
    chosen = {"physics_weight": float(lams[k]), "by": "lowest validation data loss",
              "validation_score": float(best.score[k])}
    print(f"chosen on validation: lambda={lams[k]:g} (validation score "
          f"{best.score[k]:.4g}); its test metrics are the ones to report")
    zero = [i for i in ok if lams[i] == 0]
    if zero and lams[k] != 0 and len(prep.val_trials) > 1:
        per = lambda i: evaluation.validation_by_trial(prep, ode.tree_index(best.params, i))
        chosen["vs_lambda0"] = evaluation.paired_vs_baseline(per(k), per(zero[0]))
        v = chosen["vs_lambda0"]
        print(f"  vs lambda=0 on the {v['n_trials']} validation trials: mean difference "
              f"{v['mean_difference']:+.4g} (SE {v['standard_error']:.2g}, t {v['t']:.2f}): "
              f"{'better beyond' if v['better_beyond_noise'] else 'within'} noise")
    return chosen


def _choice_over_seeds(prep, models, seeds, best, ok, tests, test_preds) -> dict:
    """Per seed the weight validation chooses; per weight its test figures over seeds and its
    paired validation difference from λ = 0 over seeds × validation trials. ``tests``,
    ``test_preds``: per model its test block and per-trial predictions (metrics_block's)."""
    import numpy as np

    from pinnmsk import evaluation

    lams = list(dict.fromkeys(lam for lam, _ in models))
    index = {m: k for k, m in enumerate(models)}
    per_seed = []
    for seed in seeds:
        mine = [k for k in ok if models[k][1] == seed]
        if mine:
            k = min(mine, key=lambda i: best.score[i])
            per_seed.append({"seed": seed, "physics_weight": models[k][0],
                             "validation_score": float(best.score[k])})
    full = [lam for lam in lams if all(index[(lam, s)] in ok for s in seeds)]
    mean_val = {lam: float(np.mean([best.score[index[(lam, s)]] for s in seeds])) for lam in full}
    chosen = None
    if full:
        lam = min(full, key=mean_val.get)
        chosen = {"physics_weight": lam, "by": "lowest validation data loss, mean over seeds",
                  "validation_score_mean": mean_val[lam],
                  "per_seed": per_seed,
                  "holds_across_seeds": len({p["physics_weight"] for p in per_seed}) == 1
                  and len(per_seed) == len(seeds)}
    across = {f"{lam:g}": evaluation.across_seeds([tests[index[(lam, s)]] for s in seeds])
              for lam in full}
    vs0 = {}
    if 0.0 in full and len(prep.val_trials) > 1:
        per = {k: evaluation.validation_by_trial(prep, ode.tree_index(best.params, k))
               for lam in full for k in (index[(lam, s)] for s in seeds)}
        for lam in full:
            if lam != 0.0:
                vs0[f"{lam:g}"] = evaluation.paired_over_seeds(
                    [per[index[(lam, s)]] for s in seeds], [per[index[(0.0, s)]] for s in seeds])
    print(_seed_table(full, mean_val, best, index, seeds, across, vs0))
    if chosen:
        each = ", ".join(f"{p['physics_weight']:g}" for p in per_seed)
        holds = "holds" if chosen["holds_across_seeds"] else "does not hold"
        print(f"chosen on validation (mean over {len(seeds)} seeds): "
              f"lambda={chosen['physics_weight']:g}; per seed: {each} ({holds} across seeds)")
    out = {"chosen_on_validation": chosen, "test_across_seeds": across,
           "vs_lambda0_by_weight": vs0}
    if chosen and prep.val_trials:
        ks = [index[(chosen["physics_weight"], s)] for s in seeds]
        out["ensemble"] = _ensemble(prep, [ode.tree_index(best.params, k) for k in ks],
                                    [test_preds[k] for k in ks])
        out["ensemble"]["physics_weight"] = chosen["physics_weight"]
    return out


def _ensemble(prep, params_list, test_runs, level: float = 0.9) -> dict:
    """The chosen λ's seeds as an ensemble: test metrics of the mean prediction and, per angle
    and force, the test coverage and width of the band calibrated on the validation trials
    (pinnmsk.ensemble; forces of a run without force labels: uncalibrated). ``test_runs``: each
    seed's per-test-trial predictions, as evaluated already."""
    import numpy as np

    from pinnmsk import ensemble, evaluation, metrics

    spec = prep.data.spec

    def stacks(runs):
        cat = lambda run, key: np.concatenate([t[key] for t in run])
        has_f = all(t["f_true"] is not None for t in runs[0])
        return (np.stack([cat(r, "q_pred") for r in runs]), cat(runs[0], "q_true"),
                np.stack([cat(r, "f_pred") for r in runs]) if has_f else None,
                cat(runs[0], "f_true") if has_f else None)

    val_runs = [evaluation.evaluate(prep, p, prep.val_trials)[1] for p in params_list]
    groups = np.concatenate([np.full(len(t["q_true"]), i) for i, t in enumerate(val_runs[0])])
    qv, qv_true, fv, fv_true = stacks(val_runs)
    qt, qt_true, ft, ft_true = stacks(test_runs)
    report = {"seeds": len(params_list), "level": level,
              "test_of_mean": metrics.evaluation_metrics(
                  qt.mean(0), qt_true, spec.labels.coordinates,
                  None if ft is None else ft.mean(0), ft_true, spec.muscle_names),
              "angle_band": ensemble.band_report(qv, qv_true, qt, qt_true,
                                                 spec.labels.coordinates, np.rad2deg(1.0),
                                                 level=level, val_groups=groups)}
    if ft is not None:
        calibrated = fv is not None and prep.n_labelled > 0  # label-free: no force truth used
        report["force_band"] = ensemble.band_report(fv, fv_true, ft, ft_true, spec.muscle_names,
                                                    calibrated=calibrated, level=level,
                                                    val_groups=groups)
    _plot_bands(prep, test_runs, report, level)
    lines = [f"ensemble of {len(params_list)} seeds, {level:.0%} bands calibrated on validation:"]
    for kind, unit in (("angle_band", "deg"), ("force_band", "N")):
        for name, r in report.get(kind, {}).items():
            if "test_coverage" in r:
                lines.append(f"  {name}: test coverage {r['test_coverage']:.3f}, mean width "
                             f"{r['test_mean_width']:.3g} {unit} ({r['score']} score)"
                             f"{'' if r['calibrated'] else ' (not calibrated: no labels)'}")
    print("\n".join(lines))
    return report


def _plot_bands(prep, test_runs, report, level) -> None:
    """plots/test_<trial>_ensemble.png: the ensemble's mean and band against the truth."""
    import numpy as np

    from experiments import common
    from pinnmsk import ensemble

    items = []
    for t, first in enumerate(test_runs[0]):
        item = dict(first, band_label=f"{level:.0%} band")
        for key, band in (("q", "angle_band"), ("f", "force_band")):
            if first[f"{key}_pred"] is None or band not in report:
                continue
            mean, sd = ensemble.mean_and_sd(np.stack([r[t][f"{key}_pred"] for r in test_runs]))
            half = np.array([b["scale"] for b in report[band].values()]) * ensemble.unit(
                sd, np.array([b["score"] for b in report[band].values()]))
            item[f"{key}_pred"], item[f"{key}_band"] = mean, (mean - half, mean + half)
        items.append(item)
    common.write_plots(FLAGS.workdir, prep, items, None, tag="_ensemble")


def _seed_table(lams, mean_val, best, index, seeds, across, vs0) -> str:
    """λ | validation | test angle R² per coordinate | mean force R² | vs λ = 0, as text."""
    import numpy as np

    def ms(d):
        return f"{d['mean']:.3f} ± {d['sd']:.3f}"

    rows = []
    for lam in lams:
        a = across[f"{lam:g}"]
        vals = [best.score[index[(lam, s)]] for s in seeds]
        cells = [f"{lam:g}", f"{np.mean(vals):.4g} ± {np.std(vals, ddof=1):.2g}"]
        cells += [ms(m["r2"]) for m in a.get("angle", {}).values()]
        if "force" in a and "mean" in a["force"]:
            cells.append(ms(a["force"]["mean"]["r2"]))
        v = vs0.get(f"{lam:g}")
        cells.append("—" if v is None else f"{v['mean_difference']:+.4g} ± "
                     f"{v['standard_error']:.2g} (t {v['t']:.2f})")
        rows.append("  ".join(cells))
    head = (f"lambda  validation (mean ± sd over {len(seeds)} seeds)  test angle R²  "
            "[mean force R²]  vs lambda=0 on validation (seeds x trials)")
    return "\n".join([head] + rows)
