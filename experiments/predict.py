"""Predict joint angles and muscle forces from a raw sEMG file with a trained model, causally.

  python -m experiments.predict --workdir=runs/default --emg=data/synthetic_wrist/s0/trial_5/emg.npz \
      --out=predictions.csv

The EMG is streamed in chunks of --chunk_s through the causal filter (state carried between
chunks), so every prediction uses only past samples, as it would online. What inference needs
from the training data (EMG normalisers and rest values, output scalings) is in the run's
inference.json, so predict reads only the spec, the checkpoint and the EMG file; the spec must be
the one the run was trained with (checked by its SHA-256). The output CSV has time
[s], one column per coordinate in degrees and one per muscle force in newtons.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags

from experiments import cli, common
from pinnmsk import emg, prepare, records
from pinnmsk.data import dataset, opensim
from pinnmsk.data import spec as ds_spec
from pinnmsk.streaming import Streamer

FLAGS = flags.FLAGS
common.define_data_flags(plots=False)
flags.DEFINE_string("emg", None, "Raw sEMG file (CSV/NPZ/.sto) with the spec's channel columns.")
flags.DEFINE_string("out", None, "Output CSV of predictions.")
flags.DEFINE_string("subject", None, "Subject whose EMG normaliser to use (default: the first).")
flags.DEFINE_float("chunk_s", 0.1, "Streaming chunk length [s].")
flags.mark_flags_as_required(["emg", "out"])


def _source(spec_path: str):
    """(spec, subjects, normaliser (S, M), rest (S, M), restore) for streaming: from the run's
    inference record when it matches the spec (no training data read), else by reloading the
    dataset as training did (runs written before the record existed)."""
    path = os.path.join(FLAGS.workdir, records.INFERENCE_RECORD)
    spec = ds_spec.load_spec(spec_path, require_root=not os.path.exists(path))
    if os.path.exists(path):
        with open(path) as f:
            rec = json.load(f)
        if rec.get("data_spec_sha256") != records.spec_fingerprint(spec.path):
            raise cli.UsageError(f"{spec.path}: not the spec {FLAGS.workdir} was trained with "
                                 f"(its contents differ from the run's record {path}); pass "
                                 "the run's own --data_spec")
        restore = lambda config: records.restore_from_record(FLAGS.workdir, rec, spec, config)
        return (spec, tuple(rec["subjects"]), np.asarray(rec["normaliser_v"]),
                np.asarray(rec["rest_v"]), restore)
    data = common.load_data(spec_path)

    def restore(config):
        prep = prepare.prepare(data, config)
        _, _, _, best = common.restore_run(prep, config)
        return prep.net, best.params

    return spec, data.subjects, data.normaliser_v, data.rest_v, restore


def main(argv):
    del argv
    t_start = time.time()
    config, record = common.load_config(FLAGS.workdir)
    if np.asarray(record.get("weights")).ndim == 2:
        raise cli.UsageError(f"{FLAGS.workdir} holds a sweep; predict from a train run")
    if FLAGS.chunk_s <= 0:
        raise cli.UsageError("--chunk_s must be > 0")
    spec, subjects, normaliser, rest, restore = _source(FLAGS.data_spec)
    subject = FLAGS.subject or subjects[0]
    if subject not in subjects:
        raise cli.UsageError(f"--subject={subject} is not in {spec.path} "
                             f"(subjects: {', '.join(subjects)})")
    ratio = spec.emg.sampling_rate_hz / spec.labels.rate_hz
    if abs(ratio - round(ratio)) > 1e-9:
        raise cli.UsageError(f"{spec.path}: streaming needs the EMG rate to be a multiple of "
                             "the label rate")
    if spec.emg.input != "raw" or spec.emg.envelope != "causal":
        raise cli.UsageError(f"{spec.path}: predict streams raw sEMG through the causal filter, "
                             "but this spec's model was trained on "
                             f"{'given envelopes' if spec.emg.input != 'raw' else 'the zero-phase envelope'}"
                             "; train with emg.envelope = \"causal\" and emg.input = \"raw\"")
    table = opensim.read_table(FLAGS.emg, spec.emg.sampling_rate_hz, spec.text.incomplete_rows,
                               spec.text.columns)
    if len(table.time) > 1:
        rate = 1.0 / np.median(np.diff(table.time))
        if abs(rate - spec.emg.sampling_rate_hz) > 0.01 * spec.emg.sampling_rate_hz:
            raise cli.UsageError(f"{FLAGS.emg}: time column implies {rate:.6g} Hz but the spec "
                                 f"says emg.sampling_rate_hz = {spec.emg.sampling_rate_hz:g}; "
                                 "resample the file or fix the spec")
    chans = list(spec.emg.channels)
    for c in chans:
        if c not in table.columns:
            raise cli.UsageError(f"{FLAGS.emg}: no EMG column '{c}' (columns: "
                                 f"{', '.join(table.columns)}); the spec's emg.channels names it")
    raw = table.select(chans)
    try:
        emg.check_finite(raw, FLAGS.emg)
    except ValueError as e:
        raise cli.UsageError(str(e))
    # muscle order: a channel's column for each muscle it drives; zeros where none does
    raw = dataset.in_muscle_order(spec, dataset.check_outliers(spec, FLAGS.emg, raw, chans))
    net, params = restore(config)
    s = subjects.index(subject)
    window = int(round(spec.windows.length_s * spec.labels.rate_hz))
    streamer = Streamer(dataset.EnvelopeFn(spec).filter, normaliser[s], int(round(ratio)),
                        window, net, params["net"], rest_v=rest[s],
                        quadrature=spec.emg.rest_subtraction == "quadrature")
    chunk = max(1, int(round(FLAGS.chunk_s * spec.emg.sampling_rate_hz)))
    times, qs, fs = [], [], []
    t0 = time.time()
    for lo in range(0, len(raw), chunk):
        ticks, q, f = streamer.push(raw[lo:lo + chunk])
        if len(ticks):
            times.append(table.time[lo + ticks])
            qs.append(q)
            fs.append(f)
    wall = time.time() - t0
    dur = table.time[-1] - table.time[0]
    cols = [f"{c}_deg" for c in spec.labels.coordinates] + [f"{m}_n" for m in spec.muscle_names]
    vals = np.concatenate([np.rad2deg(np.concatenate(qs)), np.concatenate(fs)], axis=1)
    tmp = FLAGS.out + ".tmp"
    opensim.write_csv(tmp, np.concatenate(times), cols, vals)
    os.replace(tmp, FLAGS.out)
    print(f"wrote {FLAGS.out}: {len(vals)} predictions, {dur:.1f} s of EMG streamed in "
          f"{wall:.2f} s ({dur / wall:.0f}x real time); {time.time() - t_start:.1f} s in all",
          file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
