"""Calibration to a new subject (pinnmsk.calibration) and leave-one-subject-out
(experiments.loso): what calibration may read, the input scale's folding, the summaries, and the
binaries end to end on the tiny synthetic set."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import calibration, loso, metrics, physio, prepare, runner, terms
from pinnmsk.config import CalibrationConfig, TrainConfig
from pinnmsk.data import dataset as ds_lib
from pinnmsk.data import loading, spec
from tests.test_train import _bin

CONFIG = TrainConfig(epochs=1, batch_size=64, n_colloc=2, physics_weights=(1.0,), leave_out="s1")


@pytest.fixture(scope="session")
def fold(tiny):
    """The tiny set with s1 left out, a run trained one epoch without it, and its Prepared (the
    tests read it, so the calibration's programs compile once for them all)."""
    data = loading.load_dataset(spec.load_spec(tiny))
    prep = prepare.prepare(data, CONFIG)
    params = runner.fit(prep, CONFIG, terms.run_weights(CONFIG, 1.0), None,
                        log=lambda m: None)[3].params
    return data, params, prep


def test_fold_holds_the_new_subject_out_of_training(fold):
    data, _, prep = fold
    s1 = data.subjects.index("s1")
    assert prep.new_subject == s1
    assert set(prep.train.subject.tolist()) == {0}
    assert {t.subject for t in prep.val_trials} == {0}
    assert [t.id for t in prep.test_trials] == ["s1/trial_1"]
    cal_ids = [t.id for t in prep.calibration["train"] + prep.calibration["validation"]]
    assert cal_ids == ["s1/trial_0", "s1/trial_0@val"]
    # the first 2 s: 80 % train, then 20 % validation a window later; nothing of the test part
    part = ds_lib.first_seconds(prep.calibration, 2.0, 100.0, prep.window, 0.2)
    n = [len(t.time_s) for t in part["train"] + part["validation"]]
    assert n == [200 - 40 - prep.window, 40]
    assert part["validation"][0].time_s[0] > part["train"][0].time_s[-1] + 0.29
    with pytest.raises(Exception, match="names no subject"):
        prepare.prepare(data, dataclasses.replace(CONFIG, leave_out="s9"))


def _poisoned(prep, angles_too: bool):
    """``prep`` whose new subject's test part is all NaN, and whose calibration recordings have
    NaN forces (and NaN angles with ``angles_too``)."""
    nan = lambda a: None if a is None else np.full_like(a, np.nan)
    test = [dataclasses.replace(t, excitation=nan(t.excitation), q_rad=nan(t.q_rad),
                                forces_n=nan(t.forces_n)) for t in prep.test_trials]
    cal = {k: [dataclasses.replace(t, forces_n=nan(t.forces_n),
                                   q_rad=nan(t.q_rad) if angles_too else t.q_rad)
               for t in v] for k, v in prep.calibration.items()}
    assert all(t.forces_n is not None for t in cal["train"])  # there were labels to leak
    return dataclasses.replace(prep, test_trials=test, calibration=cal)


@pytest.mark.parametrize("mode", ["emg", "emg+angles"])
def test_calibration_reads_no_test_part_and_no_force_label(fold, mode):
    """Calibrating with the new subject's test part and force labels (and, EMG only, its
    angles) replaced by NaN gives the same parameters as with them: it never reads them."""
    data, params, prep = fold
    cal = CalibrationConfig(mode=mode, epochs=2, adapt="head", batch_size=64)
    clean, rep = calibration.calibrate(prep, CONFIG, params, cal, log=lambda m: None)
    dirty, _ = calibration.calibrate(_poisoned(prep, mode == "emg"), CONFIG, params, cal,
                                     log=lambda m: None)
    assert rep["selected_epoch"] > 0  # something was learnt, so a leak would show
    assert not any("@test" in t for t in rep["train_trials"] + rep["validation_trials"])
    for a, b in zip(jax.tree_util.tree_leaves(clean), jax.tree_util.tree_leaves(dirty)):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)
    # only the new subject's parameters moved; the frozen encoder did not
    s0 = data.subjects.index("s0")
    for a, b in zip(jax.tree_util.tree_leaves(params["physio"]),
                    jax.tree_util.tree_leaves(clean["physio"])):
        np.testing.assert_array_equal(np.asarray(a)[s0], np.asarray(b)[s0])
    enc = lambda p: p["net"]["params"]["encoder"]["conv1"]["kernel"]
    np.testing.assert_array_equal(enc(params), enc(clean))


def test_held_parameters_stay_at_the_population(fold):
    """``hold``: the named parameters of the new subject stay at the trained subjects' mean,
    the others are identified."""
    data, params, prep = fold
    s1 = data.subjects.index("s1")
    pop = calibration.population(params["physio"], s1)
    cal = CalibrationConfig(epochs=2, batch_size=64, hold="f_max, emg_gain")
    assert cal.held == ("f_max", "emg_gain")
    out, rep = calibration.calibrate(prep, CONFIG, params, cal, log=lambda m: None)
    assert rep["selected_epoch"] > 0
    row = lambda k: np.asarray(out["physio"][k])[s1]
    for k in ("f_max", "emg_gain"):
        np.testing.assert_array_equal(row(k), np.asarray(pop[k])[0])
    assert not np.allclose(row("l_opt"), np.asarray(pop["l_opt"])[0])
    with pytest.raises(ValueError, match="names 'strength'"):
        CalibrationConfig(hold="f_max,strength")


def test_folded_input_scale_equals_scaling_the_input(fold):
    data, params, prep = fold
    rng = np.random.default_rng(0)
    w = jnp.asarray(rng.uniform(0, 1, (prep.window, data.model_of(0).n_muscles)), jnp.float32)
    r = jnp.asarray(rng.uniform(0.5, 2.0, data.model_of(0).n_muscles), jnp.float32)
    enc = lambda v, x: prep.net.apply(v, x, method=type(prep.net).encode)
    folded = calibration.fold_input_scale(params["net"], r)
    np.testing.assert_allclose(enc(folded, w), enc(params["net"], w * r), rtol=2e-5, atol=2e-5)
    assert not np.allclose(enc(params["net"], w * r), enc(params["net"], w), atol=1e-3)


def test_population_prior_and_start():
    raw = {"f_max": jnp.asarray([[0.0, 1.0], [2.0, 3.0], [9.0, 9.0]])}
    np.testing.assert_allclose(calibration.population(raw, 2)["f_max"], [[1.0, 2.0]])
    # the new subject starts where the run was: its input scale is 1 at the population's gain
    bounds = jnp.asarray([[0.5, 1.5], [0.8, 1.2], [0.95, 1.05], [0.05, 1.0], [0.01, 0.1],
                          [0.0, 0.3]])
    raw = {k: jnp.asarray([[-2.0, 0.5], [1.5, 3.0], [0.0, 0.0]])
           for k in (*physio.PHYSIO_NAMES, "shape_a")}
    start = calibration.population(raw, 2)
    np.testing.assert_allclose(calibration.input_scale(
        start, calibration.population_gain(raw, 2, bounds), bounds), 1.0, rtol=1e-6)
    pop = {"a": jnp.asarray([[1.0, 2.0]])}
    width = {"a": jnp.asarray([[0.5, 1.0]])}
    val = calibration.population_prior({"a": jnp.asarray([[2.0, 2.0]])}, pop, width)
    assert float(val) == pytest.approx(((1.0 / 0.5) ** 2 + 0.0) / 2)


def test_loso_summary_counts_and_gaps(tmp_path):
    rows = {"a": {"none": {"force_r2": 0.5}, "emg@all": {"force_r2": 0.7},
                  "within": {"force_r2": 0.9}},
            "b": {"none": {"force_r2": 0.6}, "emg@all": {"force_r2": 0.5},
                  "within": {"force_r2": 0.8}}}
    s = loso.summarise(rows, "force_r2")["emg@all"]
    assert s["mean"] == pytest.approx(0.6) and s["vs_none"]["better"] == 1
    assert s["vs_none"]["mean"] == pytest.approx(0.05)
    assert s["gap_closed"] == {"a": pytest.approx(0.5), "b": pytest.approx(-0.5)}
    assert "1/2 better" in loso.table(rows, "force_r2")
    # a curve of "all" alone (--seconds=0) has no budget to place it beside
    loso.plot_curve(str(tmp_path / "c.png"), rows, "force_r2", ["emg"], [0.0])
    assert (tmp_path / "c.png").stat().st_size > 0


def test_loso_mean_over_seeds():
    a = {"s": {"none": {"angle_r2": 0.2, "force_r2": 0.4}, "emg@all": {"angle_r2": 0.6}}}
    b = {"s": {"none": {"angle_r2": 0.4}, "emg@all": {"angle_r2": 0.8},
               "emg@2s": {"angle_r2": 0.1}}}
    m = loso.mean_over_seeds([a, b])
    # what every seed has, averaged; a condition or figure one seed lacks is left out
    assert m == {"s": {"none": {"angle_r2": pytest.approx(0.3)},
                       "emg@all": {"angle_r2": pytest.approx(0.7)}}}
    assert loso.mean_over_seeds([a]) is a


def test_loso_figures_tell_scale_from_shape():
    """Forces of the right time course at 60 % of the amplitude: R² well under 1, the shape r²
    1 and the amplitude ratio 0.6; a wrong time course lowers the shape r² instead; and the
    three parts add up to R² exactly for any prediction."""
    t = np.linspace(0.0, 6.0, 600)
    true = np.stack([100 + 50 * np.sin(t), 80 + 30 * np.cos(2 * t)], axis=1)
    q = np.sin(t)[:, None]
    fig = lambda f: loso.figures(metrics.evaluation_metrics(q, q, ["q"], f, true, ["a", "b"]))
    mean = true.mean(0)
    scaled = fig(mean + 0.6 * (true - mean))
    assert scaled["force_r2"] == pytest.approx(1 - 0.4**2, abs=1e-9)
    assert scaled["force_shape_r2"] == pytest.approx(1.0, abs=1e-9)
    assert scaled["force_sd_ratio"] == pytest.approx(0.6, abs=1e-9)
    assert scaled["force_offset_loss"] == pytest.approx(0.0, abs=1e-12)
    shifted = fig(np.roll(true, 100, axis=0) + 15.0)
    assert shifted["force_shape_r2"] < 0.8
    assert shifted["force_sd_ratio"] == pytest.approx(1.0, abs=1e-9)
    assert shifted["force_offset_loss"] == pytest.approx(
        np.mean((15.0 / true.std(0)) ** 2), rel=1e-9)
    noisy = fig(0.8 * true + 30.0 + np.random.default_rng(0).normal(0, 20, true.shape))
    for f in (scaled, shifted, noisy):
        assert f["force_r2"] == pytest.approx(
            f["force_shape_r2"] - f["force_scale_loss"] - f["force_offset_loss"], abs=1e-9)


def test_loso_and_calibrate_binaries(tiny, tmp_path):
    w = tmp_path / "loso"
    r = _bin("loso", f"--data_spec={tiny}", f"--workdir={w}", "--subjects=s0", "--epochs=1",
             "--batch_size=64", "--calibrate_epochs=1", "--seconds=2,0", "--seeds=2")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.load(open(w / "loso.json"))
    # two seeds: the second's runs in seed1/, per subject the mean of the two
    assert out["seeds"] == [0, 1] and os.path.isdir(w / "seed1" / "s0")
    per = [rs["s0"]["emg@all"]["angle_r2"] for rs in out["rows_per_seed"]]
    assert out["rows"]["s0"]["emg@all"]["angle_r2"] == pytest.approx(np.mean(per), abs=1e-12)
    assert "per seed" in r.stdout
    assert set(out["rows"]["s0"]) == {"none", "emg@2s", "emg@all", "emg+angles@2s",
                                      "emg+angles@all", "within", "ridge:none", "ridge:within",
                                      "ridge:emg+angles@2s", "ridge:emg+angles@all"}
    # the ridge fitted on the calibration recordings has no force labels to fit
    assert set(out["rows"]["s0"]["ridge:emg+angles@all"]) == {"angle_r2"}
    assert set(out["rows"]["s0"]["none"]) == {"angle_r2", "force_r2", "force_shape_r2",
                                              "force_scale_loss", "force_offset_loss",
                                              "force_sd_ratio"}
    assert "lost to the mean level" in r.stdout
    rep = out["calibration_reports"]["s0"]["emg@2s"]
    assert rep["recordings_s"] == pytest.approx(2.0, abs=0.05)
    assert not any("@test" in t for t in rep["train_trials"] + rep["validation_trials"])
    assert os.path.exists(w / "calibration_angle.png") and "| **pooled** |" in r.stdout
    # the fold's run calibrates as a run of its own, which evaluate reads back
    cal = tmp_path / "cal"
    r = _bin("calibrate", f"--workdir={w / 's0'}", f"--out={cal}", "--calibrate_epochs=1",
             "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.load(open(cal / "metrics.json"))
    assert list(m["test"]["per_trial"]) == ["s0/trial_1"] and "calibration" in m
    r = _bin("evaluate", f"--workdir={cal}", "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    again = json.load(open(cal / "metrics.json"))
    assert again["test"]["angle"]["wrist_flex"]["r2"] == pytest.approx(
        m["test"]["angle"]["wrist_flex"]["r2"], abs=1e-6)
    r = _bin("calibrate", f"--workdir={w / 'within'}", f"--out={tmp_path / 'x'}")
    assert r.returncode == 2 and "--leave_out" in r.stderr.splitlines()[-1]
    r = _bin("calibrate", f"--workdir={w / 's0'}", f"--out={tmp_path / 'y'}",
             "--calibrate_hold=f_max,strength")
    assert r.returncode == 2 and "--calibrate_hold" in r.stderr.splitlines()[-1]
    assert "Traceback" not in r.stderr and not (tmp_path / "y").exists()
