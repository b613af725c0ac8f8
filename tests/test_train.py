import dataclasses
import json
import os
import subprocess
import sys

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import (checkpoint, emg, evaluation, metrics, models, physio, prepare, runner,
                     tables, terms, train)
from pinnmsk.data import loading, spec
from pinnmsk.streaming import IncrementalCNN, Streamer
from tests import forkserver
from tests.conftest import ROOT

CFG = train.TrainConfig(epochs=2, batch_size=64, n_colloc=2, latent=16, checkpoint_every=1)


@pytest.fixture(scope="session")
def data(tiny):
    return loading.load_dataset(spec.load_spec(tiny))


def _params_close(a, b, rtol, atol):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def test_training_reduces_loss(data):
    cfg = dataclasses.replace(CFG, epochs=6)
    prep = prepare.prepare(data, cfg)
    _, hist, _, _ = runner.fit(prep, cfg, terms.run_weights(cfg, 0.1), None, log=lambda s: None)
    losses_ = [h["loss"][0] for h in hist]
    assert losses_[-1] < 0.6 * losses_[0], losses_
    values = np.array([h["terms"][0] for h in hist])
    ix = [terms.names().index(n) for n in ("angle", "force", "hill")]
    assert np.all(values[-1, ix] < values[0, ix])  # angle, force, Hill all improve


def test_progress_within_an_epoch(data):
    """A newcomer sees the first step (the compile) announced and timed, then progress inside
    each epoch with a rate and an ETA that leave the compile out."""
    prep = prepare.prepare(data, CFG)
    lines = []
    runner.fit(prep, CFG, terms.run_weights(CFG, 0.0), None, log=lines.append,
               progress_every_s=0.0)
    assert lines[0].startswith("first step") and "not an error" in lines[0]
    assert lines[1].startswith("first step done in")
    steps = len(prep.train) // CFG.batch_size
    inside = [ln for ln in lines if ln.startswith("  epoch 1/2: step ")]
    assert len(inside) == steps - 2 and "windows/s" in inside[0] and "ETA" in inside[0], lines
    assert sum(ln.startswith("  epoch 2/2: step ") for ln in lines) == steps - 1
    assert sum(ln.startswith("first step") for ln in lines) == 2  # once per fit


def test_effort_term_lowers_unlabelled_forces(data):
    cfg = dataclasses.replace(CFG, epochs=6, force_labels=False, effort_weight=50.0, hill_weight=1.0)
    w = terms.weights_for(cfg, [0.0, 1.0])
    np.testing.assert_array_equal(terms.stack(w), [[1, 0, 0, 0, 0, 0, 0, 0],
                                                   [1, 0, 1, 1, 50, 0, 0, 0]])  # effort: λ > 0
    prep = prepare.prepare(data, cfg)
    effort = {}
    for e in (0.0, 50.0):
        we = {**terms.take(w, 1), "effort": np.float32(e)}
        _, hist, _, _ = runner.fit(prep, cfg, we, None, log=lambda s: None)
        effort[e] = hist[-1]["terms"][0][terms.names().index("effort")]
    assert effort[50.0] < 0.5 * effort[0.0], effort


def test_weights_for_scales_hill_and_effort_with_lambda():
    cfg = dataclasses.replace(CFG, hill_weight=10.0, effort_weight=0.5, force_labels=False,
                              residual_weight=0.1, prior_weight=3.0, ceiling_weight=4.0)
    np.testing.assert_allclose(terms.stack(terms.weights_for(cfg, [0.0, 2.0])),
                               [[1, 0, 0, 0, 0, 0, 0, 0], [1, 0, 2, 20, 0.5, 0.2, 6, 4]])
    # a multiplier times λ is rounded to float32 once (runs recorded so resume bit for bit)
    assert terms.weights_for(cfg, [0.1])["residual"][0] == np.float32(0.1 * 0.1)


def test_prior_keeps_identified_parameters_near_the_lab_model(data):
    """Label-free, the physics terms move F_max, l_opt, l_ts; the prior (strong here) holds them
    within a fraction of its width of the lab's values."""
    cfg = dataclasses.replace(CFG, epochs=4, force_labels=False)
    prep = prepare.prepare(data, cfg)
    drift = {}
    for pw in (0.0, 100.0):
        w = terms.run_weights(dataclasses.replace(cfg, prior_weight=pw), 1.0)
        state, hist, _, _ = runner.fit(prep, cfg, w, None, log=lambda s: None)
        sc = physio.physio_scales(state.params["physio"], prep.consts.bounds)
        drift[pw] = max(float(np.abs(np.asarray(sc[k]) - 1).max()) for k in ("l_opt", "l_ts"))
        prior = physio.prior_penalty(sc, prep.consts.prior_width)  # the term the loss records
        recorded = hist[-1]["terms"][0][terms.names().index("prior")]
        assert recorded == pytest.approx(float(prior), rel=0.2, abs=1e-6)
    assert drift[100.0] < 0.5 * drift[0.0], drift


@pytest.fixture(scope="session")
def single_run(data):
    """``single_run(weights, seed)`` → (state, history, best) of one run of ``CFG``, each
    (λ, seed) trained once per test process: the sweep-equality tests compare with the same
    runs. One Prepared, so its compiled programs are shared too."""
    prep, runs = prepare.prepare(data, CFG), {}

    def run(weights, seed):
        key = (json.dumps(jax.tree.map(float, weights), sort_keys=True), seed)
        if key not in runs:
            state, hist, _, best = runner.fit(prep, dataclasses.replace(CFG, seed=seed), weights,
                                              None, log=lambda s: None)
            runs[key] = (state, hist, best)
        return runs[key]

    run.prep = prep
    return run


@pytest.mark.parametrize("layout", train.SWEEP_LAYOUTS)
def test_vmapped_sweep_equals_separate_runs(single_run, layout):
    lams = [0.0, 3.0]
    w = terms.weights_for(CFG, lams)
    swept, hist, _, _ = runner.fit(single_run.prep, CFG, w, None, log=lambda s: None,
                                   sweep_layout=layout)
    for k in range(len(lams)):
        single, h1, _ = single_run(terms.take(w, k), CFG.seed)
        _params_close(train.unstack_state(swept, k).params, single.params, rtol=2e-3, atol=2e-5)
        np.testing.assert_allclose([h["loss"][k] for h in hist], [h["loss"][0] for h in h1],
                                   rtol=1e-4)


@pytest.mark.parametrize("layout", train.SWEEP_LAYOUTS)
def test_seed_sweep_equals_single_seed_runs(single_run, layout):
    """Seeds as a sweep axis: (λ, seed) models in one program, each the single run with that
    seed (its own initialisation, data order and collocation draws)."""
    prep = single_run.prep
    lams, seeds = [0.0, 3.0, 3.0], [0, 0, 5]
    w = terms.weights_for(CFG, lams)
    swept, hist, _, best = runner.fit(prep, CFG, w, None, log=lambda s: None,
                                      sweep_layout=layout, seeds=seeds)
    for k, seed in enumerate(seeds):
        single, h1, b1 = single_run(terms.take(w, k), seed)
        _params_close(train.unstack_state(swept, k).params, single.params, rtol=2e-3, atol=2e-5)
        np.testing.assert_allclose([h["loss"][k] for h in hist], [h["loss"][0] for h in h1],
                                   rtol=1e-4)
        np.testing.assert_allclose(best.score[k], b1.score[0], rtol=1e-4)
    # the seeds differ: same λ, other seed, other model
    a, b = (train.unstack_state(swept, k).params["net"] for k in (1, 2))
    assert not np.allclose(jax.tree_util.tree_leaves(a)[0], jax.tree_util.tree_leaves(b)[0])
    with pytest.raises(ValueError, match="one seed per model"):
        runner.fit(prep, CFG, w, None, log=lambda s: None, seeds=[0, 1])


def test_refits_reuse_programs_only_for_the_same_settings(data):
    """runner.fit keeps its compiled programs in the Prepared: a refit with the same optimiser
    settings (another seed) reuses them; other settings (learning rate) get their own (their
    numbers: the resume and sweep-equality tests refit one Prepared and compare)."""
    cfg = dataclasses.replace(CFG, epochs=1)
    w = terms.run_weights(cfg, 1.0)
    prep = prepare.prepare(data, cfg)
    runner.fit(prep, cfg, w, None, log=lambda s: None)
    (first,) = prep.programs.values()
    steps = len(prep.train) // cfg.batch_size
    assert runner.programs(prep, dataclasses.replace(cfg, seed=3), steps, True, False) is first
    assert list(prep.programs.values()) == [first]
    other = runner.programs(prep, dataclasses.replace(cfg, learning_rate=1e-2), steps, True, False)
    assert other is not first and len(prep.programs) == 2
    assert runner.programs(prep, cfg, steps, False, False) is not first  # data-only program


def test_checkpoint_resume_equals_uninterrupted(data, tmp_path):
    cfg = dataclasses.replace(CFG, epochs=3)
    prep = prepare.prepare(data, cfg)
    w = terms.run_weights(cfg, 1.0)
    full, hist_full, _, _ = runner.fit(prep, cfg, w, str(tmp_path / "a"), log=lambda s: None)
    runner.fit(prep, cfg, w, str(tmp_path / "b"), log=lambda s: None, stop_after_epochs=1)
    assert sorted(os.listdir(tmp_path / "b" / "checkpoints")) == ["1"]
    logs = []
    resumed, hist_res, _, _ = runner.fit(prep, cfg, w, str(tmp_path / "b"), log=logs.append)
    assert any("resuming from the checkpoint of epoch 1" in s for s in logs)
    assert len(hist_res) == 3
    _params_close(full.params, resumed.params, rtol=1e-6, atol=1e-7)
    assert int(resumed.step) == int(full.step)
    # a different config in the same workdir is refused
    with pytest.raises(checkpoint.ConfigMismatch, match="different seed"):
        runner.fit(prep, dataclasses.replace(cfg, seed=1), w, str(tmp_path / "b"),
                   log=lambda s: None)
    # a checkpoint whose parameters do not fit the model (e.g. from another version): one line
    other = prepare.prepare(data, dataclasses.replace(cfg, model="mlp"))
    tx = train.make_optimizer(cfg, 1)
    template = jax.eval_shape(lambda: prepare.new_state(other, tx, 0))
    named = r"do not fit this model \(the model has \['net'\]\['params'\]\['encoder'\]\['Dense_0'\]"
    with pytest.raises(checkpoint.ConfigMismatch, match=named):
        checkpoint.restore_latest(str(tmp_path / "b"), template)


def test_divergence_stops_and_keeps_checkpoint(data, tmp_path):
    prep = prepare.prepare(data, CFG)
    w = terms.run_weights(CFG, 1.0)
    runner.fit(prep, CFG, w, str(tmp_path / "d"), log=lambda s: None, stop_after_epochs=1)
    prep.train.emg[:] = np.nan  # from here on every loss is NaN
    with pytest.raises(runner.TrainingDiverged,
                       match=r"diverged at epoch 2 .* checkpoint \(epoch 1\) is kept"):
        runner.fit(prep, CFG, w, str(tmp_path / "d"), log=lambda s: None)
    assert sorted(os.listdir(tmp_path / "d" / "checkpoints")) == ["1"]


def test_autodiff_acceleration_equals_finite_difference():
    head = models.ContinuousHead(2, 3, 0.1, (0.0, 0.1), (0.5, 0.4), (10.0, 20.0, 30.0))
    z = jax.random.normal(jax.random.PRNGKey(0), (8,))
    with jax.enable_x64(True):
        params = head.init(jax.random.PRNGKey(1), z, 0.0)
        params = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), params)
        dec = lambda t: head.apply(params, z.astype(jnp.float64), t)
        tau = jnp.float64(-0.03)
        q, qd, qdd, f, fd = models.kinematics(dec, tau)
        h1 = 1e-6  # central-difference truncation error h^2 q'''/6 stays below 1e-8 relative
        np.testing.assert_allclose(qd, (dec(tau + h1)[0] - dec(tau - h1)[0]) / (2 * h1),
                                   rtol=1e-6, atol=1e-8)
        h = 2e-5  # truncation h^2 q(4)/12 ~ 1e-5 relative; round-off eps q/h^2 ~ 1e-6
        qp, qm = dec(tau + h)[0], dec(tau - h)[0]
        np.testing.assert_allclose(qdd, (qp - 2 * q + qm) / h**2, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fd, (dec(tau + h1)[1] - dec(tau - h1)[1]) / (2 * h1),
                                   rtol=1e-6, atol=1e-6)  # Ḟ for the compliant tendon
        _, qd_fd, qdd_fd, _, fd_fd = models.kinematics_fd(dec, tau, step_s=h)
        np.testing.assert_allclose(qdd_fd, qdd, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(fd_fd, fd, rtol=1e-4, atol=1e-4)
        assert np.all(np.asarray(f) >= 0)


@pytest.mark.parametrize("width", [100, 37])
@pytest.mark.parametrize("strides", [(1, 2, 2), (2, 3, 1)])
def test_strided_cnn_is_causal_and_sees_the_last_sample(width, strides):
    enc = models.CNNEncoder(strides=strides)
    x = jax.random.normal(jax.random.PRNGKey(0), (width, 5))
    params = enc.init(jax.random.PRNGKey(1), x)

    def last_row(x):  # the deepest layer's last output, which feeds z directly
        _, st = enc.apply(params, x, capture_intermediates=True)
        return st["intermediates"][f"conv{len(strides) - 1}"]["__call__"][0][-1]

    dep = np.abs(np.asarray(jax.jacobian(last_row)(x))).sum(axis=(0, 2))  # (W,)
    assert dep[-1] > 0  # not stale: the newest sample reaches the end of every layer
    rf = 1 + sum((enc.kernel - 1) * int(np.prod(strides[:i])) for i in range(len(strides)))
    assert np.count_nonzero(dep) == rf  # exactly the causal receptive field, no padding leak


@pytest.mark.parametrize("width,stride", [(100, 1), (100, 2), (37, 3)])
def test_causal_conv_matmul_equals_lax_and_nn_conv(width, stride):
    x = jax.random.normal(jax.random.PRNGKey(0), (width, 4))
    lax_conv = models.CausalConv(8, 5, stride, "lax")
    params = lax_conv.init(jax.random.PRNGKey(1), x)
    y = lax_conv.apply(params, x)
    np.testing.assert_allclose(models.CausalConv(8, 5, stride, "matmul").apply(params, x), y,
                               rtol=1e-5, atol=1e-5)
    pad = 4 + (1 - width) % stride
    ref = flax.linen.Conv(8, (5,), strides=(stride,), padding=[(pad, 0)]).apply(params, x)
    np.testing.assert_allclose(ref, y, rtol=1e-5, atol=1e-5)
    assert y.shape == (-(-(width - 1) // stride) + 1, 8)


def test_metrics_known_values():
    true = np.array([0.0, 1.0, 2.0, 3.0])
    m = metrics.regression_metrics(true + np.array([0.1, -0.1, 0.1, -0.1]), true)
    assert m["rmse"] == pytest.approx(0.1) and m["nrmse"] == pytest.approx(0.1 / 3)
    assert m["r2"] == pytest.approx(1 - 0.04 / 5.0)
    assert metrics.regression_metrics(-true, true)["pearson_r"] == pytest.approx(-1.0)


def test_predict_equals_evaluate_on_a_test_trial(data, single_run):
    """The causal pipeline end to end: streaming a test trial's raw EMG file (what predict
    does) gives evaluate's predictions for that trial, window for window."""
    from pinnmsk.data import opensim

    prep = single_run.prep  # CFG's, its predict program already compiled where it ran
    state = prepare.new_state(prep, train.make_optimizer(CFG, 1), 0)
    _, per_trial = evaluation.evaluate(prep, state.params)
    spec_ = data.spec
    trial = next(t for t in spec_.trials if t.id == per_trial[0]["id"])
    raw = opensim.read_table(spec_.resolve(trial.emg)).select(
        [spec_.channel_of[m] for m in spec_.muscle_names])
    cfg = emg.EnvelopeConfig(fs_hz=spec_.emg.sampling_rate_hz, lowpass_hz=spec_.emg.lowpass_hz)
    s = data.subjects.index(trial.subject)
    streamer = Streamer(emg.EnvelopeFilter.from_config(cfg), data.normaliser_v[s], 10,
                        prep.window, prep.net, state.params["net"], rest_v=data.rest_v[s])
    qs, fs = [], []
    for lo in range(0, len(raw), 100):
        _, q, f = streamer.push(raw[lo:lo + 100])
        qs.append(q)
        fs.append(f)
    q, f = np.concatenate(qs), np.concatenate(fs)
    first = prep.window - 1  # evaluate's first window ends here; predict warms up before it
    n = len(per_trial[0]["q_pred"])
    np.testing.assert_allclose(q[first:first + n], per_trial[0]["q_pred"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f[first:first + n], per_trial[0]["f_pred"], rtol=1e-4, atol=1e-3)


def test_streaming_chunk_size_invariant(data, single_run):
    prep = single_run.prep
    tx = train.make_optimizer(CFG, 1)
    st = prepare.new_state(prep, tx, 0)
    cfg = emg.EnvelopeConfig(fs_hz=1000.0)
    raw = 1e-4 * np.random.default_rng(0).standard_normal((1500, 5)).astype(np.float32)

    def run(chunk):
        s = Streamer(emg.EnvelopeFilter.from_config(cfg), data.normaliser_v[0], 10, prep.window,
                     prep.net, st.params["net"])
        out = [s.push(raw[i:i + chunk]) for i in range(0, len(raw), chunk)]
        ticks = np.concatenate([t + i for (t, _, _), i in zip(out, range(0, len(raw), chunk))])
        return ticks, np.concatenate([o[1] for o in out]), np.concatenate([o[2] for o in out])

    t1, q1, f1 = run(1500)
    t2, q2, f2 = run(37)
    np.testing.assert_array_equal(t1, np.arange(0, 1500, 10))
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_allclose(q1, q2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f1, f2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window,strides", [(100, (1, 2, 2)), (50, (1, 2, 2)), (37, (2, 3, 1))])
def test_incremental_cnn_stream_equals_whole_windows(window, strides):
    """The CNN streamed tick by tick (each layer's new output, the padded start recomputed) is
    the whole-window network on a stream several windows long, for windows that align with the
    strides differently (100 and 50 ticks: ≡ 0 and 2 mod 4) and strides that start at 2."""
    net = models.make_model("cnn", 1, 5, 0.5, [0.0], [1.0], [100.0] * 5).clone(
        encoder=models.CNNEncoder(strides=strides))
    variables = net.init(jax.random.PRNGKey(1), np.zeros((window, 5), np.float32),
                         np.zeros((1,), np.float32))
    rng = np.random.default_rng(0)
    t = np.arange(4 * 10 * window)[:, None] / 1000.0
    level = 1.1 + np.sin(2 * np.pi * rng.uniform(0.5, 3.0, 5) * t + rng.uniform(0, 6, 5))
    raw = (1e-4 * level * rng.standard_normal(level.shape)).astype(np.float32)

    def run(incremental):
        s = Streamer(emg.EnvelopeFilter.from_config(emg.EnvelopeConfig(fs_hz=1000.0)),
                     np.full(5, 1e-5), 10, window, net, variables, incremental=incremental)
        assert isinstance(s.model, IncrementalCNN) == incremental
        out = [s.push(raw[i:i + 37]) for i in range(0, len(raw), 37)]
        return np.concatenate([o[1] for o in out]), np.concatenate([o[2] for o in out])

    (q, f), (q_ref, f_ref) = run(True), run(False)
    assert len(q) == 4 * window and np.ptp(f_ref[window:], axis=0).min() > 0.2  # outputs move
    np.testing.assert_allclose(q, q_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(f, f_ref, rtol=1e-5, atol=1e-4)


# ----------------------------------------------------------------------------- binaries


def _bin(name, *args):
    """The binary ``name`` from this test process's fork server (tests/forkserver.py)."""
    return forkserver.run(f"experiments.{name}", *args, cwd=ROOT)


def _interpreter(name, *args):
    """The binary ``name`` in an interpreter of its own, as a user starts it."""
    return subprocess.run([sys.executable, "-m", f"experiments.{name}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_binaries_end_to_end(tiny, tmp_path):
    """The README's path, train then predict, each in an interpreter of its own as a user
    starts it; resume, evaluate and a refused predict from the fork server."""
    w = tmp_path / "run"
    common = [f"--data_spec={tiny}", f"--workdir={w}", "--epochs=2", "--batch_size=64",
              "--n_colloc=2"]
    r = _interpreter("train", *common)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epoch 2/2" in r.stderr and "windows/s" in r.stderr and "ETA" in r.stderr
    m = json.load(open(w / "metrics.json"))
    a = m["test"]["angle"]["wrist_flex"]
    assert set(a) >= {"rmse", "rmse_deg", "nrmse", "r2", "pearson_r"}
    assert set(m["test"]["force"]) == {"FCR", "FCU", "ECRL", "ECRB", "ECU", "mean"}
    s1 = m["identified_params"]["s1"]["ECU"]
    assert 0.5 <= s1["f_max_scale"] <= 1.5 and 100 < s1["f_max_n_true"] < 400
    assert sorted(os.listdir(w / "plots")) == ["loss_curves.png", "test_s0_trial_1.png",
                                               "test_s1_trial_1.png"]  # every test trial
    # selection on validation data only; validation and test blocks, per trial and subject
    assert m["selection"]["epoch"] in (1, 2) and m["selection"]["validation_score"] > 0
    assert m["dataset"]["envelope"] == "causal"
    assert set(m["validation"]["per_trial"]) == {"s0/trial_0@val", "s1/trial_0@val"}
    assert set(m["test"]["per_subject"]) == {"s0", "s1"}
    assert set(m["test"]["per_trial"]) == {"s0/trial_1", "s1/trial_1"}
    tb = _scalars(w / "tensorboard")
    assert [step for step, _ in tb["loss/total"]] == [1, 2]
    assert set(tb) == {"loss/total", "loss/angle", "loss/force", "loss/dynamics", "loss/hill",
                       "loss/effort", "loss/residual", "loss/prior", "loss/ceiling"}
    np.testing.assert_allclose([v for _, v in tb["loss/total"]],
                               [h["loss"][0] for h in json.load(open(w / "history.json"))],
                               rtol=1e-6)
    # re-running the same command resumes and does no further epochs
    r = _bin("train", *common)
    assert r.returncode == 0 and "resuming from the checkpoint of epoch 2" in r.stderr
    r = _bin("evaluate", f"--data_spec={tiny}", f"--workdir={w}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.load(open(w / "metrics.json"))["test"]["angle"]["wrist_flex"]["r2"] == \
        pytest.approx(a["r2"], abs=1e-6)
    out = tmp_path / "pred.csv"
    emg_file = os.path.join(os.path.dirname(tiny), "s0", "trial_1", "emg.csv")
    # two subjects: which one's normaliser must be said
    r = _bin("predict", f"--data_spec={tiny}", f"--workdir={w}", f"--emg={emg_file}",
             f"--out={out}")
    assert r.returncode == 2 and "--subject is required" in r.stderr and not out.exists()
    r = _interpreter("predict", f"--workdir={w}", f"--emg={emg_file}", f"--out={out}",
                     "--subject=s0")
    assert r.returncode == 0, r.stderr[-3000:]  # the run's own spec by default
    lines = open(out).read().splitlines()
    assert lines[0] == "time,wrist_flex_deg,FCR_n,FCU_n,ECRL_n,ECRB_n,ECU_n"
    # 4 s at 100 Hz, from the first tick with a full 0.3 s window behind it
    assert len(lines) == 1 + 400 - 29 and float(lines[1].split(",")[0]) == pytest.approx(0.29)


def test_sweep_binary_with_seeds(tiny, tmp_path):
    """--seeds=2: a result per (λ, seed), test figures as mean ± sd over seeds, a choice per
    seed, and λ's paired validation difference from λ = 0 over seeds × trials."""
    sw = tmp_path / "sweep"
    r = _bin("sweep", f"--data_spec={tiny}", f"--workdir={sw}", "--epochs=1", "--batch_size=64",
             "--n_colloc=2", "--physics_weights=0,1", "--seeds=2", "--seed=3", "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.load(open(sw / "sweep.json"))
    res = out["results"]
    assert [(x["physics_weight"], x["seed"]) for x in res] == [(0, 3), (0, 4), (1, 3), (1, 4)]
    # a TensorBoard folder per model (its index, its λ), the physics terms logged where λ > 0
    assert sorted(os.listdir(sw / "tensorboard")) == ["lambda_0_0", "lambda_1_0", "lambda_2_1",
                                                      "lambda_3_1"]
    assert [s for s, _ in _scalars(sw / "tensorboard" / "lambda_2_1")["loss/dynamics"]] == [1]
    r2 = [x["test"]["angle"]["wrist_flex"]["r2"] for x in res]
    assert r2[0] != r2[1]  # the seeds are different models
    a = out["test_across_seeds"]["0"]["angle"]["wrist_flex"]["r2"]
    assert a["per_seed"] == pytest.approx(r2[:2])
    assert a["mean"] == pytest.approx(np.mean(r2[:2]))
    assert a["sd"] == pytest.approx(np.std(r2[:2], ddof=1))
    ch = out["chosen_on_validation"]
    assert [p["seed"] for p in ch["per_seed"]] == [3, 4] and ch["physics_weight"] in (0, 1)
    assert ch["holds_across_seeds"] == (len({p["physics_weight"] for p in ch["per_seed"]}) == 1)
    vs = out["vs_lambda0_by_weight"]
    if vs:  # needs two or more validation trials
        assert set(vs) == {"1"} and vs["1"]["n_seeds"] == 2
    ens = out["ensemble"]
    assert ens["seeds"] == 2 and ens["physics_weight"] == ch["physics_weight"]
    band = ens["angle_band"]["wrist_flex"]
    assert band["calibrated"] and band["calibration_coverage"] >= 0.9
    assert 0.0 <= band["test_coverage"] <= 1.0 and band["test_mean_width"] > 0
    assert set(ens["force_band"]) == {"FCR", "FCU", "ECRL", "ECRB", "ECU"}
    assert "r2" in ens["test_of_mean"]["angle"]["wrist_flex"]
    # the README table of this sweep: a row per λ with mean ± sd over seeds, then the ensemble
    rows = tables.sweep_rows(out, ["wrist_flex"])
    assert len(rows) == 3 and rows[0][1] == f"{a['mean']:.3f} ± {a['sd']:.3f}"
    assert "ensemble" in rows[2][0] and rows[2][1] == \
        f"{ens['test_of_mean']['angle']['wrist_flex']['r2']:.3f}"
    # predict from the sweep: the chosen λ's seeds' mean and its band per column
    emg_file = os.path.join(os.path.dirname(tiny), "s0", "trial_1", "emg.csv")
    out = tmp_path / "pred.csv"
    r = _bin("predict", f"--workdir={sw}", f"--emg={emg_file}", f"--out={out}", "--subject=s0")
    assert r.returncode == 0, r.stderr[-3000:]
    head = open(out).readline().strip().split(",")
    names = ["wrist_flex_deg", "FCR_n", "FCU_n", "ECRL_n", "ECRB_n", "ECU_n"]
    assert head == ["time"] + names + [f"{n}_lo" for n in names] + [f"{n}_hi" for n in names]
    v = np.loadtxt(out, delimiter=",", skiprows=1)
    mid, lo, hi = v[:, 1:7], v[:, 7:13], v[:, 13:19]
    assert np.all(lo <= mid) and np.all(mid <= hi) and np.all(hi - lo > 0)
    np.testing.assert_allclose(mid - lo, hi - mid, rtol=1e-3, atol=1e-3)
    (sw / "sweep.json").write_text(json.dumps(_without_ensemble(sw)))
    r = _bin("predict", f"--workdir={sw}", f"--emg={emg_file}", f"--out={out}2", "--subject=s0")
    assert r.returncode == 2 and "without an ensemble" in r.stderr and "Traceback" not in r.stderr


def test_table_interval_says_whether_it_excludes_zero():
    worse = {"mean_difference": 0.03, "standard_error": 0.01}
    assert tables.interval(worse) == "+0.030 [+0.010, +0.050] (worse than λ = 0)"
    assert "(better than λ = 0)" in tables.interval({"mean_difference": -0.03,
                                                     "standard_error": 0.01})
    assert "(includes 0: no result)" in tables.interval({"mean_difference": 0.03,
                                                         "standard_error": 0.02})


def test_train_with_seeds_is_a_sweep_of_one_weight(tiny, tmp_path):
    w = tmp_path / "run"
    r = _bin("train", f"--data_spec={tiny}", f"--workdir={w}", "--epochs=1", "--batch_size=64",
             "--n_colloc=2", "--physics_weight=1", "--seeds=2", "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.load(open(w / "sweep.json"))
    assert [(x["physics_weight"], x["seed"]) for x in out["results"]] == [(1, 0), (1, 1)]
    assert out["ensemble"]["physics_weight"] == 1 and out["ensemble"]["seeds"] == 2


def _without_ensemble(sw) -> dict:
    d = json.load(open(sw / "sweep.json"))
    d.pop("ensemble")
    return d


def test_paired_over_seeds_pools_seed_trial_pairs():
    a = [np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.5])]
    b = [np.array([1.5, 2.5, 3.0]), np.array([2.5, 3.0, 3.0])]
    v = evaluation.paired_over_seeds(a, b)
    d = np.concatenate(a) - np.concatenate(b)
    assert v["n_trials"] == 6 and v["n_seeds"] == 2
    assert v["mean_difference"] == pytest.approx(d.mean())
    assert v["standard_error"] == pytest.approx(d.std(ddof=1) / np.sqrt(6))


def _scalars(folder) -> dict:
    """{tag: [(step, value)]} from the TensorBoard event files in ``folder`` (TFRecord framing,
    Event protos), read without TensorFlow."""
    from tensorboardX.proto import event_pb2
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.startswith("events.out.tfevents"):
            continue
        data = open(os.path.join(folder, name), "rb").read()
        pos = 0
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 8], "little")
            ev = event_pb2.Event.FromString(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
            for v in ev.summary.value:
                out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


@pytest.mark.parametrize("name,args,msg", [
    ("train", ["--data_spec=/no/such.toml"], "data spec not found"),
    ("train", ["--data_spec=data_specs/synthetic_wrist.toml", "--label_fraction=0"],
     "--label_fraction=0.0 must be in (0, 1]"),
    ("train", [], "missing required flag(s): --data_spec"),
    ("train", ["--data_spec=data_specs/synthetic_wrist.toml", "--epochs=many"], "--epochs=many"),
    ("sweep", ["--data_spec=data_specs/synthetic_wrist.toml", "--physics_weights=a,b"],
     "--physics_weights='a,b' must be comma-separated"),
    ("train", ["--data_spec=data_specs/synthetic_wrist.toml", "--term_weights=jerk=1"],
     "--term_weights: 'jerk' is no registered loss term"),
    ("evaluate", [], "config.json: not found"),
])
def test_binaries_bad_input_one_line(tmp_path, name, args, msg):
    r = _bin(name, f"--workdir={tmp_path / 'w'}", *args)
    assert r.returncode == 2, r.stderr[-2000:]
    assert msg in r.stderr.strip().splitlines()[-1] and "Traceback" not in r.stderr
    assert not os.path.exists(tmp_path / "w" / "metrics.json")


def test_help_lists_flags():
    for name in ("train", "evaluate", "sweep", "predict", "simulate", "diagnose", "loso"):
        r = _bin(name, "--help")
        assert r.returncode == 0 and "--data_spec" in r.stdout, name
        if name in ("train", "sweep", "diagnose", "loso"):
            assert "--data_spec: (required)" in r.stdout, name
        if name != "simulate" and name != "diagnose":
            assert "--workdir: (required)" in r.stdout, name
        if name == "evaluate":  # what it evaluates, as train selects it
            assert "selected on validation" in r.stdout and "newest checkpoint" in r.stdout
        if name == "loso":  # the calibration's settings, but not what loso varies
            assert "--calibrate_epochs:" in r.stdout and "--calibrate_mode" not in r.stdout
        if name == "train":  # one flag per TrainConfig field, with the field's help
            for f in dataclasses.fields(train.TrainConfig):
                assert f"--{f.name}:" in r.stdout or f"--[no]{f.name}:" in r.stdout, f.name
                assert f.metadata["help"].split()[0] in r.stdout, f.name


def test_binaries_answer_help_without_jax():
    """Importing a binary defines its flags without importing JAX or the library's numerics,
    so --help answers in a fraction of a second (the work imports them inside main)."""
    for b in ("train", "sweep", "evaluate", "predict", "diagnose", "simulate", "calibrate",
              "table", "loso"):
        code = (f"import sys, experiments.{b}\n"
                "print([m for m in sys.modules if m in ('jax', 'flax', 'optax', 'scipy')"
                " or m in ('pinnmsk.train', 'pinnmsk.losses', 'pinnmsk.emg')])\n")
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip() == "[]", (b, r.stdout)


def test_config_checks_itself():
    """TrainConfig is the single definition of a run's settings; an invalid value is refused
    on construction with the field's name (the binaries turn it into a usage error)."""
    for bad, msg in ((dict(label_fraction=0.0), "label_fraction=0.0 must be in"),
                     (dict(model="resnet"), "model=resnet must be one of cnn, mlp, gru"),
                     (dict(epochs=0), "epochs=0 must be >= 1"),
                     (dict(prior_weight=-1.0), "prior_weight=-1.0 must be >= 0"),
                     (dict(grad_clip=0.0), "grad_clip=0.0 must be > 0")):
        with pytest.raises(ValueError, match=msg):
            train.TrainConfig(**bad)


@pytest.mark.parametrize("kind,accel", [("mlp", "autodiff"), ("gru", "autodiff"), ("cnn", "fd")])
def test_baselines_train(data, kind, accel):
    cfg = dataclasses.replace(CFG, model=kind, accel=accel, epochs=3)
    prep = prepare.prepare(data, cfg)
    _, hist, _, _ = runner.fit(prep, cfg, terms.run_weights(cfg, 1.0), None, log=lambda s: None)
    assert np.isfinite(hist[-1]["loss"][0]) and hist[-1]["loss"][0] < hist[0]["loss"][0]


def test_paired_comparison_with_lambda0():
    base = np.array([0.10, 0.20, 0.15, 0.30])
    better = evaluation.paired_vs_baseline(base - np.array([0.02, 0.021, 0.019, 0.02]), base)
    assert better["better_beyond_noise"] and better["mean_difference"] == pytest.approx(-0.02)
    assert better["standard_error"] == pytest.approx(np.std([0.02, 0.021, 0.019, 0.02], ddof=1) / 2)
    noisy = evaluation.paired_vs_baseline(base + np.array([-0.05, 0.04, -0.03, 0.03]), base)
    assert not noisy["better_beyond_noise"] and abs(noisy["t"]) < 2


def test_divergence_at_the_first_epoch_claims_no_checkpoint(data, tmp_path):
    """A loss that is NaN from the start stops the run; the message must not point at a
    checkpoint of epoch 0 that was never written."""
    cfg = dataclasses.replace(CFG, epochs=1, learning_rate=1e30)
    prep = prepare.prepare(data, cfg)
    with pytest.raises(runner.TrainingDiverged, match="no checkpoint was written") as err:
        runner.fit(prep, cfg, terms.run_weights(cfg, 1.0), str(tmp_path / "w"),
                   log=lambda s: None)
    assert "epoch 0" not in str(err.value)


def test_config_files_and_flag_precedence(tiny, tmp_path):
    """configs/*.py give TrainConfigs; --config's fields apply, flags given on the command line
    override them, and a bad file is a one-line usage error."""
    import runpy

    for path in sorted((ROOT / "configs").glob("*.py")):
        assert isinstance(runpy.run_path(str(path))["get_config"](), train.TrainConfig), path
    assert runpy.run_path(str(ROOT / "configs" / "sweep.py"))["get_config"]().physics_weights \
        == (0.0, 1.0, 10.0)
    cfg = tmp_path / "c.py"
    cfg.write_text("from pinnmsk.config import TrainConfig\n\n\ndef get_config():\n"
                   "    return TrainConfig(epochs=1, batch_size=64, n_colloc=2, seed=3,"
                   " physics_weights=(2.0,))\n")
    w = tmp_path / "run"
    r = _bin("train", f"--data_spec={tiny}", f"--workdir={w}", f"--config={cfg}", "--seed=5",
             "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not (w / "plots").exists() and (w / "metrics.json").exists()
    rec = json.load(open(w / "config.json"))
    assert (rec["epochs"], rec["batch_size"], rec["seed"], rec["physics_weights"]) == \
        (1, 64, 5, [2.0])
    r = _bin("train", f"--data_spec={tiny}", f"--workdir={tmp_path / 'x'}",
             f"--config={tmp_path / 'none.py'}")
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("from pinnmsk.config import TrainConfig\n\n\ndef get_config():\n"
                   "    return TrainConfig(epochs=0)\n")
    r = _bin("train", f"--data_spec={tiny}", f"--workdir={tmp_path / 'y'}", f"--config={bad}")
    assert r.returncode == 2 and "epochs=0 must be >= 1" in r.stderr, r.stderr[-2000:]


def test_loss_curves_show_what_the_run_uses(tmp_path):
    """loss_curves.png: only the terms some model weights (no flat 1e-12 residual, no prior at
    weight 0), the validation score beside the training loss, the selected epoch marked."""
    from pinnmsk import plots

    names = terms.names()
    hist = [{"epoch": e, "loss": [1.0 / e, 2.0 / e], "validation": [0.5 + (e - 2) ** 2, None],
             "terms": [[0.1 * e] * len(names)] * 2} for e in (1, 2, 3)]
    w = {n: np.zeros(2) for n in names}
    w["angle"][:] = 1.0
    w["dynamics"][1] = 1.0
    c = plots.loss_curves(hist, w)
    assert list(c["terms"]) == ["angle", "dynamics"]
    assert c["selected"] == [2, None]
    np.testing.assert_allclose(c["validation"][:, 0], [1.5, 0.5, 1.5])
    assert np.isnan(c["validation"][:, 1]).all()
    p = tmp_path / "loss.png"
    plots.plot_losses(str(p), hist, ["λ=0", "λ=1"], w)
    assert p.stat().st_size > 5000
    # a trial's figure: every panel (angles and each force) has its legend
    t = np.linspace(0, 1, 50)
    trial = {"id": "s0/t", "time_s": t, "q_true": t[:, None], "q_pred": t[:, None],
             "f_true": np.ones((50, 2)), "f_pred": np.ones((50, 2))}
    fig = plots.trial_figure(trial, ["q"], ["A", "B"])
    assert len(fig.axes) == 3 and all(ax.get_legend() is not None for ax in fig.axes)
    # with an ensemble's bands: a shaded band in every panel, named in its legend
    band = dict(trial, q_band=(t[:, None] - 0.1, t[:, None] + 0.1),
                f_band=(np.zeros((50, 2)), 2 * np.ones((50, 2))), band_label="90 % band")
    fig = plots.trial_figure(band, ["q"], ["A", "B"])
    for ax in fig.axes:
        assert len(ax.collections) == 1
        assert "90 % band" in [x.get_text() for x in ax.get_legend().get_texts()]


def test_untrained_force_head_is_not_reported_as_a_result(data):
    """λ = 0 without force labels: nothing trains the force head, so metrics.json keeps its
    figures apart (force_untrained, with a note) and the summary says so; λ > 0 reports them."""
    from pinnmsk import run_report

    cfg = dataclasses.replace(CFG, epochs=1, force_labels=False, physics_weights=(0.0,))
    prep = prepare.prepare(data, cfg)
    _, _, _, best = runner.fit(prep, cfg, terms.run_weights(cfg, 0.0), None,
                               log=lambda s: None)
    block, _ = run_report.metrics_block(prep, best.params, cfg, {})
    assert "force" not in block["test"] and "force_untrained" in block["test"]
    assert all("force" not in b for b in block["test"]["per_trial"].values())
    assert "force head not trained" in run_report.summary(block["test"])
    lam = dataclasses.replace(cfg, physics_weights=(1.0,))
    block, _ = run_report.metrics_block(prep, best.params, lam, {})
    assert "force" in block["test"] and "force_note" not in block["test"]
