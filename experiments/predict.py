"""Predict joint angles and muscle forces from a raw sEMG file with a trained model, causally.

  python -m experiments.predict --workdir=runs/default --emg=data/synthetic_wrist/s0/trial_5/emg.npz \
      --out=predictions.csv

The EMG is streamed in chunks of --chunk_s through the causal filter (state carried between
chunks), so every prediction uses only past samples, as it would online. What inference needs
from the training data (EMG normalisers and rest values, output scalings) is in the run's
inference.json, so predict reads only the spec, the checkpoint and the EMG file; the spec must be
the one the run was trained with (checked by its SHA-256; by default the run's own). The output
CSV has time [s], one column per coordinate in degrees and one per muscle force in newtons, one
row per label tick from the first tick with a full window of EMG behind it (the window length
after the file's start): earlier rows would come from a window padded with the first sample.

From a sweep trained with --seeds (``--workdir`` the sweep's), the chosen λ's seeds predict as an
ensemble: each column is their mean, followed by ``<column>_lo`` and ``<column>_hi`` columns,
the 90 % band mean ± c · sd over seeds with c calibrated on the validation trials (sweep.json
"ensemble"; the sweep's data are reloaded, as its checkpoint holds every model).

The file must be in the units the run was trained on: a channel whose envelope reads far above
the subject's normaliser (the 95th percentile over 5x its EMG at excitation 1: millivolts for
volts, or another amplifier gain) stops with exit status 2 (--emg_scale converts it), and one
far below it, or flat, is warned about. With several subjects in the run, --subject is
required: each subject's EMG has its own normaliser.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags

from experiments import cli, flagdefs
from pinnmsk.data import opensim, writing
from pinnmsk.data import spec as ds_spec

FLAGS = flags.FLAGS
flagdefs.define_data_flags(plots=False, spec_from_run=True)
flagdefs.define_extensions_flag()
flags.DEFINE_string("emg", None, "Raw sEMG file (CSV/NPZ/.sto) with the spec's channel columns.")
flags.DEFINE_string("out", None, "Output CSV of predictions.")
flags.DEFINE_string("subject", None, "Subject whose EMG normaliser to use; required when the run "
                    "has several subjects (default: its only subject).")
flags.DEFINE_float("emg_scale", 1.0, "Multiply the file's EMG by this before predicting (e.g. "
                   "0.001 for a file in millivolts when the run was trained on volts).")
flags.DEFINE_float("chunk_s", 0.1, "Streaming chunk length [s].")
flags.mark_flags_as_required(["emg", "out"])


def _ensemble_of(record: dict) -> dict | None:
    """None for a train run; for a sweep trained with --seeds, its chosen λ's models (indices
    into the sweep) and the band scales per output column (angles, then forces), from
    sweep.json's "ensemble"."""
    from pinnmsk import records

    if not records.is_sweep(record):
        return None
    path = os.path.join(FLAGS.workdir, "sweep.json")
    sweep = json.load(open(path)) if os.path.exists(path) else {}
    ens = sweep.get("ensemble")
    if not ens:
        raise cli.UsageError(f"{FLAGS.workdir} holds a sweep without an ensemble; predict from "
                             "a train run, or from a sweep trained with --seeds=2 or more")
    results = sweep["results"]
    models = [k for k, r in enumerate(results) if r["physics_weight"] == ens["physics_weight"]]
    bands = list(ens["angle_band"].values()) + list(ens.get("force_band", {}).values())
    # an absolute band's scale is in the quantity's unit: radians for angles (written in degrees)
    units = [np.rad2deg(1.0)] * len(ens["angle_band"]) + [1.0] * len(ens.get("force_band", {}))
    return {"models": models, "scales": [r["scale"] for r in bands], "units": units,
            "scores": [r.get("score", "normalised") for r in bands], "n_models": len(results)}


def _source(spec_path: str, ens: dict | None = None):
    """(spec, subjects, normaliser (S, M), rest (S, M), restore) for streaming: from the run's
    inference record when it matches the spec (no training data read), else by reloading the
    dataset as training did (runs written before the record existed, and sweeps: ``ens``,
    whose checkpoint holds their models stacked)."""
    from experiments import common
    from pinnmsk import prepare, records

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
        _, _, _, best = common.restore_run(prep, config, None if ens is None
                                           else ens["n_models"])
        return prep.net, best.params

    return spec, data.subjects, data.normaliser_v, data.rest_v, restore


def _check_level(spec, raw: np.ndarray, normaliser, rest, subject: str) -> None:
    """``raw`` (T, M) in muscle order. Stop when a channel of the file reads in other units than
    training (its envelope's 95th percentile above 5x the subject's normaliser); warn when one
    reads flat or far below it."""
    from pinnmsk.data import checks

    env = checks.EnvelopeFn(spec)(FLAGS.emg, raw)  # raw: (T, M) muscle order
    level = np.percentile(env, 95, axis=0)
    chans = list(spec.emg.channels)
    for c in chans:
        i = spec.muscle_names.index(spec.emg.channels[c][0])
        ratio = level[i] / normaliser[i]
        if ratio > 5.0:
            raise cli.UsageError(
                f"{FLAGS.emg}: channel '{c}' reads {ratio:.3g}x subject {subject}'s EMG at "
                f"excitation 1 ({normaliser[i]:.3g}); the file is in other units than the "
                "training EMG (millivolts for volts?) or from another amplifier gain; convert "
                "it, or pass --emg_scale (e.g. --emg_scale=0.001 for millivolts)")
        if np.ptp(raw[:, i]) == 0 or level[i] <= max(float(rest[i]), 1e-3 * normaliser[i]):
            print(f"warning: {FLAGS.emg}: channel '{c}' reads at or below subject {subject}'s "
                  f"resting level ({level[i]:.3g} V at the 95th percentile): a relaxed muscle, "
                  "a dead electrode, another subject's gains or other units (volts for "
                  "millivolts?)", file=sys.stderr)


def main(argv):
    del argv
    from experiments import common  # JAX and the library: after the flags (--help stays fast)
    from pinnmsk import emg, ode
    from pinnmsk.data import checks
    from pinnmsk.streaming import Streamer

    t_start = time.time()
    config, record = common.load_config(FLAGS.workdir)
    ens = _ensemble_of(record)
    if FLAGS.chunk_s <= 0:
        raise cli.UsageError("--chunk_s must be > 0")
    spec, subjects, normaliser, rest, restore = _source(common.spec_of_run(FLAGS.workdir), ens)
    if FLAGS.subject is None and len(subjects) > 1:
        raise cli.UsageError(f"--subject is required: the run in {FLAGS.workdir} has "
                             f"{len(subjects)} subjects ({', '.join(subjects)}), each with its "
                             "own EMG normaliser; name the one whose electrodes made the file")
    if not (np.isfinite(FLAGS.emg_scale) and FLAGS.emg_scale > 0):
        raise cli.UsageError("--emg_scale must be a positive number")
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
    raw = table.select(chans) * FLAGS.emg_scale
    try:
        emg.check_finite(raw, FLAGS.emg)
    except ValueError as e:
        raise cli.UsageError(str(e))
    # muscle order: a channel's column for each muscle it drives; zeros where none does
    raw = checks.in_muscle_order(spec, checks.check_outliers(spec, FLAGS.emg, raw, chans))
    s = subjects.index(subject)
    _check_level(spec, raw, normaliser[s], rest[s], subject)
    net, params = restore(config)
    models = [params] if ens is None else [ode.tree_index(params, k) for k in ens["models"]]
    window = int(round(spec.windows.length_s * spec.labels.rate_hz))
    streamers = [Streamer(checks.EnvelopeFn(spec).filter, normaliser[s], int(round(ratio)),
                          window, net, p["net"], rest_v=rest[s],
                          quadrature=spec.emg.rest_subtraction == "quadrature") for p in models]
    chunk = max(1, int(round(FLAGS.chunk_s * spec.emg.sampling_rate_hz)))
    times, qs, fs = [], [], []
    t0 = time.time()
    first_full = (window - 1) * int(round(ratio))  # the first tick with a full window behind it
    for lo in range(0, len(raw), chunk):
        out = [st.push(raw[lo:lo + chunk]) for st in streamers]
        ticks = out[0][0]
        keep = lo + ticks >= first_full
        if keep.any():
            times.append(table.time[lo + ticks[keep]])
            qs.append(np.stack([o[1][keep] for o in out]))  # (seeds, k, n)
            fs.append(np.stack([o[2][keep] for o in out]))
    if not times:
        raise cli.UsageError(f"{FLAGS.emg}: {len(raw) / spec.emg.sampling_rate_hz:.2f} s of EMG "
                             f"is shorter than the model's window ({spec.windows.length_s:g} s); "
                             "give a longer recording")
    wall = time.time() - t0
    dur = table.time[-1] - table.time[0]
    cols = [f"{c}_deg" for c in spec.labels.coordinates] + [f"{m}_n" for m in spec.muscle_names]
    stack = np.concatenate([np.rad2deg(np.concatenate(qs, 1)), np.concatenate(fs, 1)], axis=2)
    vals = stack.mean(0)
    if ens is not None:  # mean, then each column's band: mean ± c · (sd over seeds, or 1)
        from pinnmsk import ensemble

        _, sd = ensemble.mean_and_sd(stack)
        absolute = np.asarray(ens["scores"]) == "absolute"
        half = np.asarray(ens["scales"]) * np.where(absolute, np.asarray(ens["units"]), sd)
        cols = cols + [f"{c}_lo" for c in cols] + [f"{c}_hi" for c in cols]
        vals = np.concatenate([vals, vals - half, vals + half], axis=1)
    tmp = FLAGS.out + ".tmp"
    writing.write_csv(tmp, np.concatenate(times), cols, vals)
    os.replace(tmp, FLAGS.out)
    print(f"wrote {FLAGS.out}: {len(vals)} predictions, {dur:.1f} s of EMG streamed in "
          f"{wall:.2f} s ({dur / wall:.0f}x real time); {time.time() - t_start:.1f} s in all",
          file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
