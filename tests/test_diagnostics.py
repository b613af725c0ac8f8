import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import diagnostics, msk, ridge, sanity, simulator
from pinnmsk.data import loading, spec, synthetic
from tests.conftest import ROOT
from tests import forkserver


@pytest.fixture(scope="session")
def model():
    path = ROOT / "data_specs" / "synthetic_wrist.toml"
    return loading.build_model(spec.load_spec(str(path)))


@pytest.fixture(scope="session")
def trajectory(model):
    dt, n = 1e-3, 4000
    t = jnp.arange(n) * dt
    target = simulator.random_target(jax.random.PRNGKey(3), t, jnp.array([-0.8]), jnp.array([0.8]))
    cc = simulator.random_cocontraction(jax.random.PRNGKey(4), t, model.n_muscles)
    return jax.jit(lambda m: simulator.simulate_tracking(m, target, cc, dt))(model)


def test_ridge_r2_separates_signal_from_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 8))
    y = x @ rng.normal(size=8) + 0.01 * rng.normal(size=600)
    fit = ridge.ridge_r2(x[:400], y[:400], x[400:], y[400:])
    assert fit[1e-2] > 0.999
    noise = ridge.ridge_r2(x[:400], rng.normal(size=400), x[400:], rng.normal(size=200))
    assert max(noise.values()) < 0.05
    lag = ridge.lagged(np.arange(10.0)[:, None], np.array([0, 3]))
    np.testing.assert_array_equal(lag[0], [3.0, 0.0])
    assert lag.shape == (7, 2)


def test_torque_calibration_recovers_emg_gains(model, trajectory):
    """Forces made by our own model from a = g e: fitting g to the torque finds it, and the
    resulting forces equal the recorded ones."""
    g_true = np.array([0.15, 0.2, 0.3, 0.35, 0.5])
    q, qd, qdd = (np.asarray(x, float) for x in (trajectory.q, trajectory.qd, trajectory.qdd))
    e = np.asarray(trajectory.a, float) / g_true
    terms = diagnostics.torque_terms(model, q, qd, qdd)
    passive, active = terms.passive, terms.active
    a_mat, b_vec = diagnostics.gain_problem(terms, e)
    g, rms = diagnostics.calibrate_gains(a_mat, b_vec)
    np.testing.assert_allclose(g, g_true, rtol=0.02)
    assert rms < 1e-3
    np.testing.assert_allclose(passive + g * e * active, np.asarray(trajectory.forces),
                               rtol=0.03, atol=0.5)
    # spline derivatives of the sampled angle give the same problem
    t = np.arange(len(q)) * 1e-3
    qd_s, qdd_s = diagnostics.derivatives(t[::10], q[::10])
    np.testing.assert_allclose(qd_s[5:-5], qd[::10][5:-5], atol=2e-3)


def test_f_max_scale_from_torque(model, trajectory):
    """Forces made by our own model, read with a model 1.25× too weak: the torque asks for
    F_max × 1.25; with a spring and offset added to the joint torque, fitting them beside
    the scale finds all three."""
    q, qd, qdd = (np.asarray(x, float)[::20] for x in (trajectory.q, trajectory.qd,
                                                       trajectory.qdd))
    a = np.asarray(trajectory.a, float)[::20]
    weak = msk.scale_muscles(model, f_max=0.8)
    terms = diagnostics.torque_terms(weak, q, qd, qdd)
    rigid = terms.passive + a * terms.active
    s, rest = diagnostics.f_max_scale_from_torque([terms], [rigid])
    assert s == pytest.approx(1.25, rel=0.01) and rest.size == 0
    sprung = terms._replace(tau=terms.tau + 3.0 * q + 0.5)
    s, (k, c) = diagnostics.f_max_scale_from_torque([sprung, sprung], [rigid, rigid], qs=[q, q])
    assert s == pytest.approx(1.25, rel=0.01)
    assert k == pytest.approx(3.0, rel=0.02) and c == pytest.approx(0.5, abs=0.02)
    # compliant tendons: F_max × 0.8 makes 0.8 × the forces (the tendon sees F / F_max only)
    strong = diagnostics.compliant_hill_forces(model, a, q, qd)
    np.testing.assert_allclose(diagnostics.compliant_hill_forces(weak, a, q, qd), 0.8 * strong,
                               rtol=1e-3, atol=1e-3)


def test_static_optimisation_meets_torque_with_least_activation(model, trajectory):
    q, qd, qdd = (np.asarray(x, float)[::200] for x in (trajectory.q, trajectory.qd,
                                                        trajectory.qdd))
    a_mat, b_vec = diagnostics.gain_problem(diagnostics.torque_terms(model, q, qd, qdd),
                                            np.ones((len(q), 5)))
    act = diagnostics.static_optimisation(a_mat, b_vec)
    np.testing.assert_allclose(np.sum(a_mat * act, axis=1), b_vec, atol=1e-4)
    assert np.all(act >= 0)
    for k in range(len(q)):  # KKT: a ∝ the positive part of λ r U, λ of the torque's sign
        w = a_mat[k] * np.sign(b_vec[k])
        on = act[k] > 1e-9
        assert np.all(w[~on] <= 1e-9)
        np.testing.assert_allclose(act[k][on] / w[on], (act[k][on] / w[on])[0], rtol=1e-3)


def test_net_and_gross_torque(model):
    q = np.zeros((1, 1))
    f = np.array([[10.0, 0.0, 10.0, 0.0, 0.0]])
    r = np.asarray(model.geometry.moment_arms(jnp.zeros(1)))[:, 0]
    arms = diagnostics.torque_terms(model, q, q, q).arms
    net, gross = diagnostics.net_and_gross_torque(arms, f)
    np.testing.assert_allclose(net[0, 0], 10 * (r[0] + r[2]), rtol=1e-5)
    np.testing.assert_allclose(gross[0, 0], 10 * (abs(r[0]) + abs(r[2])), rtol=1e-5)


def _diagnose(*args):
    return forkserver.run("experiments.diagnose", *args, cwd=ROOT)


def test_diagnose_binary(tmp_path):
    base = spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml"))
    path = synthetic.generate(base, loading.build_model(base), str(tmp_path / "d"),
                              synthetic.SyntheticConfig(n_subjects=1, n_trials=3, duration_s=6.0,
                                                        variation=0.0),
                              log=lambda s: None)
    out = tmp_path / "diag.json"
    r = _diagnose(f"--data_spec={path}", "--activations=activations.sto", f"--out={out}",
                  "--history_s=0.5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "force, Hill with true activations" in r.stdout
    rows = json.load(open(out))
    # nominal subject, same model: true activations give the recorded forces
    assert rows["force_from_hill_activations"]["mean"] > 0.99
    assert rows["force_from_torque_calibrated_activations"]["mean"] > 0.9
    # ... and the torque asks for the simulated F_max
    strength = rows["f_max_scale_from_torque_activations"]["s0"]
    assert strength["scale"] == pytest.approx(1.0, abs=0.03)
    assert strength["true_scale"] == pytest.approx(1.0)
    assert "F_max scale closing the torque (rigid Hill, activations), s0" in r.stdout
    assert "runs against the torque the motion needs" not in r.stdout
    assert set(rows) >= {"angle_from_emg", "angle_from_activations", "angle_from_forces",
                         "force_from_emg", "force_from_activations",
                         "force_from_static_optimisation", "net_over_gross_torque",
                         "model_sanity"}
    # with labels, the activations carry the forces almost linearly; the EMG envelope less so
    assert rows["force_from_activations"]["test_r2"] > 0.8
    assert rows["force_from_emg"]["test_r2"] < rows["force_from_activations"]["test_r2"]
    assert "force from EMG (ridge, labelled forces)" in r.stdout
    # the simulator's own model made the motion: no sanity warning, every torque reachable
    sanity = rows["model_sanity"]["rigid"]["s0"]
    assert sanity["warnings"] == [] and sanity["infeasible_fraction"] == [0.0]
    assert "model sanity over the training motion (rigid tendon" in r.stdout
    r = _diagnose(f"--data_spec={path}", "--activations=nope.sto", f"--out={tmp_path / 'x.json'}")
    assert r.returncode == 2 and "nope.sto: not found" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr and not (tmp_path / "x.json").exists()


def test_torque_budget_accounts_for_the_simulated_torque(model, trajectory):
    """The simulator's own forces explain the torque its motion needs (unexplained ≈ 0); with
    the forces halved half the muscle torque is unexplained; a residual torque that supplies the
    missing half closes the budget again."""
    q, qd, qdd = (np.asarray(x, float)[::5] for x in (trajectory.q, trajectory.qd, trajectory.qdd))
    f = np.asarray(trajectory.forces, float)[::5]
    full = diagnostics.torque_budget(model, q, qd, qdd, f)
    assert full["unexplained_rms_nm"][0] < 1e-3 * full["required_rms_nm"][0]
    assert full["muscle_rms_nm"][0] == pytest.approx(full["required_rms_nm"][0], rel=0.05)
    arms = np.asarray(jax.vmap(model.geometry.moment_arms)(jnp.asarray(q, jnp.float32)))
    half_tau = np.einsum("tmn,tm->tn", arms, 0.5 * f)
    half = diagnostics.torque_budget(model, q, qd, qdd, 0.5 * f)
    assert half["unexplained_rms_nm"][0] == pytest.approx(
        np.sqrt(np.mean(half_tau[:, 0] ** 2)), rel=0.01)
    closed = diagnostics.torque_budget(model, q, qd, qdd, 0.5 * f, half_tau)
    assert closed["unexplained_rms_nm"][0] < 1e-3 * full["required_rms_nm"][0]
    np.testing.assert_allclose(full["peak_force_over_f_max"],
                               f.max(0) / np.asarray(model.muscles.f_max_n), rtol=1e-6)


def test_model_sanity_of_a_feasible_model(model, trajectory):
    """The simulator's own model made the motion: every sample's torque is within reach, no
    muscle is slack or overstretched, no warning."""
    q, qd, qdd = (np.asarray(x, float)[::20] for x in (trajectory.q, trajectory.qd, trajectory.qdd))
    names = [f"m{i}" for i in range(model.n_muscles)]
    r = sanity.model_sanity(model, names, q, qd, qdd, "rigid")
    assert r.infeasible_fraction[0] == 0.0 and r.warnings == ()
    # F_max cut to 1 %: the motion now needs more than the muscles can give
    from pinnmsk import msk
    weak = sanity.model_sanity(msk.scale_muscles(model, f_max=0.01), names, q, qd, qdd,
                                    "rigid")
    assert weak.infeasible_fraction[0] > 0.1
    assert any("no activation of the modelled muscles" in w for w in weak.warnings)
    # muscles without a channel reach only their identified activation's upper bound: at 1 %
    # of full activation the same motion is out of reach (rigid and compliant alike)
    for tendon in ("rigid", "compliant"):
        capped = sanity.model_sanity(model, names, q, qd, qdd, tendon,
                                          max_activation=np.full(model.n_muscles, 0.01))
        assert capped.infeasible_fraction[0] > 0.1, tendon


def test_diagnose_warns_when_the_model_torque_runs_against_the_motion():
    """A negative best F_max scale (the EMG-driven model pushes where the motion pulls, as on
    the UCI knee) is flagged per subject; a positive one is not."""
    from experiments import diagnose

    rows = {"dataset": "d", "history_s": 1.0, "train_trials": ["a"], "test_trials": ["b"],
            "f_max_scale_from_torque_emg": {
                "S1": {"tendon": "compliant", "scale": -0.07, "scale_with_free_spring": 0.02},
                "S2": {"tendon": "compliant", "scale": 0.9, "scale_with_free_spring": 0.2}}}
    text = diagnose.table(rows)
    assert "warning (S1): driven by the emg, the model's muscle torque runs against" in text
    assert "warning (S2)" not in text
    assert "F_max scale closing the torque (compliant Hill, emg), S2: 0.900" in text


def test_compliant_equilibrium_is_found_beyond_two_f_max(model, trajectory):
    """Fibres stretched far (tendon slack lengths cut by 20 %) pull with more than 2 F_max of
    passive force: the solver brackets the root instead of reporting the bracket's end (the old
    [0, 2 F_max] bisection read exactly 2.000 F_max), and what it reports is an equilibrium."""
    from pinnmsk import muscle

    stiff = msk.scale_muscles(model, l_ts=0.8)
    q = np.linspace(-1.2, 1.2, 40)[:, None]
    zeros = np.zeros((len(q), model.n_muscles))
    f = diagnostics.compliant_hill_forces(stiff, zeros, q, np.zeros_like(q))
    f_max = np.asarray(stiff.muscles.f_max_n)
    assert np.isfinite(f).all() and (f / f_max).max() > 2.5, (f / f_max).max()
    assert not np.isclose(f / f_max, 2.0, atol=1e-4).any()
    l_mt = np.stack([np.asarray(stiff.geometry.length_and_velocity(
        jnp.asarray(qi, jnp.float32), jnp.zeros(1))[0]) for qi in q])
    res = muscle.tendon_equilibrium_residual(jnp.asarray(f, jnp.float32), jnp.zeros_like(l_mt),
                                             jnp.zeros_like(l_mt), jnp.asarray(l_mt),
                                             jnp.zeros_like(l_mt), stiff.muscles)
    assert np.all(np.abs(np.asarray(res)) <= 1e-3 * f_max + 1e-3 * f), np.abs(res).max()
    # the sanity report's passive peaks are these forces, and nothing is left unsolved
    names = [f"m{i}" for i in range(model.n_muscles)]
    r = sanity.model_sanity(stiff, names, q, np.zeros_like(q), np.zeros_like(q),
                                 "compliant")
    np.testing.assert_allclose(r.passive_force_n, f.max(0), rtol=1e-6)
    assert r.unsolved_fraction == 0.0


def test_sanity_table_pairs_each_share_with_its_own_subject():
    """The summary line names the worst subject and gives that subject's shortfall (it paired
    one subject's share with another's shortfall); the compliant block does not say rigid."""
    def rep(share, short):
        return {"tendon": "compliant", "fibre_length_norm": {"m": [0.8, 1.2]},
                "slack_fraction": {"m": 0.0}, "peak_passive_force_n": {"m": 10.0},
                "peak_passive_torque_nm": {"m": [1.0]}, "required_torque_p95_nm": [5.0],
                "infeasible_fraction": [share], "shortfall_nm": [short], "warnings": []}
    text = sanity.sanity_table({"S1": rep(0.6, 5.0), "S2": rep(0.1, 50.0)})
    assert "60 % of samples in S1 (up to 5.0 N m short there)" in text, text
    assert "50.0" not in text.splitlines()[-1]
    assert "(rigid" not in text and "compliant, at passive equilibrium" in text
