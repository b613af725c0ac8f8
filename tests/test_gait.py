"""Real gait in CEINMS's layout: the reader, the EMG-driven model as CEINMS computes it, the
identification and the moments table binary."""

import json
import pathlib
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import emg_driven as ed
from pinnmsk import gait
from pinnmsk.data import ceinms, gait_trials
from pinnmsk.errors import DataError
from tests import forkserver

ROOT = pathlib.Path(__file__).resolve().parents[1]
GAIT = ROOT / "data" / "ceinms_gait"
SPEC = ROOT / "data_specs" / "ceinms_gait.toml"
DOFS = ("R_hip_fe", "R_hip_aa", "R_knee_fe", "R_ankle_fe")


def _trim(src: pathlib.Path, dst: pathlib.Path, rows: int) -> None:
    """Copy a trial folder keeping its first ``rows`` samples (and the EMG up to the last)."""
    dst.mkdir(parents=True)
    t_end = None
    for f in sorted(src.iterdir()):
        if f.name == "emg.txt":
            continue
        lines = f.read_text().splitlines()
        cols = lines[0].split()[1]
        body = lines[3:3 + rows]
        t_end = float(body[-1].split("\t")[0])
        dst.joinpath(f.name).write_text(
            f"datacolumns {cols}\ndatarows {rows}\n" + "\n".join([lines[2]] + body) + "\n")
    lines = (src / "emg.txt").read_text().splitlines()
    body = [ln for ln in lines[3:] if float(ln.split("\t")[0]) <= t_end + 0.002]
    dst.joinpath("emg.txt").write_text(
        f"{lines[0]}\ndatarows {len(body)}\n" + "\n".join([lines[2]] + body) + "\n")


def _spec(tmp_path, trials, train, validation, test, extra="") -> pathlib.Path:
    """The shipped spec rooted at a folder of trimmed trial copies."""
    root = tmp_path / "lab"
    root.mkdir()
    for name, rows in trials.items():
        _trim(GAIT / name, root / name, rows)
    for f in ("uncalibratedSubject.xml", "subjectCalibrated.xml"):
        shutil.copy(GAIT / f, root / f)
    text = SPEC.read_text().replace('root = "../data/ceinms_gait"', f'root = "{root}"')
    head, rest = text.split("[split]", 1)
    rest = rest.split("[excitations]", 1)[1]
    val = f"validation = {list(validation)}\n" if validation else ""
    split = f"[split]\ntrain = {list(train)}\n{val}test = {list(test)}\n{extra}\n[excitations]"
    path = tmp_path / "gait.toml"
    path.write_text(head + split + rest)
    return path


@pytest.fixture(scope="session")
def trimmed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gait")
    path = _spec(tmp, {"_Running1_": 14, "_SideStep1_": 14}, ["_Running1_"], [],
                 ["_SideStep1_"])
    spec = gait_trials.load_gait_spec(str(path))
    return spec, gait_trials.load_gait_trial(spec, "_Running1_")


def _file(name, trial="_Running1_"):
    return ceinms.read_storage(str(GAIT / trial / name))


def test_reader_on_a_trimmed_trial(trimmed):
    spec, tr = trimmed
    assert spec.train == ("_Running1_",) and spec.test == ("_SideStep1_",)
    assert spec.dofs == DOFS and len(spec.units) == 34
    lmt = _file("lmt.txt")
    assert tr.time_s.shape == (14,) and np.allclose(tr.time_s, lmt.time[:14])
    # lengths, moment arms and moments land in the right unit and dof
    u = spec.units.index("vaslat_r")
    assert np.allclose(tr.l_mt_m[:, u], lmt.values[:14, lmt.columns.index("vaslat_r")])
    ma = _file("R_knee_feMa.txt")
    knee = DOFS.index("R_knee_fe")
    assert np.allclose(tr.moment_arm_m[:, knee, u], ma.values[:14, ma.columns.index("vaslat_r")])
    assert np.all(tr.moment_arm_m[:, DOFS.index("R_ankle_fe"), u] == 0)  # vaslat: not the ankle
    assert np.allclose(tr.moment_nm[:, knee], _file("R_knee_feTorque.txt").values[:14, 0])
    # EMG as CEINMS feeds it: every sample before the first frame, then the first at or after
    emg = _file("emg.txt")
    lead = int(np.sum(emg.time < tr.time_s[0] - 1e-9))
    assert lead > 200 and tr.excitation.shape == (lead + 14, 34)
    k = 5
    j = int(np.searchsorted(emg.time, tr.time_s[k] - 1e-9))
    col = lambda c: emg.values[j, emg.columns.index(c)]
    v = spec.units.index("vasint_r")
    assert tr.excitation[lead + k, v] == pytest.approx(0.5 * (col("vaslat_r") + col("vasmed_r")),
                                                      rel=1e-5)
    assert tr.excitation[lead + k, spec.units.index("semiten_r")] == pytest.approx(
        col("semimem_r"), rel=1e-6)
    assert np.all(tr.excitation[:, spec.units.index("psoas_r")] == 0)  # no channel: left out


def test_reader_names_a_truncated_file(tmp_path):
    _trim(GAIT / "_Running1_", tmp_path / "t", 10)
    path = tmp_path / "t" / "lmt.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")  # header still says 10 rows
    with pytest.raises(DataError, match=r"lmt.txt: the header says 35 columns and 10 rows"):
        ceinms.read_storage(str(path))


def test_spec_errors_name_the_field(tmp_path):
    path = _spec(tmp_path, {"_Running1_": 10}, ["_Running1_"], ["_SideStep1_"], ["_Running1_"])
    with pytest.raises(DataError, match="split.validation' names '_SideStep1_'"):
        gait_trials.load_gait_spec(str(path))
    path.write_text(path.read_text().replace("validation = ['_SideStep1_']\n", ""))
    with pytest.raises(DataError, match="trial '_Running1_' is in both"):
        gait_trials.load_gait_spec(str(path))


def test_subject_pennation_is_degrees():
    s = ceinms.read_subject(str(GAIT / "uncalibratedSubject.xml"))
    i = s.names.index("addlong_r")
    assert s.pennation_rad[i] == pytest.approx(np.deg2rad(6.0))
    assert s.f_max_n[i] == 627 and s.l_opt_m[i] == pytest.approx(0.138)
    assert "R_knee_fe" in s.dofs and "vaslat_r" in s.dofs["R_knee_fe"]


def test_moments_are_sum_of_arm_times_force(trimmed):
    """Σ r·F over the units listed in each dof's moment-arm file, from the files' own values."""
    spec, tr = trimmed
    rng = np.random.default_rng(0)
    force = rng.uniform(0, 2000, (len(tr.time_s), len(spec.units)))
    got = np.asarray(ed.joint_moments(jnp.asarray(force), jnp.asarray(tr.moment_arm_m)))
    for j, d in enumerate(DOFS):
        ma = _file(f"{d}Ma.txt")
        want = sum(ma.values[:14, ma.columns.index(u)] * force[:, spec.units.index(u)]
                   for u in ma.columns)
        np.testing.assert_allclose(got[:, j], want, rtol=1e-4)


def _ceinms_activation(e, c1, c2, shape):
    """A literal port of CEINMS's ExponentialActivation (updateActivation, then pushState)."""
    beta1, beta2 = c1 + c2, c1 * c2
    alpha = 1 + beta1 + beta2
    u1 = u2 = p1 = p2 = 0.0
    n, out = 0, []
    for x in e:
        x = min(max(x, 0.0), 1.0)
        if n == 2:
            u1 = u2 = (p2 + p1) / 2
        u = alpha * x - beta1 * u1 - beta2 * u2
        out.append((np.exp(shape * u) - 1) / (np.exp(shape) - 1))
        u2, u1, p2, p1, n = u1, u, p1, x, n + 1
    return np.array(out)


def test_activation_matches_ceinms_filter():
    rng = np.random.default_rng(1)
    e = rng.uniform(-0.1, 1.1, (300, 3))  # out-of-range excitations are clipped, as CEINMS
    c1 = np.array([0.769, -0.5, -0.007])
    c2 = np.array([-0.99, -0.3, -0.006])
    shape = np.array([0.101, -2.0, -1.5])
    got = np.asarray(ed.activation(jnp.asarray(e, jnp.float32), jnp.asarray(c1, jnp.float32),
                                   jnp.asarray(c2, jnp.float32), jnp.asarray(shape, jnp.float32)))
    for m in range(3):
        np.testing.assert_allclose(got[:, m], _ceinms_activation(e[:, m], c1[m], c2[m],
                                                                 shape[m]), atol=2e-4)
    lin = ed.shape_activation(jnp.linspace(0, 1, 5), jnp.float32(0.0))  # A = 0: the limit u
    np.testing.assert_allclose(np.asarray(lin), np.linspace(0, 1, 5), atol=1e-6)


def test_spline_reproduces_cubics_and_clamps():
    """SIMM's end conditions fit cubics through the end points, so a cubic is reproduced
    exactly, values and slopes, on uneven knots; outside its range the end value holds."""
    x = np.array([-1.0, -0.3, 0.2, 0.25, 0.9, 1.7, 2.0])
    f = lambda v: 0.5 * v ** 3 - v ** 2 + 0.25 * v + 2.0
    s = ed.make_spline(x, f(x))
    xq = np.linspace(-1.0, 2.0, 41)
    np.testing.assert_allclose(np.asarray(ed.spline_value(s, jnp.asarray(xq, jnp.float32))),
                               f(xq), atol=2e-5)
    assert float(ed.spline_value(s, jnp.float32(5.0))) == pytest.approx(f(2.0))
    assert float(ed.spline_value(s, jnp.float32(-5.0))) == pytest.approx(f(-1.0))
    slope = ed.spline_slope_matrix(x) @ f(x)
    np.testing.assert_allclose(slope, 1.5 * x ** 2 - 2 * x + 0.25, atol=1e-9)


def _flat_curves(fa=1.0, fv=1.0, fp=0.0):
    flat = lambda y: ed.make_spline([-20.0, 20.0], [y, y])
    return ed.Curves(flat(fa), flat(fp), flat(fv), flat(0.0))


def test_stiff_tendon_force_and_pennation():
    """With flat curves F = F_max s a cos(phi), phi = asin(l_opt sin(phi0) / l_f) and
    l_f = sqrt((l_opt sin phi0)^2 + (l_mt - l_ts)^2), for addlong's 6 degrees."""
    s = ceinms.read_subject(str(GAIT / "uncalibratedSubject.xml")).select(["addlong_r"])
    p, _ = gait.params_of(s)
    p = ed.MuscleParams(**{**p.__dict__, "damping": jnp.zeros(1)})
    l_mt = np.array([[0.20], [0.24], [0.26]])
    t = np.array([0.0, 0.004, 0.008])
    act = np.full((3, 1), 0.6)
    got = np.asarray(ed.muscle_force(jnp.asarray(act, jnp.float32),
                                     jnp.asarray(l_mt, jnp.float32),
                                     jnp.zeros((3, 3)), p, _flat_curves()))
    phi0 = np.deg2rad(6.0)
    l_f = np.sqrt((0.138 * np.sin(phi0)) ** 2 + (l_mt - s.l_ts_m[0]) ** 2)
    want = 627 * s.strength[0] * 0.6 * np.cos(np.arcsin(0.138 * np.sin(phi0) / l_f))
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # fibre velocity: the spline slope of the fibre lengths, normalised by 10 l_opt / s
    slope = ed.spline_slope_matrix(t)
    curves = ed.Curves(*(ed.make_spline([-20.0, 20.0], [0.0, 0.0]),) * 2,
                       ed.make_spline([-1.0, 1.0], [0.0, 2.0]), ed.make_spline([0, 1], [0, 0]))
    fv_force = np.asarray(ed.muscle_force(jnp.asarray(act, jnp.float32),
                                          jnp.asarray(l_mt, jnp.float32),
                                          jnp.asarray(slope, jnp.float32), p, curves))
    assert np.all(fv_force == 0)  # fa = 0, fp = 0, no damping: velocity alone makes no force
    p_damp = ed.MuscleParams(**{**p.__dict__, "damping": jnp.ones(1)})
    d_force = np.asarray(ed.muscle_force(jnp.asarray(act, jnp.float32),
                                         jnp.asarray(l_mt, jnp.float32),
                                         jnp.asarray(slope, jnp.float32), p_damp, curves))
    v_n = np.clip(slope @ l_f / 0.138, -10, 10) / 10
    np.testing.assert_allclose(d_force, 627 * s.strength[0] * v_n * (l_mt - s.l_ts_m[0]) / l_f,
                               rtol=1e-4)


def test_capacity_flags_inverse_dynamics_artefacts(tmp_path):
    path = _spec(tmp_path, {"_CrossOvers6_": 20, "_Running1_": 5}, ["_Running1_"], [],
                 ["_CrossOvers6_"])
    spec = gait_trials.load_gait_spec(str(path))
    tr = gait_trials.load_gait_trial(spec, "_CrossOvers6_")
    subject = ceinms.read_subject(spec.subject).select(spec.units)
    valid = gait.valid_samples(tr, subject.f_max_n)
    # the heel-strike samples (hip adduction down to -7479 N m), and the moments after them
    # once they are back within what muscles can make
    assert not valid[:10].any() and valid[10:13].all() and valid[14:].all()


def test_identification_lowers_the_moment_error_within_bounds(trimmed):
    spec, tr = trimmed
    subject = ceinms.read_subject(spec.subject).select(spec.units)
    base, curves = gait.params_of(subject)
    x = gait.to_arrays(tr, subject.f_max_n)
    _, group = gait.groups_of(spec)
    theta, history = gait.identify(base, curves, group, [x], 0.0, steps=40)
    assert history[-1] < 0.5 * history[0]
    p = gait.apply_theta(theta, base, group)
    assert np.all((np.asarray(p.strength) >= 0.5) & (np.asarray(p.strength) <= 2.5))
    change = np.asarray(p.l_ts_m) / np.asarray(base.l_ts_m) - 1
    assert np.all(np.abs(change) <= gait.L_TS_CHANGE + 1e-6)
    # units driven by one channel share their strength (gmax1..3 by gmax_r)
    g = [spec.units.index(u) for u in ("gmax1_r", "gmax2_r", "gmax3_r")]
    assert len(set(np.asarray(p.strength)[g].tolist())) == 1


def test_moments_table_binary(tmp_path):
    path = _spec(tmp_path, {"_Running1_": 40, "_SideStep1_": 40, "_FastWalking_": 40},
                 ["_Running1_", "_SideStep1_"], ["_SideStep1_"], ["_FastWalking_"])
    work = tmp_path / "run"
    proc = forkserver.run("experiments.moments_table",
                          f"--data_spec={path}", f"--workdir={work}", "--steps=15",
                          "--prior_weights=0,0.1", "--ridge_alphas=1,100", "--seeds=2",
                          "--net_steps=100", "--hill_weights=1,10",
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((work / "metrics.json").read_text())
    assert set(m["rows"]) == {"a", "b", "c", "d'", "d", "e"}
    for row in m["rows"].values():
        assert set(row["test"]) == set(DOFS)
        assert all(np.isfinite(row["test"][d]["rmse"]) for d in DOFS)
    assert set(m["selection"]["c_validation_scores"]) == {"0.0", "0.1"}
    assert set(m["paired_test_rmse"]) == {"c_vs_b", "c_vs_d'", "e_vs_b", "e_vs_c", "e_vs_d",
                                          "e_vs_d'"}
    nets = m["selection"]["networks"]
    assert set(nets["e"]["validation_scores"]) == {"1.0", "10.0"}
    assert nets["e"]["hill_weight"] in (1.0, 10.0) and 1 <= nets["e"]["steps"] <= 100
    assert len(m["rows"]["e"]["test_per_seed"]) == 2
    # the physics network's forces are bounded by what the units can make
    assert m["rows"]["e"]["forces"]["peak_force_over_strength_fmax"] <= 1.0
    assert m["paired_test_rmse"]["c_vs_b"]["R_knee_fe"]["n_trials"] == 1
    assert "| (b) EMG-driven, CEINMS calibrated |" in (work / "table.md").read_text()
    assert (work / "plots" / "FastWalking_moments.png").stat().st_size > 10_000
    # a bad spec: one line, exit 2, no work directory left behind
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace("R_ankle_fe", "R_ankle"))
    proc = forkserver.run("experiments.moments_table",
                          f"--data_spec={bad}", f"--workdir={tmp_path / 'bad_run'}",
                          cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no dof 'R_ankle'" in proc.stderr and not (tmp_path / "bad_run").exists()
    # features reaching back further than a trial's EMG: one line naming trial and flag
    proc = forkserver.run("experiments.moments_table",
                          f"--data_spec={path}", f"--workdir={tmp_path / 'lag_run'}",
                          "--lags_ms=0,500", "--steps=2",
                          cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "--lags_ms" in proc.stderr and "_Running1_" in proc.stderr
    assert not (tmp_path / "lag_run").exists()
