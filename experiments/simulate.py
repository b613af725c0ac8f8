"""Generate a synthetic lab-shaped dataset (EMG CSV, .mot, .sto, MuscleAnalysis tables, spec).

  python -m experiments.simulate --data_spec=data_specs/synthetic_wrist.toml \
      --out=data/synthetic_wrist

The body, muscles and geometry come from --data_spec; subjects vary around them.
"""

from __future__ import annotations

import os
import time

from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("data_spec", "data_specs/synthetic_wrist.toml",
                    "Data spec whose body, muscles and geometry define the nominal subject.")
flags.DEFINE_string("out", "data/synthetic_wrist", "Output folder (replaced if it exists).")
flags.DEFINE_integer("subjects", 3, "Number of subjects.")
flags.DEFINE_integer("trials", 3, "Trials per subject; the last one of each is the test trial.")
flags.DEFINE_float("duration_s", 20.0, "Trial length [s].")
flags.DEFINE_float("emg_rate_hz", 1000.0, "Raw sEMG sampling rate and simulation rate [Hz].")
flags.DEFINE_float("label_rate_hz", 100.0, "Kinematics/force rate [Hz]; must divide the EMG rate.")
flags.DEFINE_float("variation", 0.15, "Relative spread of subject parameters.")
flags.DEFINE_float("joint_stiffness_nm", 1.5,
                   "Nominal passive joint stiffness of a 1-DOF body [N m/rad], varied per subject "
                   "and written into the output spec (wrist rotations are stiffness-dominated).")
flags.DEFINE_enum("emg_format", "csv", ["csv", "npz"],
                  "Raw sEMG file format: csv (a lab export) or npz (float32, 4x smaller).")
flags.DEFINE_integer("seed", 0, "Random seed (the dataset is a deterministic function of it).")


def main(argv):
    del argv
    from pinnmsk.data import loading, spec, synthetic  # JAX: after the flags

    for name in ("subjects", "trials"):
        if getattr(FLAGS, name) < 1:
            raise cli.UsageError(f"--{name} must be >= 1")
    if FLAGS.trials < 2:
        raise cli.UsageError("--trials must be >= 2 (one per subject is kept for testing)")
    if FLAGS.joint_stiffness_nm < 0:
        raise cli.UsageError("--joint_stiffness_nm must be >= 0")
    if FLAGS.duration_s <= 1.0:
        raise cli.UsageError("--duration_s must be > 1 s")
    ratio = FLAGS.emg_rate_hz / FLAGS.label_rate_hz
    if FLAGS.label_rate_hz <= 0 or abs(ratio - round(ratio)) > 1e-9:
        raise cli.UsageError(f"--label_rate_hz={FLAGS.label_rate_hz:g} must divide "
                             f"--emg_rate_hz={FLAGS.emg_rate_hz:g}")
    base_spec = spec.load_spec(FLAGS.data_spec)
    base = loading.build_model(base_spec)
    cfg = synthetic.SyntheticConfig(
        n_subjects=FLAGS.subjects, n_trials=FLAGS.trials, duration_s=FLAGS.duration_s,
        emg_rate_hz=FLAGS.emg_rate_hz, label_rate_hz=FLAGS.label_rate_hz,
        variation=FLAGS.variation, joint_stiffness_nm=FLAGS.joint_stiffness_nm,
        emg_format=FLAGS.emg_format, seed=FLAGS.seed)
    t0 = time.time()
    path = synthetic.generate(base_spec, base, os.path.abspath(FLAGS.out), cfg)
    print(f"wrote {path} ({cfg.n_subjects} subjects x {cfg.n_trials} trials) in "
          f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    cli.run(main)
