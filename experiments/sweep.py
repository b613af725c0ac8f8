"""Train one model per physics weight in a single vmapped program, evaluate each.

  python -m experiments.sweep --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/sweep \
      --physics_weights=0,0.1,1,10

Writes WORKDIR/sweep.json (one metrics block per weight) and WORKDIR/plots/ (unless --noplots).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from experiments import cli, flagdefs

FLAGS = flags.FLAGS
flagdefs.define_data_flags()
flagdefs.define_train_flags()
flags.DEFINE_string("physics_weights", "0,0.1,1,10", "Comma-separated physics weights λ "
                    "(default: --config's PHYSICS_WEIGHTS where it has them).")


def main(argv):
    del argv
    from experiments import common  # JAX and the library: after the flags (--help stays fast)

    module = common.config_module()
    if module is not None and not FLAGS["physics_weights"].present \
            and hasattr(module, "PHYSICS_WEIGHTS"):
        lams = common.as_float_list(",".join(map(str, module.PHYSICS_WEIGHTS)), "config")
    else:
        lams = common.as_float_list(FLAGS.physics_weights, "physics_weights")
    config = common.config_from_flags(float(lams[0]), module)
    with common.claimed_workdir(FLAGS.workdir):  # held until the process ends
        _sweep(config, lams)


def _sweep(config, lams) -> None:
    import jax
    import numpy as np

    from experiments import common
    from pinnmsk import evaluation, prepare, records

    records.check_resumable(FLAGS.workdir, FLAGS.data_spec)
    data = common.load_data(FLAGS.data_spec)
    prep = prepare.prepare(data, config)
    sanity = common.report_sanity(prep)
    weights = prepare.weights_for(config, lams)
    print(f"sweep of {len(lams)} models (lambda = {', '.join(map(str, lams))}) on "
          f"{len(prep.train)} windows, {config.epochs} epochs", file=sys.stderr, flush=True)
    _, history, diverged, best = common.fit_or_exit(prep, config, weights, lams)
    results = []
    for k, lam in enumerate(lams):
        entry = {"physics_weight": float(lam), "diverged": bool(diverged[k])}
        if not diverged[k]:
            params = jax.tree_util.tree_map(lambda x: x[k], best.params)
            block, per_trial = common.metrics_block(
                prep, params, dataclasses.replace(config, physics_weight=float(lam)),
                common.selection_record(best, k))
            entry.update(block)
            common.write_plots(FLAGS.workdir, prep, per_trial, None, tag=f"_lambda{lam:g}")
            print(f"lambda={lam:g}:\n{common.summary(block['test'])}")
        results.append(entry)
    common.write_plots(FLAGS.workdir, prep, None, history, [f"λ={x:g}" for x in lams],
                       weights=weights)
    ok = [k for k in range(len(lams)) if not diverged[k] and np.isfinite(best.score[k])]
    chosen = None
    if ok:
        k = min(ok, key=lambda i: best.score[i])
        chosen = {"physics_weight": float(lams[k]), "by": "lowest validation data loss",
                  "validation_score": float(best.score[k])}
        print(f"chosen on validation: lambda={lams[k]:g} (validation score "
              f"{best.score[k]:.4g}); its test metrics are the ones to report")
        zero = [i for i in ok if lams[i] == 0]
        if zero and lams[k] != 0 and len(prep.val_trials) > 1:
            per = lambda i: evaluation.validation_by_trial(
                prep, jax.tree_util.tree_map(lambda x: x[i], best.params))
            chosen["vs_lambda0"] = evaluation.paired_vs_baseline(per(k), per(zero[0]))
            v = chosen["vs_lambda0"]
            print(f"  vs lambda=0 on the {v['n_trials']} validation trials: mean difference "
                  f"{v['mean_difference']:+.4g} (SE {v['standard_error']:.2g}, t {v['t']:.2f}): "
                  f"{'better beyond' if v['better_beyond_noise'] else 'within'} noise")
    records.write_json(os.path.join(FLAGS.workdir, "sweep.json"),
                       {"results": results, "chosen_on_validation": chosen,
                        "model_sanity": sanity})
    records.write_json(os.path.join(FLAGS.workdir, "history.json"), history)
    print(f"wrote {FLAGS.workdir}/sweep.json")


if __name__ == "__main__":
    cli.run(main)
