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


def _trials(rng, sd_level, err_level, n=300):
    """Seeds' predictions (3, N, 1) and truth (N, 1) over trials whose seed spread and error
    scale are ``sd_level[i]`` and ``err_level[i]``; and the trial of each sample (N,)."""
    stacks, truths, groups = [], [], []
    for i, (s, e) in enumerate(zip(sd_level, err_level)):
        centre = rng.normal(size=(n, 1))
        z = rng.normal(size=(3, n, 1))
        stacks.append(centre + s * rng.uniform(0.5, 1.5, (n, 1)) * (z - z.mean(0)))  # mean: centre
        truths.append(centre + e * rng.normal(size=(n, 1)))
        groups.append(np.full(n, i))
    return np.concatenate(stacks, 1), np.concatenate(truths), np.concatenate(groups)


def test_the_score_is_chosen_by_coverage_across_calibration_trials():
    """Where the seeds' spread changes from trial to trial but the error does not, a band scaled
    by the spread misses its coverage on other trials and the constant-width ("absolute") band
    is chosen; where the spread follows the error across trials, the normalised one is."""
    rng = np.random.default_rng(2)
    spread = [0.1, 1.0, 0.1, 1.0, 0.1, 1.0]
    stack, truth, groups = _trials(rng, spread, [1.0] * 6)
    m, s = ensemble.mean_and_sd(stack)
    score, dev = ensemble.choose_score(m, s, truth, groups, 0.9)
    assert score[0] == "absolute" and dev["absolute"][0] < 0.03 < dev["normalised"][0], dev
    stack, truth, groups = _trials(rng, spread, [3 * x for x in spread])
    m, s = ensemble.mean_and_sd(stack)
    score, dev = ensemble.choose_score(m, s, truth, groups, 0.9)
    assert score[0] == "normalised" and dev["normalised"][0] < dev["absolute"][0], dev
    # the report uses the chosen score; its calibration coverage is nominal either way
    r = ensemble.band_report(stack, truth, stack, truth, ["a"], val_groups=groups)
    assert r["a"]["score"] == "normalised" and set(r["a"]["score_check"]) == set(ensemble.SCORES)
    assert r["a"]["calibration_coverage"] >= 0.9
    one = ensemble.choose_score(m, s, truth, np.zeros(len(truth)), 0.9)
    assert one[0][0] == "normalised" and one[1] == {}
