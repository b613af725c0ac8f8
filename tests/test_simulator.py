import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import msk, simulator
from pinnmsk.data import loading, opensim, spec
from tests.conftest import ROOT
from tests import forkserver


@pytest.fixture(scope="session")
def model():
    return loading.build_model(spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml")))


def test_tracking_follows_target_and_vmaps_over_subjects(model):
    dt, n = 1e-3, 3000
    t = jnp.arange(n) * dt
    target = simulator.random_target(jax.random.PRNGKey(1), t, jnp.array([-0.8]), jnp.array([0.8]))
    cc = simulator.random_cocontraction(jax.random.PRNGKey(2), t, model.n_muscles)
    run = jax.jit(lambda m: simulator.simulate_tracking(m, target, cc, dt))
    traj = run(model)
    err = np.rad2deg(np.asarray(traj.q - target.q))
    assert np.sqrt(np.mean(err**2)) < 2.0
    assert np.all(np.asarray(traj.u) >= 0.01 - 1e-7) and np.all(np.asarray(traj.u) <= 1.0)
    # the integrated trajectory obeys the equations of motion with its own forces, checked
    # independently of the forward dynamics that made it: q̈ by central differences of the
    # integrated q̇, torque by inverse dynamics; residual < 1 % of the RMS muscle torque
    qdd_fd = np.gradient(np.asarray(traj.qd, np.float64), dt, axis=0)
    res = jax.vmap(lambda q, qd, qdd, f: msk.dynamics_residual(model, q, qd, qdd, f))(
        traj.q, traj.qd, jnp.asarray(qdd_fd, jnp.float32), traj.forces)[5:-5]
    torque = jax.vmap(lambda q, f: msk.joint_torque(model, f, q))(traj.q, traj.forces)
    assert float(jnp.sqrt(jnp.mean(res**2))) < 0.01 * float(jnp.sqrt(jnp.mean(torque**2)))
    # two subjects at once equal two separate runs
    strong = msk.scale_muscles(model, f_max=1.3)
    both = jax.jit(jax.vmap(lambda m: simulator.simulate_tracking(m, target, cc, dt)))(
        msk.stack([model, strong]))
    np.testing.assert_allclose(both.q[0], traj.q, atol=1e-5)
    np.testing.assert_allclose(both.q[1], run(strong).q, atol=1e-5)


def test_open_loop_flexor_excitation_flexes(model):
    dt, n = 1e-3, 400
    names = [m for m in ("FCR", "FCU", "ECRL", "ECRB", "ECU")]
    u = jnp.full((n, 5), 0.02).at[:, :2].set(0.6)  # flexors on
    traj = jax.jit(lambda u: simulator.simulate(model, u, dt, jnp.zeros(1), jnp.zeros(1)))(u)
    r = model.geometry.moment_arms(jnp.zeros(1))[:, 0]
    assert np.all(r[:2] > 0) and np.all(r[2:] < 0), names
    assert float(traj.q[-1, 0]) > 0.3 and np.all(np.isfinite(np.asarray(traj.q)))


def _run(args):
    return forkserver.run("experiments.simulate", *args, cwd=ROOT)


def test_simulate_binary_writes_loadable_dataset(tmp_path):
    out = tmp_path / "synth"
    r = _run([f"--out={out}", "--subjects=2", "--trials=2", "--duration_s=3"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("subject s") == 2 or r.stderr.count("subject s") == 2
    ds = loading.load_dataset(spec.load_spec(str(out / "spec.toml")))
    assert len(ds.trials) == 4 and ds.subjects == ("s0", "s1")
    assert [t.id for t in ds.split()["test"]] == ["s0/trial_1", "s1/trial_1"]
    emg = opensim.read_table(str(out / "s0" / "trial_0" / "emg.csv"))
    assert emg.values.shape == (3000, 5) and 1e-5 < np.std(emg.values) < 1e-2  # volts
    mot = opensim.read_table(str(out / "s0" / "trial_0" / "kinematics.mot"))
    assert mot.in_degrees and len(mot.time) == 300
    assert not os.path.exists(str(out) + ".partial")
    assert spec.load_spec(str(out / "spec.toml")).body.params["stiffness_nm"] == 1.5
    truth = json.loads((out / "model.json").read_text())["subjects"]["s0"]["scales"]
    assert 0.9 < truth["joint_stiffness"][0] < 1.1


def test_simulate_binary_bad_flag_is_one_line(tmp_path):
    out = tmp_path / "x"
    r = _run([f"--out={out}", "--label_rate_hz=300"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: --label_rate_hz=300")
    assert "Traceback" not in r.stderr and not out.exists()
    r = _run([f"--out={out}", "--data_spec=/nonexistent.toml"])
    assert r.returncode == 2 and "data spec not found" in r.stderr and not out.exists()
