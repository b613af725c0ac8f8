"""The person's model: identification before training (pinnmsk.person) and its spec table."""

import dataclasses
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pinnmsk import losses, muscle, person, personalise
from pinnmsk.config import TrainConfig
from pinnmsk.data import loading, person_spec, spec
from pinnmsk.errors import DataError
from tests.conftest import ROOT
from tests.test_lab_export import KNEE

PERSON_SPEC = ROOT / "data_specs" / "uci_knee_standing_person.toml"


def _wrist():
    return loading.build_model(spec.load_spec(str(ROOT / "data_specs" / "synthetic_wrist.toml")))


def test_equilibrium_force_is_the_root_and_its_derivative_is_exact():
    """The compliant-tendon equilibrium force solves the fibre-tendon balance, and its
    derivative in l_ts and in the length (one Newton step at the root: the implicit function
    theorem) matches central differences of the bisection itself."""
    p = _wrist().muscles
    a = jnp.full(5, 0.3)
    l_mt = p.l_opt_m + p.l_ts_m * 1.02
    f, found = muscle.equilibrium_tendon_force(a, l_mt, jnp.zeros(5), p)
    assert bool(jnp.all(found))
    res = muscle.tendon_equilibrium_residual(f, jnp.zeros(5), a, l_mt, jnp.zeros(5), p)
    assert float(jnp.max(jnp.abs(res / p.f_max_n))) < 1e-4

    def total(scale, dl):
        q = p.replace(l_ts_m=p.l_ts_m * scale)
        return jnp.sum(muscle.equilibrium_tendon_force(a, l_mt + dl, jnp.zeros(5), q)[0])

    g_scale, g_len = jax.grad(total, argnums=(0, 1))(1.0, 0.0)
    h = 1e-3
    fd_scale = (total(1.0 + h, 0.0) - total(1.0 - h, 0.0)) / (2 * h)
    fd_len = (total(1.0, 1e-4) - total(1.0, -1e-4)) / 2e-4
    assert abs(float(g_scale)) > 10.0  # a real dependence, not a zero gradient
    np.testing.assert_allclose(float(g_scale), float(fd_scale), rtol=2e-2)
    np.testing.assert_allclose(float(g_len), float(fd_len), rtol=2e-2)


def test_a_free_oscillation_identifies_the_joint_stiffness():
    """No gravity, slack muscles, q = A cos(ωt) with ω² = (k₀ + Δk)/I: only the joint's own
    stiffness closes the torque, and the identification finds Δk (prior 0 ± 5 N m/rad)."""
    model = _wrist()
    body = model.body.replace(gravity_mps2=jnp.float32(0.0), damping_nms=jnp.float32(0.0))
    m = model.muscles
    model = model.replace(body=body, muscles=m.replace(l_ts_m=m.l_ts_m * 3.0))  # slack
    k0 = float(body.stiffness_nm)
    dk_true = 3.0
    omega = np.sqrt((k0 + dk_true) / float(body.joint_inertia))
    t = np.arange(0, 5.0, 0.01)  # 32 periods
    q = 0.3 * np.cos(omega * t)[:, None]
    qd = -0.3 * omega * np.sin(omega * t)[:, None]
    qdd = -omega**2 * q
    z = np.zeros((len(t), m.n_muscles))
    motion = person.Motion(*(jnp.asarray(x[None], jnp.float32) for x in (
        q, qd, qdd, z, (t == 0).astype(float), np.ones(len(t)))),
        jnp.full((1, m.n_muscles), jnp.nan))
    ps = person_spec.PersonSpec(identify=("stiffness",), steps=400)
    pri = person.priors_for(ps, np.zeros(0, np.float32), (0.5, 0.5), m.n_muscles, 1)
    stacked = jax.tree_util.tree_map(lambda x: jnp.asarray(x)[None], model)
    vals, sd = person.identify(stacked, None, motion, pri, jnp.asarray([40.0]), ps, 0.01,
                               "rigid")
    assert float(vals["stiffness"][0, 0]) == pytest.approx(dk_true, rel=0.02)
    assert 0 < float(sd["stiffness"][0, 0]) < 1.0
    np.testing.assert_allclose(np.asarray(vals["l_ts"]), 1.0)  # not identified: the lab's


def _knee_person(tmp_path, subjects=("S3", "S11")):
    d = tmp_path / "d"
    (d / "raw").mkdir(parents=True)
    for s in subjects:
        shutil.copy(KNEE / "raw" / f"{s[1:]}Npie.txt", d / "raw")
    shutil.copytree(KNEE / "model", d / "model")
    text = PERSON_SPEC.read_text().replace('root = "../data/uci_knee_standing"', 'root = "d"')
    head, *blocks = text.split("\n[[trials]]")
    keep = [b for b in blocks if b.split('subject = "', 1)[1].split('"')[0] in subjects]
    text = head.replace("held_width_rad = 0.349", "held_width_rad = 0.349\nsteps = 100")
    p = tmp_path / "knee_person.toml"
    p.write_text(text + "".join("\n[[trials]]" + b for b in keep))
    return p


def test_the_identified_knee_closes_the_torque_with_forces_a_muscle_can_make(tmp_path):
    """Real knee recordings (S3, S11): the identified person's muscles, driven by the recorded
    EMG, close the training torque better than the lab's model, with the hip inside its range
    and no EMG-driven force above F_max; training's preparation uses the identified models and
    reports them (metrics.json's "person")."""
    from pinnmsk import prepare

    data = loading.load_dataset(spec.load_spec(str(_knee_person(tmp_path))))
    prep = prepare.prepare(data, TrainConfig(epochs=1))
    rep = prep.person
    for subj in ("S3", "S11"):
        r = rep["subjects"][subj]
        assert r["residual_rms_nm_identified"] < 0.8 * r["residual_rms_nm_lab"]
        assert max(r["peak_force_over_f_max_identified"]) < 1.0
        hip = r["parameters"]["held"]
        assert 0.05 < hip["posterior"][0] <= 1.0472 and hip["prior"]["centre"] == [0.0]
        assert set(r["parameters"]) == set(person_spec.PARAMETERS)
    generic = np.asarray(data.models.muscles.l_ts_m)
    identified = np.asarray(prep.data.models.muscles.l_ts_m)
    assert not np.allclose(generic, identified)
    # a spec without [person] leaves the data as they are
    plain = dataclasses.replace(data, spec=dataclasses.replace(data.spec, person=None))
    same, none = personalise.personalise(plain, plain.split()["train"], "compliant")
    assert none is None and same is plain


@pytest.mark.parametrize("old,new,msg", [
    ('identify = ["held",', 'identify = ["hip",', "person.identify' names 'hip'"),
    ("held_range_rad = { hip_flexion_r = [-0.1745, 1.0472] }", "",
     "no range for the held coordinate 'hip_flexion_r'"),
    ("held_range_rad = { hip_flexion_r = [-0.1745, 1.0472] }",
     "held_range_rad = { hip_flexion_r = [0.2, 1.0] }", "must contain the held value 0.0"),
    ("held_width_rad = 0.349", "held_width_rad = 0.349\npriors = { l_ts = [1.0, 0.05, 1.1, 1.2] }",
     "person.priors.l_ts"),
    ("held_coordinates_rad = { hip_flexion_r = 0.0 }", "",
     "names 'held' but the geometry holds no coordinate"),
])
def test_person_spec_errors(tmp_path, old, new, msg):
    p = _knee_person(tmp_path)
    p.write_text(p.read_text().replace(old, new, 1))
    with pytest.raises(DataError, match=msg):
        spec.load_spec(str(p))


def test_the_ceiling_term_is_the_force_above_f_max():
    """The ceiling residual is relu(F / F_max − 1) per muscle, with the model's F_max:
    zero below it, the excess fraction above."""
    model = _wrist()
    f_max = np.asarray(model.muscles.f_max_n)
    f = jnp.asarray(f_max * np.array([0.5, 1.0, 1.2, 2.0, 0.0]), jnp.float32)
    decode = lambda t: (jnp.array([0.1]) + 0.0 * t, f)
    consts = losses.LossConstants(jnp.ones(1), jnp.full(5, 10.0), jnp.ones(1), jnp.zeros((5, 2)),
                                  100.0, 0.05, 2, "autodiff", "rigid")
    over = losses.physics_residuals(decode, model, model.muscles.f_max_n,
                                    jnp.full((10, 5), 0.2), consts, jnp.zeros(()))["ceiling"]
    np.testing.assert_allclose(np.asarray(over), [0.0, 0.0, 0.2, 1.0, 0.0], atol=1e-5)
