"""Calibrate a run to the subject it never saw, from that person's recordings, without labels of
force (and, with --calibrate_mode=emg, without their angles).

  python -m experiments.train --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/no_s2 \
      --leave_out=s2
  python -m experiments.calibrate --workdir=runs/no_s2 --out=runs/s2_emg --calibrate_mode=emg

The subject's calibration recordings are the train and validation parts of their trials under
the spec's split (their test part is never read); --calibrate_seconds uses only the first
seconds of them. The person's parameters (F_max, lengths, EMG gain, delay) are identified by the
physics (and the angle loss, --calibrate_mode=emg+angles), starting from and held near the
trained subjects' by a Gaussian prior; with --calibrate_adapt=head|all part of the network
adapts too. The epoch is chosen on the validation part of the calibration recordings (epoch 0,
the run as it was, included).

--out becomes a run of its own (config.json with a "calibration" block, checkpoint,
metrics.json on the subject's test part, inference.json), so ``experiments.evaluate`` and
``experiments.predict --subject=<the subject>`` use the calibrated model.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from experiments import cli, flagdefs

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A run trained with --leave_out=<subject>.")
flags.mark_flag_as_required("workdir")
flags.DEFINE_string("out", None, "Work directory of the calibrated run (created).")
flags.mark_flag_as_required("out")
flags.DEFINE_string("data_spec", None, "Data spec (TOML); default: the run's (config.json).")
flags.DEFINE_boolean("plots", True, "Write the calibrated run's test-trial figures.")
flagdefs.define_calibration_flags()
flagdefs.define_extensions_flag()


def main(argv):
    del argv
    from experiments import common  # JAX and the library: after the flags (--help stays fast)
    from pinnmsk import calibration, checkpoint, prepare, records, run_report

    cal = flagdefs.calibration_config()
    config, record = common.load_config(FLAGS.workdir)
    if not config.leave_out:
        raise cli.UsageError(f"{FLAGS.workdir} was trained on every subject; train a run with "
                             "--leave_out=<subject> to calibrate it to that subject")
    if os.path.abspath(FLAGS.out) == os.path.abspath(FLAGS.workdir):
        raise cli.UsageError("--out must differ from --workdir (the run stays as it was)")
    if records.read_run_record(FLAGS.out) is not None:
        raise cli.UsageError(f"--out={FLAGS.out} already holds a run; choose a new folder")
    spec_path = common.spec_of_run(FLAGS.workdir)
    records.check_resumable(FLAGS.workdir, spec_path, "calibrate")
    data = common.load_data(spec_path)
    records.check_same_data(FLAGS.workdir, data, "calibrate")
    prep = prepare.prepare(data, config)
    base_dir = FLAGS.workdir
    epoch, state, history, best = common.restore_run(prep, config)
    print(f"calibrating {base_dir} (epoch {int(best.epoch[0])}) to subject "
          f"{config.leave_out} ({cal.mode}, adapting {cal.adapt})", file=sys.stderr, flush=True)
    params, report = calibration.calibrate(prep, config, best.params, cal)
    with common.claimed_workdir(FLAGS.out):
        records.write_json(os.path.join(FLAGS.out, "config.json"),
                           {**record, "calibration": dataclasses.asdict(cal),
                            "calibrated_from": os.path.abspath(base_dir)})
        chosen = checkpoint.Best(params, best.epoch, best.score)
        with checkpoint.Checkpoints(FLAGS.out) as ckpt:
            ckpt.save(epoch, state.replace(params=params), history, chosen)
        block = common.write_run_outputs(prep, config, chosen, {"calibration": report},
                                         history, records.recorded_weights(record),
                                         workdir=FLAGS.out)
    print(f"selected calibration epoch {report['selected_epoch']} of {cal.epochs} "
          f"({report['recordings_s']:g} s of recordings); test metrics of {config.leave_out} "
          f"({', '.join(t.id for t in prep.test_trials)}):\n{run_report.summary(block['test'])}\n"
          f"wrote {FLAGS.out}/metrics.json")


if __name__ == "__main__":
    cli.run(main)
