"""Seeds as an ensemble: the mean prediction and a band calibrated on validation data.

The band of a quantity is mean ± c · u, u the spread of the seeds' predictions at that sample
(the "normalised" score |truth − mean| / sd) or 1 (the "absolute" score |truth − mean|: a band
of constant width), and c a split-conformal scale: the ⌈(n + 1)(1 − α)⌉-th smallest score over
the n calibration (validation) samples, so that the band covers at least 1 − α of exchangeable
new samples (Angelopoulos & Bates 2021, "A Gentle Introduction to Conformal Prediction", §2.3).
Which score a quantity uses is chosen on the calibration data alone (:func:`choose_score`:
calibrated on half of its trials, the coverage of the other half closest to 1 − α): a few seeds
can agree far more closely than they are right, and where their spread does not follow the
error, a band scaled by it is too wide at some samples and too narrow at others.
Where a quantity has no labelled calibration samples (forces of a label-free run) c is the
Gaussian quantile (1.645 for 90 %) on the normalised score, reported as not calibrated.
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


SCORES = ("normalised", "absolute")


def unit(sd: np.ndarray, score="normalised") -> np.ndarray:
    """What the scale multiplies, per sample (N, Q): the seeds' sd, or 1 (``score`` per column
    (Q,) or one for all)."""
    normalised = np.broadcast_to(np.asarray(score) == "normalised", np.shape(sd)[-1:])
    return np.where(normalised, sd, 1.0)


def conformal_scale(mean: np.ndarray, sd: np.ndarray, truth: np.ndarray, level: float = 0.9,
                    score="normalised") -> np.ndarray:
    """(Q,) split-conformal scale per column from calibration samples (N, Q)."""
    score = np.abs(np.asarray(truth, float) - mean) / (unit(sd, score) + _EPS)
    n = score.shape[0]
    k = int(np.ceil((n + 1) * level))
    if k > n:
        return np.full(score.shape[1], np.inf)  # too few samples for this level
    return np.sort(score, axis=0)[k - 1]


def coverage(mean: np.ndarray, sd: np.ndarray, scale: np.ndarray, truth: np.ndarray,
             score="normalised") -> tuple[np.ndarray, np.ndarray]:
    """(Q,) share of samples (N, Q) inside mean ± scale · unit, and the band's mean width."""
    half = scale * unit(sd, score)
    inside = np.abs(np.asarray(truth, float) - mean) <= half
    return inside.mean(0), (2 * half).mean(0)


def choose_score(mean: np.ndarray, sd: np.ndarray, truth: np.ndarray, groups: np.ndarray,
                 level: float = 0.9) -> tuple[np.ndarray, dict]:
    """Per column (Q,), the score (:data:`SCORES`) whose band, calibrated on half of the
    calibration trials, covers the other half closest to ``level`` (two folds: the trials of
    even and odd rank in ``groups`` (N,), the trial of each sample; the mean |coverage − level|
    over both folds). Returns (scores (Q,), {score: (Q,) that deviation}); with fewer than two
    trials, "normalised" and no deviations."""
    trials = np.unique(groups)
    q = np.shape(mean)[1]
    if len(trials) < 2:
        return np.full(q, SCORES[0]), {}
    fold = np.isin(groups, trials[::2])
    dev = {}
    for score in SCORES:
        d = []
        for cal in (fold, ~fold):
            c = conformal_scale(mean[cal], sd[cal], truth[cal], level, score)
            cov, _ = coverage(mean[~cal], sd[~cal], c, truth[~cal], score)
            d.append(np.abs(cov - level))
        dev[score] = np.mean(d, axis=0)
    best = np.asarray(SCORES)[np.argmin([dev[s] for s in SCORES], axis=0)]  # ties: the first
    return best, dev


def band_report(val_stack, val_truth, test_stack, test_truth, names, unit_scale: float = 1.0,
                calibrated: bool = True, level: float = 0.9, val_groups=None) -> dict:
    """Per column of ``names``: the score (:func:`choose_score` on ``val_groups`` (N,), the
    validation trial of each sample; "normalised" without them), the scale, whether it was
    calibrated, the calibration and test coverage, and the test band's mean width
    (× ``unit_scale``, e.g. rad → deg). ``*_stack``: (S, N, Q) seeds' predictions; ``*_truth``:
    (N, Q) or None."""
    m_te, s_te = mean_and_sd(test_stack)
    score, dev = np.full(m_te.shape[1], SCORES[0]), {}
    if calibrated:
        m_va, s_va = mean_and_sd(val_stack)
        if val_groups is not None:
            score, dev = choose_score(m_va, s_va, np.asarray(val_truth, float),
                                      np.asarray(val_groups), level)
        scale = conformal_scale(m_va, s_va, val_truth, level, score)
        cal_cov, _ = coverage(m_va, s_va, scale, val_truth, score)
    else:
        scale = np.full(m_te.shape[1], norm.ppf(0.5 + level / 2))
        cal_cov = np.full(m_te.shape[1], np.nan)
    out = {}
    for j, name in enumerate(names):
        row = {"score": str(score[j]), "scale": float(scale[j]), "calibrated": calibrated,
               "calibration_coverage": float(cal_cov[j])}
        if dev:
            row["score_check"] = {k: float(v[j]) for k, v in dev.items()}
        if test_truth is not None:
            cov, width = coverage(m_te[:, j:j + 1], s_te[:, j:j + 1], scale[j:j + 1],
                                  np.asarray(test_truth)[:, j:j + 1], score[j:j + 1])
            row.update(test_coverage=float(cov[0]), test_mean_width=float(width[0]) * unit_scale)
        out[name] = row
    return out
