"""Ensemble bands: the split-conformal scale reaches its nominal coverage."""

import numpy as np
import pytest

from pinnmsk import ensemble


def _draw(rng, n, spread_truth=3.0):
    """Seeds' predictions (5, n, 2) whose spread understates the error by ``spread_truth``."""
    centre = rng.normal(size=(n, 2))
    sd = rng.uniform(0.5, 2.0, size=(n, 2))
    stack = centre + sd * rng.normal(size=(5, n, 2))
    truth = centre + spread_truth * sd * rng.normal(size=(n, 2))
    return stack, truth


def test_conformal_scale_reaches_nominal_coverage():
    rng = np.random.default_rng(0)
    cal, cal_truth = _draw(rng, 2000)
    new, new_truth = _draw(rng, 20000)
    m, s = ensemble.mean_and_sd(cal)
    scale = ensemble.conformal_scale(m, s, cal_truth, 0.9)
    cov_cal, _ = ensemble.coverage(m, s, scale, cal_truth)
    assert np.all(cov_cal >= 0.9) and np.all(cov_cal < 0.91)
    m2, s2 = ensemble.mean_and_sd(new)
    cov_new, width = ensemble.coverage(m2, s2, scale, new_truth)
    assert np.all(np.abs(cov_new - 0.9) < 0.015), cov_new
    # the raw spread (the scale dropped, or the Gaussian factor) under-covers here
    raw, _ = ensemble.coverage(m2, s2, np.full(2, ensemble.GAUSSIAN_90), new_truth)
    assert np.all(raw < 0.75)
    assert np.all(width > 0)


def test_band_report_fields_and_too_few_samples():
    rng = np.random.default_rng(1)
    va, va_t = _draw(rng, 400)
    te, te_t = _draw(rng, 400)
    r = ensemble.band_report(va, va_t, te, te_t, ["a", "b"], unit_scale=2.0)
    assert set(r) == {"a", "b"} and r["a"]["calibrated"]
    assert r["a"]["calibration_coverage"] >= 0.9
    assert 0.8 < r["a"]["test_coverage"] < 0.97
    u = ensemble.band_report(va, None, te, te_t, ["a", "b"], calibrated=False)
    assert u["a"]["scale"] == pytest.approx(1.6449, abs=1e-4) and not u["a"]["calibrated"]
    m, s = ensemble.mean_and_sd(va[:, :5])
    assert np.all(np.isinf(ensemble.conformal_scale(m, s, va_t[:5], 0.9)))
