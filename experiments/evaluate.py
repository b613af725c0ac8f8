"""Re-evaluate the newest checkpoint of a training run on its spec's test trials.

  python -m experiments.evaluate --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/default
"""

from __future__ import annotations

import os

import numpy as np
from absl import flags

from experiments import cli, common
from pinnmsk import runner

FLAGS = flags.FLAGS
common.define_data_flags()


def main(argv):
    del argv
    config, record = common.load_config(FLAGS.workdir)
    if np.asarray(record.get("weights")).ndim == 2:
        raise cli.UsageError(f"{FLAGS.workdir} holds a sweep; its metrics are in sweep.json")
    data = common.load_data(FLAGS.data_spec)
    prep = runner.prepare(data, config)
    epoch, _, history, best = common.restore_run(prep, config)
    block, per_trial = common.metrics_block(prep, best.params, config,
                                            common.selection_record(best),
                                            {"checkpoint_epoch": epoch})
    runner.write_json(os.path.join(FLAGS.workdir, "metrics.json"), block)
    runner.write_json(os.path.join(FLAGS.workdir, runner.INFERENCE_RECORD),
                      runner.inference_record(prep, config))
    common.write_plots(FLAGS.workdir, prep, per_trial, history)
    print(f"checkpoint of epoch {epoch}, selected epoch {int(best.epoch[0])}; test metrics:\n"
          f"{common.summary(block['test'])}")


if __name__ == "__main__":
    cli.run(main)
