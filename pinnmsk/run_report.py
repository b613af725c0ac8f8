"""What a run reports about itself: the metrics.json document of a set of parameters
(:func:`metrics_block`: test and validation metrics, how they were selected, the identified
parameters, torque budgets, the dataset's record), the selection record, and the summary the
binaries print. No files: the binaries write what this returns.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pinnmsk import evaluation
from pinnmsk.data import loading
from pinnmsk.config import TrainConfig


def selection_record(best, k: int = 0, how: str | None = None) -> dict:
    """How the evaluated parameters were chosen (metrics.json "selection")."""
    has_val = bool(np.isfinite(best.score[k]))
    return {"by": how or ("validation data loss (angle, and force where labelled), lowest over "
                          "epochs" if has_val else "last epoch (no validation data)"),
            "epoch": int(best.epoch[k]),
            "validation_score": float(best.score[k]) if has_val else None}


def metrics_block(prep, params, config: TrainConfig, selection: dict,
                  extra: dict | None = None) -> tuple[dict, list]:
    """The metrics.json document for ``params`` and the per-test-trial predictions for plots.

    "validation" and "test" blocks (pooled, per trial, per subject); "selection" says how
    ``params`` were chosen (on validation data only); "dataset" records the envelope mode and
    the EMG normalisers actually used."""
    test, per_trial = evaluation.evaluate(prep, params)
    trained = forces_trained(prep, config)
    if not trained:
        _mark_untrained(test)
    data = prep.data
    truth = {s: loading.true_scales(data.spec, s) for s in data.subjects}  # model.json, if any
    out = {"test": test, "selection": selection,
           "identified_params": evaluation.identified_params(prep, params, truth),
           "config": {**dataclasses.asdict(config), "data_spec": data.spec.path},
           "dataset": {"name": data.spec.name, "envelope": data.spec.emg.envelope
                       if data.spec.emg.input == "raw" else "given (emg.input = envelope)",
                       "train_windows": len(prep.train),
                       "validation_windows": 0 if prep.val is None else len(prep.val),
                       "labelled_force_windows": prep.n_labelled,
                       "validation_trials": [t.id for t in prep.val_trials],
                       "test_trials": [t.id for t in prep.test_trials],
                       "emg_normalisation": data.normalisation,
                       "geometry": data.geometry_report,
                       "load_notes": data.load_notes}}
    out["test"]["torque_budget"] = evaluation.torque_budgets(prep, params, per_trial)
    if prep.person is not None:
        out["person"] = prep.person
    if prep.consts.residual_torque:
        out["residual_torque_coef_nm"] = {
            subj: (np.asarray(params["physio"]["residual_torque"][s])
                   * np.asarray(prep.consts.tau_scale)[:, None]).tolist()
            for s, subj in enumerate(data.subjects)}
        out["residual_torque_basis"] = (
            "per coordinate: [1, qd [rad/s], exp(-((q - knot_k) / spacing)^2 / 2) for each knot]")
        out["residual_torque_knots_rad"] = np.asarray(prep.consts.residual_knots_rad).tolist()
    if prep.val_trials:
        out["validation"] = evaluation.evaluate(prep, params, prep.val_trials)[0]
        if not trained:
            _mark_untrained(out["validation"])
    if extra:
        out.update(extra)
    return out, per_trial


def forces_trained(prep, config: TrainConfig) -> bool:
    """Whether anything trained the force head: force labels in the loss, or physics (λ > 0).
    A λ = 0 run without labels predicts forces from its initialisation."""
    return (config.force_labels and prep.n_labelled > 0) or max(config.physics_weights) > 0


def _mark_untrained(block: dict) -> None:
    """An evaluation block of a run whose force head nothing trained: its force figures move to
    "force_untrained", so no table reads them as a result."""
    if "force" in block:
        block["force_untrained"] = block.pop("force")
        block["force_note"] = ("force head not trained (physics weight 0 and no force labels): "
                               "its figures are those of the initialisation")
    for part in ("per_trial", "per_subject"):
        for sub in block.get(part, {}).values():
            _mark_untrained(sub)


def summary(block: dict) -> str:
    lines = []
    for c, m in block["angle"].items():
        lines.append(f"  angle {c}: R2={m['r2']:.3f} RMSE={m['rmse_deg']:.2f} deg "
                     f"NRMSE={m['nrmse']:.3f} r={m['pearson_r']:.3f}")
    if "force_note" in block:
        lines.append(f"  {block['force_note']}")
    if "force" in block:
        m = block["force"]["mean"]
        lines.append(f"  force (mean of {len(block['force']) - 1} muscles): R2={m['r2']:.3f} "
                     f"RMSE={m['rmse']:.1f} N NRMSE={m['nrmse']:.3f} r={m['pearson_r']:.3f}")
    return "\n".join(lines)
