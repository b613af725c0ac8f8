"""Seeds as an ensemble: the mean prediction and a band calibrated on validation data.

The band of a quantity is mean ± c · sd, sd the spread of the seeds' predictions at that sample
and c a split-conformal scale: the ⌈(n + 1)(1 − α)⌉-th smallest of |truth − mean| / sd over
the n calibration (validation) samples, so that the band covers at least 1 − α of exchangeable
new samples (Angelopoulos & Bates 2021, "A Gentle Introduction to Conformal Prediction", §2.3
with the normalised score). Where a quantity has no labelled calibration samples (forces of a
label-free run) c is the Gaussian quantile (1.645 for 90 %), reported as not calibrated.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

GAUSSIAN_90 = float(norm.ppf(0.95))
_EPS = 1e-9


def mean_and_sd(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``stack`` (S, N, Q) predictions of S seeds → mean and sample sd (N, Q) over seeds."""
    stack = np.asarray(stack, float)
    return stack.mean(0), stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(stack.shape[1:])


def conformal_scale(mean: np.ndarray, sd: np.ndarray, truth: np.ndarray, level: float = 0.9
                    ) -> np.ndarray:
    """(Q,) split-conformal scale per column from calibration samples (N, Q)."""
    score = np.abs(np.asarray(truth, float) - mean) / (sd + _EPS)
    n = score.shape[0]
    k = int(np.ceil((n + 1) * level))
    if k > n:
        return np.full(score.shape[1], np.inf)  # too few samples for this level
    return np.sort(score, axis=0)[k - 1]


def coverage(mean: np.ndarray, sd: np.ndarray, scale: np.ndarray, truth: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """(Q,) share of samples (N, Q) inside mean ± scale · sd, and the band's mean width."""
    half = scale * sd
    inside = np.abs(np.asarray(truth, float) - mean) <= half
    return inside.mean(0), (2 * half).mean(0)


def band_report(val_stack, val_truth, test_stack, test_truth, names, unit_scale: float = 1.0,
                calibrated: bool = True, level: float = 0.9) -> dict:
    """Per column of ``names``: the scale, whether it was calibrated, the calibration and test
    coverage, and the test band's mean width (× ``unit_scale``, e.g. rad → deg).
    ``*_stack``: (S, N, Q) seeds' predictions; ``*_truth``: (N, Q) or None."""
    m_te, s_te = mean_and_sd(test_stack)
    if calibrated:
        m_va, s_va = mean_and_sd(val_stack)
        scale = conformal_scale(m_va, s_va, val_truth, level)
        cal_cov, _ = coverage(m_va, s_va, scale, val_truth)
    else:
        scale = np.full(m_te.shape[1], norm.ppf(0.5 + level / 2))
        cal_cov = np.full(m_te.shape[1], np.nan)
    out = {}
    for j, name in enumerate(names):
        row = {"scale": float(scale[j]), "calibrated": calibrated,
               "calibration_coverage": float(cal_cov[j])}
        if test_truth is not None:
            cov, width = coverage(m_te[:, j:j + 1], s_te[:, j:j + 1], scale[j:j + 1],
                                  np.asarray(test_truth)[:, j:j + 1])
            row.update(test_coverage=float(cov[0]), test_mean_width=float(width[0]) * unit_scale)
        out[name] = row
    return out
