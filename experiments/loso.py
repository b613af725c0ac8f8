"""Leave one subject out: every subject of a spec in turn is a new person.

  python -m experiments.loso --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/loso

Per subject S: a run trained without S (the other subjects' training and validation parts, with
the labels the spec has) predicts S's test part (i) as it is, and calibrated to S
(``pinnmsk.calibration``) from S's calibration recordings (the train and validation parts of
S's trials; never the test part, never a force label) (ii) from EMG only and (iii) from EMG +
angles, each with the first --seconds of them (0: all). (iv), the within-subject reference:
one run trained on every subject's training part, on the same test parts. Beside them, the
linear ridge decoder from the lagged EMG envelope on the same parts ("ridge:none",
"ridge:within", and "ridge:emg+angles@…" fitted on the subject's calibration recordings alone).

``--seeds=N`` repeats it with --seed + k and --calibrate_seed + k (k < N; the runs of k > 0 in
WORKDIR/seed<N>/): per subject each figure is then the mean over the seeds, and the paired
counts are over those means, with each seed's own counts beside them.

Writes WORKDIR/loso.json (per subject and condition the test angle and force R², and with force
truth the three parts of force R², its time course, amplitude and mean level
(``pinnmsk.loso.figures``), which tell a wrong time course from a wrong scale; the pooled
mean ± sd, each calibration's paired difference from (i) and the share of the gap to (iv) it
closes, the calibrations' reports) and WORKDIR/calibration_<angle|force>.png (R² against
seconds); prints the tables. Training runs keep checkpoints in WORKDIR/<S>/ and WORKDIR/within/,
so re-running resumes.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import flags

from experiments import cli, flagdefs
from pinnmsk.config import MODES

FLAGS = flags.FLAGS
flagdefs.define_data_flags()
flagdefs.define_train_flags()
flags.DEFINE_string("seconds", "10,30,0", "Calibration recordings per calibration: the first "
                    "seconds of the subject's (0: all), comma-separated.")
flags.DEFINE_string("subjects", "", "Subjects left out in turn (default: every subject).")
flagdefs.define_calibration_flags(exclude=("mode", "seconds"))

# The printed tables: (figure, what it is, paired: an R² where higher is better, summarised in
# loso.json with its paired difference from no calibration). Force R² = its time course (shape
# r²) − the loss to its amplitude − the loss to its mean level (pinnmsk.loso.figures).
TABLES = (
    ("angle_r2", "angle R²", True), ("force_r2", "force R²", True),
    ("force_shape_r2", "force r² (the time course: R² after the best affine rescale per "
     "muscle)", True),
    ("force_scale_loss", "force R² lost to the amplitude, (s − r)²", False),
    ("force_offset_loss", "force R² lost to the mean level, b²", False),
    ("force_sd_ratio", "force amplitude s = sd predicted / sd true", False))


def _fit(prep, config, workdir: str):
    """The parameters selected on validation of ``config``'s run in ``workdir`` (resumed)."""
    from experiments import common
    from pinnmsk import terms

    weights = terms.run_weights(config)
    return common.fit_or_exit(prep, config, weights, config.physics_weights,
                              workdir=workdir)[3].params


def _ridge_rows(prep, train_all, val_all, lags, seconds) -> dict:
    """The linear decoder on a fold's parts: from the others, from everyone's training parts
    (``train_all``, ``val_all``), and from the subject's calibration recordings with their
    angles, each first ``seconds`` of them."""
    from pinnmsk import loso
    from pinnmsk.data import dataset as ds_lib

    rows = {loso.RIDGE + loso.NONE: loso.ridge_figures(
                prep.train_trials, prep.val_trials, prep.test_trials, lags),
            loso.RIDGE + loso.WITHIN: loso.ridge_figures(
                train_all, val_all, prep.test_trials, lags)}
    for sec in seconds:
        own = ds_lib.first_seconds(prep.calibration, float(sec), prep.data.rate_hz,
                                   prep.window, prep.data.spec.split.validation_fraction)
        rows[loso.RIDGE + loso.condition("emg+angles", float(sec))] = loso.ridge_figures(
            own["train"], own["validation"], prep.test_trials, lags, calibrated=True)
    return rows


def _runs(data, config, cals, subjects, seconds, seeds, workdirs) -> list[tuple[dict, dict]]:
    """Per seed, (rows {subject: {condition: figures}}, calibration reports): seed k's
    within-subject run in ``workdirs[k]``/within, each subject's fold in ``workdirs[k]``/<subject>
    (resumed), trained with seed ``seeds[k]`` and calibrated with each calibration's seed + k.
    Fold by fold, every seed of a fold on one Prepared where the preparation does not read the
    seed, so that the later seeds neither prepare nor trace nor compile its programs again."""
    from pinnmsk import calibration, evaluation, loso, prepare, ridge

    last = {}  # one fold's Prepared at a time: a fold's arrays go when the next comes

    def prepared(cfg):
        key = (cfg.leave_out, cfg.seed if prepare.seeded(cfg) else None)
        if key not in last:
            last.clear()
            last[key] = prepare.prepare(data, cfg)
        return last[key]

    print(f"(iv) within-subject reference: every subject's training part (seeds {seeds})",
          file=sys.stderr, flush=True)
    withins = []
    for sd, wd in zip(seeds, workdirs):
        cfg = dataclasses.replace(config, seed=sd)
        everyone = prepared(cfg)
        withins.append(evaluation.evaluate(everyone, _fit(everyone, cfg, os.path.join(
            wd, "within")))[0])
    lags = ridge.lags(everyone.window)
    # the ridge decoder fitted on everyone's training parts, which no seed changes
    train_all, val_all = everyone.train_trials, everyone.val_trials
    out = [({}, {}) for _ in seeds]
    for subj in subjects:
        ridge_rows = None
        for k, (sd, wd) in enumerate(zip(seeds, workdirs)):
            cfg = dataclasses.replace(config, seed=sd, leave_out=subj)
            print(f"leaving out {subj} ({subjects.index(subj) + 1}/{len(subjects)}, seed "
                  f"{sd})", file=sys.stderr, flush=True)
            prep = prepared(cfg)
            params = _fit(prep, cfg, os.path.join(wd, subj))
            row = {loso.NONE: loso.figures(evaluation.evaluate(prep, params)[0])}
            rows, reports = out[k]
            reports[subj] = {}
            for cal in cals:
                cal = dataclasses.replace(cal, seed=cal.seed + k)
                name = loso.condition(cal.mode, cal.seconds)
                p, rep = calibration.calibrate(prep, cfg, params, cal, log=lambda m: None)
                row[name] = loso.figures(evaluation.evaluate(prep, p)[0])
                reports[subj][name] = rep
                print(f"  {subj} {name} ({rep['recordings_s']:g} s, epoch "
                      f"{rep['selected_epoch']}): {row[name]} (none: {row[loso.NONE]})",
                      file=sys.stderr, flush=True)
            row[loso.WITHIN] = loso.figures(withins[k]["per_subject"][subj])
            if ridge_rows is None:  # the linear decoder reads no seed: fitted once per fold
                ridge_rows = _ridge_rows(prep, train_all, val_all, lags, seconds)
            row.update({c: dict(f) for c, f in ridge_rows.items()})
            rows[subj] = row
    return out


def main(argv):
    del argv
    from experiments import common  # JAX and the library: after the flags (--help stays fast)
    from pinnmsk import loso, records

    config = common.config_from_flags()
    if len(config.physics_weights) != 1:
        raise cli.UsageError("--physics_weights: one λ here (each fold trains one run)")
    if config.leave_out:
        raise cli.UsageError("--leave_out is what this command varies; drop it")
    seconds = common.as_float_list(FLAGS.seconds, "seconds")
    cals = [flagdefs.calibration_config(mode=m, seconds=float(s)) for m in MODES
            for s in seconds]
    with common.claimed_workdir(FLAGS.workdir):
        data = common.load_data(FLAGS.data_spec)
        subjects = [s for s in FLAGS.subjects.split(",") if s] or list(data.subjects)
        unknown = [s for s in subjects if s not in data.subjects]
        if unknown:
            raise cli.UsageError(f"--subjects: {unknown[0]} is not a subject of "
                                 f"{FLAGS.data_spec} ({', '.join(data.subjects)})")
        if len(data.subjects) < 2:
            raise cli.UsageError(f"{FLAGS.data_spec} has one subject; leaving it out leaves "
                                 "nothing to train on")
        # seed k trains with --seed + k and calibrates with --calibrate_seed + k; the first
        # seed's runs sit in WORKDIR itself, the others' in WORKDIR/seed<N>
        seeds = [config.seed + k for k in range(FLAGS.seeds)]
        per_seed = _runs(data, config, cals, subjects, seconds, seeds, [
            FLAGS.workdir if k == 0 else os.path.join(FLAGS.workdir, f"seed{sd}")
            for k, sd in enumerate(seeds)])
        rows = loso.mean_over_seeds([r for r, _ in per_seed])
        present = [t for t in TABLES if any(t[0] in r[loso.NONE] for r in rows.values())]
        quantities = [q for q, _, paired in present if paired]  # R²s: summarised and paired
        out = {"data_spec": FLAGS.data_spec, "config": dataclasses.asdict(config),
               "calibration": dataclasses.asdict(cals[0]) | {"mode": list(MODES),
                                                             "seconds": seconds},
               "seeds": seeds, "rows": rows,
               "summary": {q: loso.summarise(rows, q) for q in quantities},
               "calibration_reports": per_seed[0][1]}
        if len(seeds) > 1:
            out["rows_per_seed"] = [r for r, _ in per_seed]
            out["summary_per_seed"] = [{q: loso.summarise(r, q) for q in quantities}
                                       for r, _ in per_seed]
            out["calibration_reports_per_seed"] = [rep for _, rep in per_seed]
        records.write_json(os.path.join(FLAGS.workdir, "loso.json"), out)
        for q in ("angle_r2", "force_r2"):
            if FLAGS.plots and q in quantities:
                loso.plot_curve(os.path.join(FLAGS.workdir, f"calibration_{q[:-3]}.png"), rows,
                                q, [*MODES, loso.RIDGE + "emg+angles"], seconds)
        of = "" if len(seeds) == 1 else f" (per subject the mean over seeds {seeds})"
        for q, what, paired in present:
            print(f"test {what}, leaving each subject out{of}:\n"
                  f"{loso.table(rows, q, paired=paired)}")
        if len(seeds) > 1:
            for q in quantities:
                for c, d in out["summary"][q].items():
                    if "vs_none" in d:
                        counts = [s[q][c]["vs_none"]["better"] for s in out["summary_per_seed"]]
                        print(f"{q} {c}: better than no calibration for {d['vs_none']['better']}"
                              f"/{d['vs_none']['of']} subjects on the seeds' mean; per seed "
                              f"{', '.join(map(str, counts))}")
        print(f"wrote {FLAGS.workdir}/loso.json")


if __name__ == "__main__":
    cli.run(main)
