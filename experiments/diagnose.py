"""What a dataset can give before training: ceilings on the angle and label-free forces.

  python -m experiments.diagnose --data_spec=data_specs/opensim_wrist_v2.toml

On the spec's train/test split, without any network, it reports test R² of:
  - the joint angle decoded from the recent EMG envelope by ridge regression (a linear ceiling on
    how much of the angle the EMG carries), and from recorded forces by the same decoder;
  - where the trials have recorded forces, the forces decoded from the EMG by the same ridge
    (trained on the labels: what a linear model with force labels reaches);
  - muscle forces from the two classical label-free routes, both driven by the joint torque
    that the recorded kinematics require: per-muscle EMG gains fitted to that torque (as
    EMG-driven models are calibrated), and static optimisation (least Σ activation²);
  - per subject, the one F_max scale of the lab's model (Hill muscles with the spec's tendon,
    driven by the EMG) that closes the training torque, alone and with a free joint spring
    beside it: where the spring takes it far, the torque cannot tell muscle strength from
    joint stiffness and label-free F_max rests on the prior.
It also checks the model against the training motion, for rigid and compliant tendons: each
muscle's fibre length range, passive force and torque, and whether the modelled muscles can make
the torque the motion needs at all (warnings name the muscle and the fix).
If the EMG decodes the angle poorly, or the torque-driven forces are far from recorded ones
(co-contraction makes no net torque, so its level is invisible to kinematics), the
physics-informed CNN cannot be expected to do better on that account. Ridge strengths are
chosen on the spec's validation data (training data where it has none), as the CNN's epoch is.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
from absl import flags

from experiments import cli, flagdefs
from pinnmsk.data import opensim

FLAGS = flags.FLAGS
flags.DEFINE_string("data_spec", None, "Data spec (TOML), e.g. " + flagdefs.DEFAULT_SPEC +
                    "; see data_specs/README.md.")
flags.mark_flag_as_required("data_spec")
flags.DEFINE_float("history_s", None,
                   "EMG history the angle decoder sees [s]; default: the spec's window length.")
flags.DEFINE_integer("n_lags", 10, "Lagged copies of the envelope, spread over --history_s.")
flags.DEFINE_string("out", None, "Also write the figures to this JSON file.")
flags.DEFINE_string("identify", None,
                    "Sets of the person's parameters to identify, each diagnosed beside the lab's "
                    "model (which data tell which parameters), e.g. 'f_max,emg_gain;held;all' "
                    "(kinds: held, l_ts, passive_strain, f_max, emg_gain, stiffness; 'all'). The "
                    "spec's [person] priors apply (the defaults where it has none). Default: the "
                    "spec's [person] table, if any.")
flags.DEFINE_string("activations", None,
                    "For simulated data: file name of the true activations table (one column per "
                    "muscle, e.g. activations.sto) in each trial's EMG folder. Adds the same "
                    "figures with activations in place of the EMG envelope.")


def read_activations(data, name: str) -> dict:
    """{trial id: (T, M) activations at the label times} from ``name`` beside each EMG file."""
    out = {}
    for ts in data.spec.trials:
        path = os.path.join(os.path.dirname(data.spec.resolve(ts.emg)), name)
        if not os.path.exists(path):
            raise cli.UsageError(f"{path}: not found (--activations={name}); give the name of "
                                 "the activations table that lies beside each trial's EMG file")
        table = opensim.read_table(path)
        out[ts.id] = (table.time, table.select(data.spec.muscle_names))
    return out


def at_trial(tables: dict, t) -> np.ndarray:
    """(T, M) of a {trial id: (time, values)} table at trial ``t``'s label times (``t`` may be
    a validation part, ``<id>@val``)."""
    time, v = tables[t.id.split("@")[0]]
    return np.stack([np.interp(t.time_s, time, c) for c in v.T], axis=1)


def _ridge_rows(train_trials, val_trials, test_trials, lags, sources: dict,
                target: str = "angle", torques: dict | None = None) -> dict:
    """{"<target>_from_<source>": {"alpha", "validation_r2", "test_r2"}} for each source(trial)
    -> (T, C) signal: ridge from the signal's recent history to the joint angles (``target``
    "angle"), to the recorded muscle forces ("force", where every trial has them; R² is the
    mean over muscles) or to the joint torque the motion needs ("torque": ``torques``
    {trial id: (T, n) [N m]}, inverse dynamics: how much of it the EMG carries), fitted on training data, its strength chosen on validation data (on
    training data when there is none), test R² at that strength."""
    from pinnmsk import ridge

    goal = {"angle": lambda t: t.q_rad, "force": lambda t: t.forces_n,
            "torque": lambda t: None if torques is None else torques.get(t.id)}[target]
    rows = {}
    for key, signal in sources.items():
        row = ridge.ridge_decoder(train_trials, val_trials, test_trials, lags, signal, goal)
        if row is not None:
            rows[f"{target}_from_{key}"] = row
    return rows


def _torques(data, split) -> dict:
    """{trial id: (T, n) [N m]} the torque each trial's motion needs (inverse dynamics of the
    subject's body, derivatives by quintic spline)."""
    import jax.numpy as jnp

    from pinnmsk import diagnostics, dynamics

    out = {}
    for t in split["train"] + split["validation"] + split["test"]:
        qd, qdd = diagnostics.derivatives(t.time_s, t.q_rad.astype(np.float64))
        out[t.id] = np.asarray(dynamics.inverse_dynamics_along(
            data.model_of(t.subject).body, *(jnp.asarray(x, jnp.float32)
                                             for x in (t.q_rad, qd, qdd))), float)
    return out


def _f_max_rows(data, train_trials, terms: dict, rates: dict, drive) -> dict:
    """Per subject, the F_max scale of the lab's model that closes the training torque with
    Hill muscles (the spec's tendon) driven by ``drive``
    (:func:`pinnmsk.diagnostics.f_max_scale_from_torque`), alone and with a free joint spring,
    and the simulated truth's where the data ship it."""
    from pinnmsk import diagnostics
    from pinnmsk.data import loading

    out = {}
    for s, subject in enumerate(data.subjects):
        mine = [t for t in train_trials if t.subject == s]
        if not mine:
            continue
        if data.spec.tendon == "compliant":
            forces = [diagnostics.compliant_hill_forces(data.model_of(s), drive(t), t.q_rad,
                                                        rates[t.id][0]) for t in mine]
        else:
            forces = [terms[t.id].passive + drive(t) * terms[t.id].active for t in mine]
        args = ([terms[t.id] for t in mine], forces)
        alone, _ = diagnostics.f_max_scale_from_torque(*args)
        sprung, other = diagnostics.f_max_scale_from_torque(*args, qs=[t.q_rad for t in mine])
        n = data.model_of(s).n_coords
        row = {"tendon": data.spec.tendon, "scale": alone, "scale_with_free_spring": sprung,
               "free_spring_nm_per_rad": other[:n].tolist()}
        truth = loading.true_scales(data.spec, subject)
        if truth is not None:
            nominal = np.asarray(data.model_of(s).muscles.f_max_n, float)
            row["true_scale"] = float(np.mean([truth[m]["f_max"] / f for m, f in
                                               zip(data.spec.muscle_names, nominal)]))
        out[subject] = row
    return out


def _force_rows(data, train_trials, test_trials, drives: dict) -> dict:
    """Torque-calibrated gains and test-force R² for each drive (EMG, activations), and for
    static optimisation; with activations also Hill forces at gain 1 (the model's ceiling)."""
    from pinnmsk import diagnostics, metrics

    names = data.spec.muscle_names
    n_coords = data.model_of(0).n_coords
    rates = {t.id: diagnostics.derivatives(t.time_s, t.q_rad) for t in train_trials + test_trials}
    terms = {t.id: diagnostics.torque_terms(data.model_of(t.subject), t.q_rad, *rates[t.id])
             for t in train_trials + test_trials}
    rows, preds = {}, {}
    for key, drive in drives.items():
        gains = {}
        for s, subject in enumerate(data.subjects):
            mine = [t for t in train_trials if t.subject == s] or train_trials  # pooled if none
            parts = [diagnostics.gain_problem(terms[t.id], drive(t)) for t in mine]
            g, rms = diagnostics.calibrate_gains(np.concatenate([p[0] for p in parts]),
                                                 np.concatenate([p[1] for p in parts]))
            gains[subject] = {"gains": g, "torque_rms_nm": rms}
        rows[f"f_max_scale_from_torque_{key}"] = _f_max_rows(data, train_trials, terms, rates,
                                                             drive)
        rows[f"gains_fitted_to_torque_{key}"] = {
            subject: {"gains": dict(zip(names, v["gains"].tolist())),
                      "torque_rms_nm": v["torque_rms_nm"]} for subject, v in gains.items()}
        tt = [terms[t.id] for t in test_trials]
        preds[f"torque_calibrated_{key}"] = [
            x.passive + gains[data.subjects[t.subject]]["gains"] * drive(t) * x.active
            for t, x in zip(test_trials, tt)]
        if key == "activations":
            preds["hill_activations"] = [x.passive + drive(t) * x.active
                                         for t, x in zip(test_trials, tt)]
            preds["compliant_hill_activations"] = [
                diagnostics.compliant_hill_forces(data.model_of(t.subject), drive(t), t.q_rad,
                                                  rates[t.id][0])
                for t in test_trials]
    preds["static_optimisation"] = []
    for t in test_trials:
        x = terms[t.id]
        a = diagnostics.static_optimisation(
            *diagnostics.gain_problem(x, np.ones_like(t.excitation)), n_coords)
        preds["static_optimisation"].append(x.passive + a * x.active)
    if any(t.forces_n is None for t in test_trials):
        return rows
    true = np.concatenate([t.forces_n for t in test_trials])
    torques = [diagnostics.net_and_gross_torque(terms[t.id].arms, t.forces_n)
               for t in train_trials + test_trials if t.forces_n is not None]
    net = np.concatenate([n for n, _ in torques])
    rows["net_over_gross_torque"] = float(np.sqrt(np.mean(net**2)) / np.mean(
        np.concatenate([g for _, g in torques])))
    for key, pred in preds.items():
        pred = np.concatenate(pred)
        per = {m: metrics.regression_metrics(pred[:, i], true[:, i])["r2"]
               for i, m in enumerate(names)}
        rows[f"force_from_{key}"] = {"per_muscle": per, "mean": float(np.mean(list(per.values())))}
    return rows


def main(argv):
    from experiments import common  # JAX and the library: after the flags
    from pinnmsk import records, ridge, sanity

    del argv
    data = common.load_data(FLAGS.data_spec)
    split = data.split()
    if not split["train"] or not split["test"]:
        raise cli.UsageError(f"{FLAGS.data_spec}: the split needs training and test trials "
                             "(field 'split.test')")
    history_s = FLAGS.history_s if FLAGS.history_s is not None else data.spec.windows.length_s
    if history_s < 0 or FLAGS.n_lags < 1:
        raise cli.UsageError("--history_s must be >= 0 and --n_lags >= 1")
    lags = ridge.lags(history_s * data.rate_hz, FLAGS.n_lags)
    shortest = min(len(t.time_s) for t in data.trials)
    if lags.max() >= shortest:
        raise cli.UsageError(f"--history_s={history_s} is longer than the shortest trial "
                             f"({shortest / data.rate_hz:.2f} s)")
    print("fitting the decoders and the torque-driven force models", file=sys.stderr, flush=True)
    rows = {"dataset": data.spec.name, "history_s": history_s,
            "train_trials": [t.id for t in split["train"]],
            "test_trials": [t.id for t in split["test"]]}
    drives = {"emg": lambda t: t.excitation}
    if FLAGS.activations:
        acts = read_activations(data, FLAGS.activations)
        drives["activations"] = lambda t: at_trial(acts, t)
    sources = {**drives, "forces": lambda t: t.forces_n}
    rows.update(_ridge_rows(split["train"], split["validation"], split["test"], lags, sources))
    rows.update(_ridge_rows(split["train"], split["validation"], split["test"], lags, drives,
                            "force"))
    rows.update(_ridge_rows(split["train"], split["validation"], split["test"], lags, drives,
                            "torque", _torques(data, split)))
    rows.update(_force_rows(data, split["train"], split["test"], drives))
    rows["model_sanity"] = {t: sanity.sanity_by_subject(data, split["train"], t)
                            for t in ("rigid", "compliant")}
    print(table(rows))
    for t in ("rigid", "compliant"):
        print(sanity.sanity_table(rows["model_sanity"][t]))
    for name, person_spec in _person_sets(data.spec).items():
        ds = dataclasses.replace(data, spec=dataclasses.replace(data.spec, person=person_spec))
        rows.setdefault("person", {})[name] = _person_rows(ds, split["train"])
        print(person_table(rows["person"][name], rows["model_sanity"][data.spec.tendon]))
    if FLAGS.out:
        records.write_json(FLAGS.out, rows)


def _person_sets(spec) -> dict:
    """{name: PersonSpec} to diagnose: --identify's sets, else the spec's [person] table."""
    from pinnmsk.data import person_spec

    if not FLAGS.identify:
        return {} if spec.person is None else {",".join(spec.person.identify): spec.person}
    base = spec.person or person_spec.PersonSpec()
    out = {}
    for part in FLAGS.identify.split(";"):
        kinds = person_spec.PARAMETERS if part.strip() == "all" else tuple(
            k.strip() for k in part.split(",") if k.strip())
        if not spec.geometry.held_coordinates_rad or not base.held_range_rad:
            kinds = tuple(k for k in kinds if k != "held")
        bad = [k for k in kinds if k not in person_spec.PARAMETERS]
        if bad or not kinds:
            raise cli.UsageError(f"--identify={FLAGS.identify}: '{part}' names "
                                 f"{bad[0] if bad else 'nothing identifiable here'}; kinds: "
                                 f"{', '.join(person_spec.PARAMETERS)} or all")
        out[",".join(kinds)] = dataclasses.replace(base, identify=kinds)
    return out


def _person_rows(data, train_trials) -> dict:
    """The spec's [person] identification (:func:`pinnmsk.personalise.personalise`) and the
    identified model diagnosed as the lab's is: model sanity, and the F_max scale that closes
    the torque with the identified EMG gains."""
    from pinnmsk import diagnostics, personalise, sanity

    print("identifying the person's model ([person])", file=sys.stderr, flush=True)
    tendon = data.spec.tendon
    ident, rep = personalise.personalise(data, train_trials, tendon)
    rates = {t.id: diagnostics.derivatives(t.time_s, t.q_rad) for t in train_trials}
    terms = {t.id: diagnostics.torque_terms(ident.model_of(t.subject), t.q_rad, *rates[t.id])
             for t in train_trials}
    gains = {s: np.asarray(rep["subjects"][subj]["parameters"]["emg_gain"]["posterior"])
             if "emg_gain" in rep["subjects"][subj]["parameters"] else 1.0
             for s, subj in enumerate(data.subjects)}
    drive = lambda t: np.clip(gains[t.subject] * t.excitation, 0.0, 1.0)
    return {"identification": rep,
            "model_sanity": sanity.sanity_by_subject(ident, train_trials, tendon),
            "f_max_scale_from_torque": _f_max_rows(ident, train_trials, terms, rates, drive),
            "against_truth": _against_truth(data, rep)}


def _against_truth(data, rep: dict) -> dict:
    """Where the data ship their simulation truth (model.json): per subject, for the F_max and
    l_ts scales, the truth (a scale of the lab's model) and how far the identification moved
    away from it, in prior widths: |posterior − truth| − |prior centre − truth|."""
    from pinnmsk.data import loading

    out = {}
    for s, subj in enumerate(data.subjects):
        truth = loading.true_scales(data.spec, subj)
        params = rep["subjects"][subj]["parameters"]
        if truth is None:
            continue
        nominal = data.model_of(s).muscles
        row = {}
        for kind, attr, key in (("f_max", "f_max_n", "f_max"), ("l_ts", "l_ts_m", "l_ts")):
            if kind not in params:
                continue
            t = np.asarray([truth[m][key] for m in data.spec.muscle_names]) / np.asarray(
                getattr(nominal, attr), float)
            p = params[kind]
            post, centre, width = (np.asarray(x, float) for x in (
                p["posterior"], p["prior"]["centre"], p["prior"]["width"]))
            row[kind] = {"truth": t.tolist(),
                         "moved_away_widths": ((np.abs(post - t) - np.abs(centre - t))
                                               / width).tolist()}
        out[subj] = row
    return out


def person_table(rows: dict, lab_sanity: dict) -> str:
    """Per subject, the lab's model and the identified one side by side: the torque residual
    of the EMG-driven muscles, the share of samples whose torque no activation can make, the
    largest passive force and the largest EMG-driven force / F_max, and the one F_max scale
    that closes the torque."""
    rep, ident = rows["identification"], rows["model_sanity"]
    out = [f"the person's model ({', '.join(rep['identified'])} identified; {rep['tendon']} "
           "tendon): lab's model -> identified, per subject",
           f"{'':6s} {'torque residual RMS [N m]':>26s} {'infeasible':>13s} "
           f"{'peak passive [N]':>17s} {'peak F/F_max':>13s} {'F_max scale':>11s}  identified"]
    for subj, r in rep["subjects"].items():
        if subj not in ident:
            continue
        peak = lambda sanity: max(sanity[subj]["peak_passive_force_n"].values())
        scale = rows["f_max_scale_from_torque"].get(subj, {}).get("scale", float("nan"))
        vals = "; ".join(f"{k} " + " ".join(f"{v:.3g}" for v in p["posterior"])
                         for k, p in r["parameters"].items())
        out.append(
            f"{subj:6s} {r['residual_rms_nm_lab']:5.1f} -> {r['residual_rms_nm_identified']:4.1f}"
            f" (need {r['need_rms_nm']:4.1f}) "
            f"{100 * max(lab_sanity[subj]['infeasible_fraction']):3.0f} -> "
            f"{100 * max(ident[subj]['infeasible_fraction']):3.0f} % "
            f"{peak(lab_sanity):6.0f} -> {peak(ident):5.0f} "
            f"{max(r['peak_force_over_f_max_lab']):5.2f} -> "
            f"{max(r['peak_force_over_f_max_identified']):4.2f} {scale:11.2f}  {vals}")
    for subj, row in rows["against_truth"].items():
        out.append(f"{subj} against the simulation truth (model.json), how far the identification "
                   "moved away from it [prior widths]: " + "; ".join(
                       f"{k} " + " ".join(f"{v:+.2f}" for v in r["moved_away_widths"])
                       for k, r in row.items()))
    return "\n".join(out)


ROWS = (("angle_from_emg", "angle from EMG"),
        ("angle_from_activations", "angle from true activations"),
        ("angle_from_forces", "angle from recorded forces"),
        ("force_from_emg", "force from EMG (ridge, labelled forces)"),
        ("torque_from_emg", "joint torque the motion needs, from EMG"),
        ("force_from_activations", "force from true activations (ridge)"),
        ("force_from_torque_calibrated_emg", "force, EMG gains fitted to the torque"),
        ("force_from_torque_calibrated_activations", "force, activation gains fitted to torque"),
        ("force_from_hill_activations", "force, Hill with true activations"),
        ("force_from_compliant_hill_activations", "force, compliant Hill, true activations"),
        ("force_from_static_optimisation", "force, static optimisation"))


def table(rows: dict) -> str:
    """The figures as a text table (the best ridge strength per angle decoder)."""
    out = [f"{rows['dataset']}: {len(rows['train_trials'])} training, "
           f"{len(rows['test_trials'])} test trial(s); ridge decoders on "
           f"{rows['history_s']:g} s of history", f"{'':42s} test R^2"]
    for key, what in ROWS:
        if key not in rows:
            continue
        if "alpha" in rows[key]:  # a ridge decoder
            r = rows[key]
            out.append(f"{what:42s} {r['test_r2']:8.3f}   (ridge alpha {r['alpha']:g} chosen on "
                       f"{r['chosen_on']}: R^2 {r['validation_r2']:.3f})")
        else:
            per = " ".join(f"{m} {v:.2f}" for m, v in rows[key]["per_muscle"].items())
            out.append(f"{what:42s} {rows[key]['mean']:8.3f}   ({per})")
    if "net_over_gross_torque" in rows:
        out.append(f"recorded forces: RMS net muscle torque / mean gross (sum of |r F|) = "
                   f"{rows['net_over_gross_torque']:.3f}")
    prefix = "f_max_scale_from_torque_"
    for key in [k for k in rows if k.startswith(prefix)]:
        for subject, r in rows[key].items():
            truth = f", simulated truth {r['true_scale']:.3f}" if "true_scale" in r else ""
            out.append(f"F_max scale closing the torque ({r['tendon']} Hill, "
                       f"{key.removeprefix(prefix)}), {subject}: {r['scale']:.3f}; with a free "
                       f"joint spring {r['scale_with_free_spring']:.3f}{truth}")
            if r["scale"] <= 0:
                out.append(f"warning ({subject}): driven by the {key.removeprefix(prefix)}, the "
                           "model's muscle torque runs against the torque the motion needs (no "
                           "positive F_max closes it): its physics will fight the data; check "
                           "the passive forces (model sanity below), the EMG normalisation and "
                           "the muscles the model lacks")
    prefix = "gains_fitted_to_torque_"
    for key in [k for k in rows if k.startswith(prefix)]:
        for subject, g in rows[key].items():
            gains = " ".join(f"{m} {v:.3f}" for m, v in g["gains"].items())
            out.append(f"{key.removeprefix(prefix)} gains fitted to torque, {subject}: {gains} "
                       f"(residual {g['torque_rms_nm']:.3f} N m RMS)")
    return "\n".join(out)


if __name__ == "__main__":
    cli.run(main)
