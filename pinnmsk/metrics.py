"""Regression metrics of predictions against the truth (NumPy; no JAX): what metrics.json and
the tables report."""

from __future__ import annotations

import numpy as np


def regression_metrics(pred: np.ndarray, true: np.ndarray) -> dict:
    """RMSE, NRMSE (RMSE / range of the truth), R², Pearson r, the amplitude ratio
    s = sd(pred) / sd(truth) and the offset b = (mean(pred) − mean(truth)) / sd(truth) of one
    column. They split R² exactly: R² = r² − (s − r)² − b², the time course (r², the R² of the
    best affine rescale), the scale and the mean level."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    err = pred - true
    rmse = float(np.sqrt(np.mean(err**2)))
    rng = float(np.max(true) - np.min(true))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
    r = float(np.corrcoef(pred, true)[0, 1]) if np.std(pred) > 0 and np.std(true) > 0 else 0.0
    sd_true = float(np.std(true))
    return {"rmse": rmse, "nrmse": rmse / rng if rng > 0 else float("nan"), "r2": r2,
            "pearson_r": r,
            "sd_ratio": float(np.std(pred)) / sd_true if sd_true > 0 else float("nan"),
            "bias_sd": float(pred.mean() - true.mean()) / sd_true if sd_true > 0 else float("nan")}


def evaluation_metrics(q_pred, q_true, coords, f_pred=None, f_true=None, muscles=()) -> dict:
    """The ``metrics.json`` "test" block: angles per coordinate, forces per muscle and mean."""
    out = {"angle": {}}
    for j, c in enumerate(coords):
        m = regression_metrics(q_pred[:, j], q_true[:, j])
        m["rmse_deg"] = float(np.rad2deg(m["rmse"]))
        out["angle"][c] = m
    if f_true is not None:
        out["force"] = {m: regression_metrics(f_pred[:, i], f_true[:, i])
                        for i, m in enumerate(muscles)}
        out["force"]["mean"] = {k: float(np.mean([out["force"][m][k] for m in muscles]))
                                for k in ("rmse", "nrmse", "r2", "pearson_r", "sd_ratio",
                                          "bias_sd")}
    return out
