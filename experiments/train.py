"""Train the physics-informed CNN on a dataset spec, evaluate on its test trials.

  python -m experiments.train --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/default

Writes WORKDIR/metrics.json, WORKDIR/plots/*.png, WORKDIR/history.json and orbax checkpoints in
WORKDIR/checkpoints/. Re-running the same command resumes from the newest checkpoint.

``--seeds=N`` (N > 1) trains N seeds of the run in one program, as ``experiments.sweep`` does for
one λ: WORKDIR/sweep.json has each seed's figures, their mean ± sd and the seeds as an ensemble
with 90 % bands calibrated on validation, which ``predict`` then writes.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from experiments import cli, flagdefs
from pinnmsk.config import TrainConfig

FLAGS = flags.FLAGS
flagdefs.define_data_flags()
flagdefs.define_train_flags()


def main(argv):
    del argv
    run(sweep=False)


def run(sweep: bool) -> None:
    """The run the flags describe: a sweep (sweep.json) where ``sweep``, or where they give
    several physics weights or seeds; else one model (metrics.json)."""
    from experiments import common  # JAX and the library: after the flags (--help stays fast)

    config = common.config_from_flags()
    with common.claimed_workdir(FLAGS.workdir):  # held until the process ends
        if sweep or FLAGS.seeds > 1 or len(config.physics_weights) > 1:
            from experiments import sweeping

            sweeping.run(config, FLAGS.seeds)
        else:
            _train(config)


def _train(config: TrainConfig) -> None:
    from experiments import common
    from pinnmsk import prepare, records, run_report, terms

    records.check_resumable(FLAGS.workdir, FLAGS.data_spec)
    data = common.load_data(FLAGS.data_spec)
    prep = prepare.prepare(data, config)
    sanity = common.report_sanity(prep)
    print(f"training {config.model} (lambda={config.physics_weight}, force labels "
          f"{'on' if config.force_labels else 'off'}, {prep.n_labelled} labelled windows) on "
          f"{len(prep.train)} windows for {config.epochs} epochs", file=sys.stderr, flush=True)
    weights = terms.run_weights(config)
    _, history, _, best = common.fit_or_exit(prep, config, weights, config.physics_weights)
    block = common.write_run_outputs(prep, config, best, {"model_sanity": sanity}, history,
                                     weights)
    records.write_json(os.path.join(FLAGS.workdir, "history.json"), history)
    print(f"selected epoch {int(best.epoch[0])} by {block['selection']['by']}")
    print(f"test metrics ({', '.join(t.id for t in prep.test_trials)}):\n"
          f"{run_report.summary(block['test'])}\nwrote {FLAGS.workdir}/metrics.json")


if __name__ == "__main__":
    cli.run(main)
