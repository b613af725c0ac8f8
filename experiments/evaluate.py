"""Re-evaluate the newest checkpoint of a training run on its spec's test trials.

  python -m experiments.evaluate --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/default
"""

from __future__ import annotations

import numpy as np
from absl import flags

from experiments import cli, common
from pinnmsk import prepare

FLAGS = flags.FLAGS
common.define_data_flags()


def main(argv):
    del argv
    config, record = common.load_config(FLAGS.workdir)
    if np.asarray(record.get("weights")).ndim == 2:
        raise cli.UsageError(f"{FLAGS.workdir} holds a sweep; its metrics are in sweep.json")
    data = common.load_data(FLAGS.data_spec)
    prep = prepare.prepare(data, config)
    epoch, _, history, best = common.restore_run(prep, config)
    block = common.write_run_outputs(prep, config, best, {"checkpoint_epoch": epoch}, history)
    print(f"checkpoint of epoch {epoch}, selected epoch {int(best.epoch[0])}; test metrics:\n"
          f"{common.summary(block['test'])}")


if __name__ == "__main__":
    cli.run(main)
