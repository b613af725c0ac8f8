"""The 2-DOF arm (OpenSim arm26 sample in data/opensim_arm26): the two-link body against OpenSim's
own mass matrix and inverse dynamics, the equation of motion closed by the recorded forces,
multi-coordinate geometry against the MomentArm tables, and the 2-DOF training path on a
simulated arm."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import (diagnostics, dynamics, evaluation, geometry, losses, msk, prepare, runner,
                     terms, train)
from pinnmsk.data import loading, opensim, osim_model, spec, synthetic
from tests.conftest import ROOT

ARM = ROOT / "data" / "opensim_arm26"
ARM_SPEC = ROOT / "data_specs" / "opensim_arm26.toml"
COORDS = ["r_shoulder_elev", "r_elbow_flex"]


@pytest.fixture(scope="session")
def arm():
    s = spec.load_spec(str(ARM_SPEC))
    models, report = loading.build_models(s, ["S1", "S2"])
    return s, models, report


def _truth(subject):
    return json.load(open(ARM / subject / "model.json"))


def _true_body(model, subject):
    """The spec's body with the subject's simulated joint springs and damping."""
    t = _truth(subject)
    return model.body.replace(
        stiffness_nm=jnp.asarray([t["joint_stiffness_nm_per_rad"][c] for c in COORDS]),
        q_rest_rad=jnp.deg2rad(jnp.asarray([t["joint_rest_deg"][c] for c in COORDS])),
        damping_nms=jnp.float32(t["joint_damping_nms"]))


def test_two_link_matches_opensim_mass_matrix_and_inverse_dynamics(arm):
    """OpenSim's M(q) and inverse dynamics of arm26 (model.json, computed by OpenSim 4.6) at
    five configurations, in OpenSim's coordinates: the spec's offsets make them agree."""
    _, models, _ = arm
    body = jax.tree_util.tree_map(lambda x: x[0], models).body.replace(
        stiffness_nm=0.0, damping_nms=0.0)
    for c in _truth("S1")["mapping_check"]:
        q, qd, qdd = (jnp.asarray(c[k], jnp.float32) for k in ("q_opensim", "qd", "qdd"))
        m = np.asarray(dynamics.mass_matrix(body, q))
        assert np.linalg.norm(m - c["M"]) <= 0.015 * np.linalg.norm(c["M"]), (m, c["M"])
        tau = np.asarray(dynamics.inverse_dynamics(body, q, qd, qdd))
        np.testing.assert_allclose(tau, c["inverse_dynamics"], rtol=0.03, atol=0.03)
        g = np.asarray(dynamics.quasi_static_torque(body, q, 0 * qd))
        np.testing.assert_allclose(g, c["gravity"], rtol=0.03, atol=0.03)


def test_two_link_per_joint_springs_and_damping():
    arm = dynamics.TwoLinkArm(gravity_mps2=0.0, stiffness_nm=jnp.array([2.0, 3.0]),
                              q_rest_rad=jnp.array([0.1, 1.0]), damping_nms=jnp.array([0.5, 0.2]))
    q, qd = jnp.array([0.3, 0.5]), jnp.array([1.0, -2.0])
    np.testing.assert_allclose(arm.passive_torque(q, qd), [-0.4 - 0.5, 1.5 + 0.4], rtol=1e-6)
    # an offset rotates the links: the mass matrix depends on q2 + offset only
    shifted = dynamics.TwoLinkArm(q_offset_rad=jnp.array([0.0, 0.4]))
    np.testing.assert_allclose(dynamics.mass_matrix(shifted, jnp.array([0.0, 0.6])),
                               dynamics.mass_matrix(dynamics.TwoLinkArm(), jnp.array([0.0, 1.0])),
                               rtol=1e-6)


@pytest.mark.parametrize("subject", ["S1", "S2"])
def test_recorded_forces_close_the_equation_of_motion(arm, subject):
    """M q̈ + h − τ_passive − Rᵀ F with the recorded forces, the fitted geometry and the
    subject's true joint springs: ≤ 0.3 N m RMS per joint. Without the springs it is not."""
    s, models, _ = arm
    model = jax.tree_util.tree_map(lambda x: x[["S1", "S2"].index(subject)], models)
    kin = opensim.read_table(str(ARM / subject / "trial_0" / "kinematics.mot"))
    q = opensim.to_radians(kin, COORDS)
    f = opensim.read_table(str(ARM / subject / "trial_0" / "muscle_forces.sto")).select(
        list(s.muscle_names))
    qd, qdd = diagnostics.derivatives(kin.time, q)
    args = [jnp.asarray(x, jnp.float32) for x in (q, qd, qdd, f)]

    def rms(m):
        r = jax.vmap(lambda *a: msk.dynamics_residual(m, *a))(*args)
        return np.sqrt(np.mean(np.asarray(r) ** 2, axis=0))

    true = model.replace(body=_true_body(model, subject))
    assert np.all(rms(true) <= 0.3), rms(true)
    no_springs = true.replace(body=true.body.replace(stiffness_nm=0.0))
    assert np.any(rms(no_springs) > 0.3), rms(no_springs)
    # the inertial part is a sizeable share of the torque here (what the arm is for)
    inertial = jax.vmap(lambda a, b, c: dynamics.inverse_dynamics(true.body, a, b, c)
                        - dynamics.quasi_static_torque(true.body, a, b))(*args[:3])
    assert np.sqrt(np.mean(np.asarray(inertial)[:, 0] ** 2)) > 0.3


def test_multi_coordinate_moment_arms_match_the_tables(arm):
    """r = −∂l_mt/∂q by autodiff of the 2-D length polynomial vs OpenSim's MomentArm tables over
    the motion range (≤ 1.5 mm); the biarticular muscles act at both joints, the others not."""
    s, models, report = arm
    geo = jax.tree_util.tree_map(lambda x: x[0], models).geometry
    tab = opensim.read_table(str(ARM / "S1" / "muscle_analysis_Length.sto"))
    grid = osim_model.grid_coordinates(tab, COORDS, None)
    q_all = np.concatenate([opensim.to_radians(opensim.read_table(
        str(ARM / "S1" / f"trial_{k}" / "kinematics.mot")), COORDS) for k in range(3)])
    inside = np.all((grid >= q_all.min(0) - 0.05) & (grid <= q_all.max(0) + 0.05), axis=1)
    assert inside.sum() > 50
    fitted = np.asarray(jax.vmap(geo.moment_arms)(jnp.asarray(grid[inside], jnp.float32)))
    names = list(s.muscle_names)
    for j, c in enumerate(COORDS):
        table = opensim.read_table(str(ARM / "S1" / f"muscle_analysis_MomentArm_{c}.sto"))
        err = np.abs(fitted[:, :, j] - table.select(names)[inside])
        assert err.max() <= 1.5e-3, (c, err.max(0))
        assert report["S1"]["moment_arm_max_error_m"][c] < 2e-3  # whole grid, in the load log
    shoulder = np.abs(fitted[:, :, 0]).max(0)
    for m in ("TRIlong", "BIClong", "BICshort"):
        assert shoulder[names.index(m)] > 5e-3, m
    for m in ("TRIlat", "TRImed", "BRA"):
        assert shoulder[names.index(m)] < 1e-3, m


def test_per_joint_body_field_must_match_the_coordinates(tmp_path):
    text = ARM_SPEC.read_text().replace('root = "../data/opensim_arm26"', f'root = "{ARM}"')
    p = tmp_path / "s.toml"
    p.write_text(text.replace("stiffness_nm = [2.5, 2.0]", "stiffness_nm = [2.5, 2.0, 1.0]"))
    with pytest.raises(spec.DataError, match="body.stiffness_nm' must be a number or a list of 2"):
        spec.load_spec(str(p))


@pytest.fixture(scope="session")
def simulated_arm(tmp_path_factory):
    """A 2-DOF arm simulated from the arm26 spec: 1 subject x 2 trials x 3 s."""
    out = tmp_path_factory.mktemp("arm") / "data"
    base = spec.load_spec(str(ARM_SPEC))
    path = synthetic.generate(base, loading.build_model(base), str(out),
                              synthetic.SyntheticConfig(n_subjects=1, n_trials=2, duration_s=3.0,
                                                        emg_format="npz"), log=lambda s: None)
    text = open(path).read().replace("length_s = 1.0", "length_s = 0.3")
    with open(path, "w") as f:
        f.write(text)
    return path


def test_simulated_arm_closes_its_equation_of_motion_and_trains(simulated_arm):
    """The 2-DOF path end to end without the shared files: the generator's tables load back
    (moment arms exact), both coordinates move, and physics-informed training lowers every
    term it should for both joints."""
    data = loading.load_dataset(spec.load_spec(simulated_arm))
    arms = data.geometry_report["s0"]["moment_arm_max_error_m"]
    assert set(arms) == set(COORDS) and max(arms.values()) < 2e-4
    q = np.concatenate([t.q_rad for t in data.trials])
    assert np.all(np.ptp(q, axis=0) > np.deg2rad(10))
    cfg = train.TrainConfig(epochs=4, batch_size=64, n_colloc=2, latent=16)
    prep = prepare.prepare(data, cfg)
    assert prep.consts.tau_scale.shape == (2,)
    _, hist, diverged, best = runner.fit(prep, cfg, terms.run_weights(cfg, 1.0), None,
                                         log=lambda s: None)
    assert not diverged
    values = np.array([h["terms"][0] for h in hist])
    ix = [terms.names().index(n) for n in ("angle", "force", "dynamics")]
    assert np.all(values[-1, ix] < values[0, ix]), values
    pooled, per_trial = evaluation.evaluate(prep, best.params)
    assert per_trial[0]["q_pred"].shape[1] == 2
    no_inertia = dataclasses.replace(cfg, accel="none", epochs=1)
    prep0 = prepare.prepare(data, no_inertia)
    _, hist0, _, _ = runner.fit(prep0, no_inertia, terms.run_weights(no_inertia, 1.0), None,
                                log=lambda s: None)
    assert np.isfinite(hist0[-1]["loss"][0])


def test_true_parameters_read_from_model_json(arm):
    """model.json lists the simulated muscles as they are: arm26 next to the generic
    "nominal_muscles", the wrist v2 sample next to the scale that made them from the generic
    F_max its lab model (S*_scaled.osim) keeps. Reading them as generic and scaling again put
    wrist S2's F_max 23 % above the lab model instead of 11 %."""
    s, _, _ = arm
    truth = loading.true_scales(s, "S2")
    doc = _truth("S2")
    for m, nominal in zip(doc["muscles"], doc["nominal_muscles"]):
        assert truth[m["name"]]["f_max"] == pytest.approx(m["max_isometric_force"])
        assert truth[m["name"]]["f_max"] == pytest.approx(
            nominal["max_isometric_force"] * doc["scale"]["fmax"], rel=1e-6)
    wrist = spec.load_spec(str(ROOT / "data_specs" / "opensim_wrist_v2.toml"))
    scale = json.load(open(ROOT / "data" / "opensim_wrist_v2" / "S2" / "model.json"))["scale"]
    lab = loading.build_model(wrist, "S2").muscles.f_max_n
    true = loading.true_scales(wrist, "S2")
    ratio = np.asarray([true[m]["f_max"] for m in wrist.muscle_names]) / np.asarray(lab)
    np.testing.assert_allclose(ratio, scale["fmax"], rtol=1e-5)


def test_holding_a_coordinate_is_exact():
    """geometry.hold folds a held coordinate into the coefficients: the reduced polynomial equals
    the full one at the held value, lengths and moment arms about the kept coordinate."""
    tab = opensim.read_table(str(ARM / "S1" / "muscle_analysis_Length.sto"))
    full = geometry.fit_polynomial(osim_model.grid_coordinates(tab, COORDS, None),
                                   tab.select(["TRIlong", "BIClong", "BRA"]), 6)
    shoulder = 0.4
    elbow_only = geometry.hold(full, [1], {0: shoulder})
    assert elbow_only.n_coords == 1
    for e in np.linspace(0.2, 2.2, 7):
        q = jnp.asarray([shoulder, e], jnp.float32)
        np.testing.assert_allclose(elbow_only.length(q[1:]), full.length(q), rtol=0, atol=2e-6)
        np.testing.assert_allclose(elbow_only.moment_arms(q[1:])[:, 0], full.moment_arms(q)[:, 1],
                                   rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match="must split"):
        geometry.hold(full, [1], {})


def _elbow_only_spec(tmp_path, held: str) -> str:
    """The arm26 spec modelling the elbow alone (a pendulum forearm), the shoulder held."""
    text = ARM_SPEC.read_text().replace('root = "../data/opensim_arm26"', f'root = "{ARM}"')
    text = text.replace('coordinates = ["r_shoulder_elev", "r_elbow_flex"]',
                        'coordinates = ["r_elbow_flex"]')
    head, rest = text.split("[body]", 1)
    body = ('[body]\nmodel = "pendulum"\nmass_kg = 1.53432\ncom_m = 0.181479\n'
            'inertia_kgm2 = 0.020062\n\n')
    text = head + body + "[[muscles]]" + rest.split("[[muscles]]", 1)[1]
    text = text.replace('[geometry]\nsource = "muscle_analysis"',
                        f'[geometry]\nsource = "muscle_analysis"\nheld_coordinates_rad = {held}')
    p = tmp_path / "elbow.toml"
    p.write_text(text)
    return str(p)


def test_held_shoulder_gives_the_elbow_model_of_the_table_at_that_angle(tmp_path):
    """A spec that records only the elbow and holds the shoulder: the two-joint muscles' lengths
    and elbow moment arms are the MuscleAnalysis table's at the held shoulder angle (a grid
    row), and moving the held angle moves the biarticular lengths only."""
    tab = opensim.read_table(str(ARM / "S1" / "muscle_analysis_Length.sto"))
    arms = opensim.read_table(str(ARM / "S1" / "muscle_analysis_MomentArm_r_elbow_flex.sto"))
    grid = osim_model.grid_coordinates(tab, COORDS, None)
    shoulders = np.unique(grid[:, 0])
    lengths = {}
    for held in shoulders[[12, 16]]:
        s = spec.load_spec(_elbow_only_spec(tmp_path, f"{{ r_shoulder_elev = {float(held)!r} }}"))
        geo = loading.build_model(s, "S1").geometry
        rows = np.isclose(grid[:, 0], held) & (grid[:, 1] >= 0.2) & (grid[:, 1] <= 1.8)
        assert rows.sum() >= 10
        e = jnp.asarray(grid[rows, 1:], jnp.float32)
        names = list(s.muscle_names)
        l_fit = np.asarray(jax.vmap(geo.length)(e))
        assert np.abs(l_fit - tab.select(names)[rows]).max() < 1e-3
        r_fit = np.asarray(jax.vmap(geo.moment_arms)(e))[:, :, 0]
        assert np.abs(r_fit - arms.select(names)[rows]).max() <= 1.5e-3
        lengths[held] = np.asarray(geo.length(jnp.asarray([1.0], jnp.float32)))
    a, b = lengths.values()
    moved = np.abs(a - b)
    for m in ("TRIlong", "BIClong", "BICshort"):
        assert moved[names.index(m)] > 1e-3, m
    for m in ("TRIlat", "TRImed", "BRA"):
        assert moved[names.index(m)] < 2e-4, m


def test_held_coordinate_errors(tmp_path):
    with pytest.raises(spec.DataError, match="either recorded or held"):
        spec.load_spec(_elbow_only_spec(tmp_path, "{ r_elbow_flex = 0.5 }"))
    s = spec.load_spec(_elbow_only_spec(tmp_path, "{ r_shoulder_elev = 2.5 }"))
    with pytest.raises(spec.DataError, match="outside the table's range"):
        loading.build_model(s, "S1")


GROUPED_SPEC = ROOT / "data_specs" / "opensim_arm26_grouped.toml"
GROUPS = ('channels = { TRIlong = ["TRIlong", "TRIlat", "TRImed"], BIClong = ["BIClong", '
          '"BICshort"] }\nunmeasured = "identify"')


def _grouped_spec(tmp_path, channels: str | None = None):
    """The shipped two-electrode arm26 spec (TRIlong's channel drives the triceps group,
    BIClong's the biceps group, BRA has none), with its channel lines replaced by ``channels``."""
    text = GROUPED_SPEC.read_text().replace('root = "../data/opensim_arm26"', f'root = "{ARM}"')
    assert GROUPS in text
    p = tmp_path / "grouped.toml"
    p.write_text(text.replace(GROUPS, channels or GROUPS))
    return str(p)


def test_channel_groups_and_unmeasured_muscles(tmp_path):
    """A channel drives a muscle group (its envelope and normaliser for each member); a muscle
    without a channel gets a bounded, identified constant activation, and the physics still uses
    its force; or it is left out with a note."""
    s = spec.load_spec(str(GROUPED_SPEC))
    names = list(s.muscle_names)
    assert names == ["TRIlong", "TRIlat", "TRImed", "BIClong", "BICshort", "BRA"]
    np.testing.assert_array_equal(s.measured, [1, 1, 1, 1, 1, 0])
    assert any("BRA" in n and "identified constant activation" in n for n in s.notes)
    d = loading.load_dataset(s)
    full = loading.load_dataset(spec.load_spec(str(ARM_SPEC)))
    for tr, ref in zip(d.trials, full.trials):
        e = tr.excitation
        for member, channel in (("TRIlat", "TRIlong"), ("TRImed", "TRIlong"),
                                ("BICshort", "BIClong")):
            np.testing.assert_array_equal(e[:, names.index(member)], e[:, names.index(channel)])
            # the channel's own excitation, as in the one-channel-per-muscle spec
            np.testing.assert_allclose(e[:, names.index(channel)],
                                       ref.excitation[:, names.index(channel)], atol=1e-4)
        assert not e[:, names.index("BRA")].any()
    # physics: BRA's force enters the torque with its identified activation, nothing else moves it
    cfg = train.TrainConfig(epochs=1, force_labels=False, n_colloc=2)
    prep = prepare.prepare(d, cfg)
    np.testing.assert_array_equal(prep.consts.measured, [1, 1, 1, 1, 1, 0])
    state = prepare.new_state(prep, train.make_optimizer(cfg, 1), 0)
    w = prep.train
    idx = np.linspace(0, len(w) - 1, 8).astype(int)
    batch = runner._device_data(w)._replace(
        **{k: v[idx] for k, v in runner._device_data(w)._asdict().items()})
    encode, decode = train._fns(prep.net, state.params["net"])

    @jax.jit
    def grads(physio):
        return jax.grad(lambda p: losses_total(encode, decode, prep, p, batch))(physio)

    g = grads(state.params["physio"])
    bra = names.index("BRA")
    assert np.all(np.abs(np.asarray(g["unmeasured_activation"])[:, bra]) > 0)
    assert not np.asarray(g["unmeasured_activation"])[:, :bra].any()
    assert not np.asarray(g["emg_gain"])[:, bra].any()  # BRA's EMG gain drives nothing
    assert np.all(np.abs(np.asarray(g["f_max"])[:, bra]) > 0)  # its force is in the torque
    level = evaluation.identified_params(prep, state.params)["S1"]["BRA"]["unmeasured_activation"]
    assert 0.0 <= level <= 0.3
    assert "emg_gain" in evaluation.identified_params(prep, state.params)["S1"]["BIClong"]
    # or left out
    dropped = spec.load_spec(_grouped_spec(tmp_path, GROUPS.replace("identify", "drop")))
    assert "BRA" not in dropped.muscle_names and dropped.measured.all()
    assert any("left out" in n and "BRA" in n for n in dropped.notes)
    assert loading.build_model(dropped, "S1").n_muscles == 5


def losses_total(encode, decode, prep, physio, batch):
    weights = terms.named(angle=1.0, dynamics=1.0, hill=1.0)
    return losses.batch_loss(encode, decode, prep.data.models, physio, prep.consts, batch,
                             weights, jax.random.PRNGKey(0), True)[0]


@pytest.mark.parametrize("channels,msg", [
    ('channels = { TRIlong = ["TRIlong", "BRA"], BIClong = ["BIClong", "BRA"] }',
     "drives muscle 'BRA' from two channels"),
    ('channels = { TRIlong = [] }', "must be a name or a non-empty list of names"),
    ('channels = { TRIlong = "TRIlong" }\nunmeasured = "guess"', "must be one of"),
])
def test_channel_mapping_errors(tmp_path, channels, msg):
    with pytest.raises(spec.DataError, match=msg):
        spec.load_spec(_grouped_spec(tmp_path, channels=channels))


def test_true_activation_spec_passes_the_activations_unfiltered():
    """The oracle spec (the simulated activations at 100 Hz as given envelopes) loads although the
    default 20–450 Hz band-pass could not be designed at 100 Hz: envelope input designs no filter;
    each trial's envelope is its activations.sto, sample for sample."""
    p = ROOT / "data_specs" / "opensim_arm26_true_activations.toml"
    d = loading.load_dataset(spec.load_spec(str(p)))
    for tr in d.trials[:2]:
        tab = opensim.read_table(str(ARM / tr.id / "activations.sto"))
        np.testing.assert_array_equal(tr.time_s, tab.time)
        np.testing.assert_allclose(tr.raw_envelope, tab.select(d.spec.muscle_names), rtol=1e-7)
