"""Re-evaluate a training run on its spec's test trials: the parameters selected on validation
(the best epoch so far, as train reports them), read from the run's newest checkpoint.

  python -m experiments.evaluate --workdir=runs/default \
      [--data_spec=data_specs/synthetic_wrist.toml]

The spec and its data must be the ones the run was trained with (SHA-256 of both, kept in the
run's config.json); otherwise it stops with exit status 2 and rewrites nothing.
"""

from __future__ import annotations

from absl import flags

from experiments import cli, flagdefs

FLAGS = flags.FLAGS
flagdefs.define_data_flags(spec_from_run=True)
flagdefs.define_extensions_flag()


def main(argv):
    del argv

    from experiments import common  # JAX and the library: after the flags (--help stays fast)
    from pinnmsk import prepare, records, run_report

    config, record = common.load_config(FLAGS.workdir)
    if records.is_sweep(record):
        raise cli.UsageError(f"{FLAGS.workdir} holds a sweep; its metrics are in sweep.json")
    spec_path = common.spec_of_run(FLAGS.workdir)
    records.check_resumable(FLAGS.workdir, spec_path, "evaluate")
    data = common.load_data(spec_path)
    records.check_same_data(FLAGS.workdir, data)
    prep = prepare.prepare(data, config)
    epoch, _, history, best = common.restore_run(prep, config)
    block = common.write_run_outputs(prep, config, best, {"checkpoint_epoch": epoch}, history,
                                     records.recorded_weights(record))
    print(f"checkpoint of epoch {epoch}, selected epoch {int(best.epoch[0])}; test metrics:\n"
          f"{run_report.summary(block['test'])}")


if __name__ == "__main__":
    cli.run(main)
