"""Extending pinnmsk from outside the library: a body, a muscle model and a loss term added by
this file alone (a registry entry and a class or function each) are read from a spec or the
config, used by the train step (and the simulator) and trained one epoch."""

import json
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from pinnmsk import bodies, losses, msk, muscle_models, prepare, runner, simulator, terms, train
from pinnmsk.data import loading, spec
from pinnmsk.errors import DataError
from tests import forkserver


@struct.dataclass
class PointMassPendulum:
    """A point mass on a massless rod: L = ½ m l² q̇² − m g l sin q; viscous damping."""

    mass_kg: jnp.ndarray
    length_m: jnp.ndarray
    gravity_mps2: jnp.ndarray = 9.81
    damping_nms: jnp.ndarray = 0.0

    def lagrangian(self, q, qd):
        m, l = self.mass_kg, self.length_m
        return 0.5 * m * l**2 * jnp.sum(qd**2) - m * self.gravity_mps2 * l * jnp.sum(jnp.sin(q))

    def passive_torque(self, q, qd):
        return -self.damping_nms * qd


POINT_MASS = bodies.BodyType(PointMassPendulum, 1,
                             ("mass_kg", "length_m", "gravity_mps2", "damping_nms"),
                             required=("mass_kg", "length_m"))


@pytest.fixture()
def point_mass_spec(tiny, tmp_path):
    bodies.register("point_mass_test", POINT_MASS)
    text = pathlib.Path(tiny).read_text()
    body = re.search(r"\[body\]\n(?:[^\[\n][^\n]*\n|\n)*", text).group(0)
    new = '[body]\nmodel = "point_mass_test"\nmass_kg = 0.45\nlength_m = 0.07\n' \
          'damping_nms = 0.05\n\n'
    p = pathlib.Path(tiny).parent / f"point_mass_{tmp_path.name}.toml"  # the spec's root holds
    p.write_text(text.replace(body, new))
    yield p
    p.unlink()
    del bodies.BODIES["point_mass_test"]


def test_a_body_added_from_a_test_file_trains(point_mass_spec):
    s = spec.load_spec(str(point_mass_spec))
    assert s.body.model == "point_mass_test"
    data = loading.load_dataset(s)
    body = data.models.body
    assert isinstance(body, PointMassPendulum)
    np.testing.assert_allclose(np.asarray(body.length_m), 0.07)
    cfg = train.TrainConfig(epochs=1, batch_size=64, n_colloc=2, latent=16)
    prep = prepare.prepare(data, cfg)
    _, hist, diverged, _ = runner.fit(prep, cfg, terms.run_weights(cfg, 1.0), None,
                                      log=lambda s: None)
    dyn = hist[0]["terms"][0][terms.names().index("dynamics")]
    assert np.isfinite(dyn) and dyn > 0 and not diverged.any()


def test_registered_body_fields_are_checked(point_mass_spec):
    bad = point_mass_spec.with_name("bad_" + point_mass_spec.name)
    bad.write_text(point_mass_spec.read_text().replace("length_m = 0.07\n", ""))
    with pytest.raises(DataError, match="body.length_m' is missing"):
        loading.load_dataset(spec.load_spec(str(bad)))
    bad.write_text(point_mass_spec.read_text().replace("length_m = 0.07", "com_m = 0.07"))
    with pytest.raises(DataError, match="com_m"):
        spec.load_spec(str(bad))
    bad.unlink()


class LinearMuscle:
    """Force proportional to activation, F = a F_max, whatever the fibre's length and speed."""

    def force(self, a, l_mt_m, ldot_mt_mps, params):
        return a * params.f_max_n

    def residual(self, f_n, fdot_nps, a, l_mt_m, ldot_mt_mps, params):
        return f_n - self.force(a, l_mt_m, ldot_mt_mps, params)


@pytest.fixture()
def linear_muscle():
    muscle_models.register("linear_test", LinearMuscle)
    yield "linear_test"
    del muscle_models.MUSCLE_MODELS["linear_test"]


def test_a_muscle_model_added_from_a_test_file_trains_and_simulates(tiny, linear_muscle):
    data = loading.load_dataset(spec.load_spec(tiny))
    model = data.model_of(0)
    a = jnp.linspace(0.1, 0.5, model.n_muscles)
    q, qd = jnp.asarray([0.2]), jnp.asarray([0.5])
    f = jnp.full(model.n_muscles, 50.0)
    # the Hill term reads the registered model
    np.testing.assert_allclose(
        msk.tendon_residual(model, a, q, qd, f, jnp.zeros_like(f), linear_muscle),
        f - a * model.muscles.f_max_n, rtol=1e-6)
    cfg = train.TrainConfig(epochs=1, batch_size=64, n_colloc=2, latent=16,
                            tendon=linear_muscle)
    prep = prepare.prepare(data, cfg)
    assert prep.consts.tendon == linear_muscle
    _, hist, diverged, _ = runner.fit(prep, cfg, terms.run_weights(cfg, 1.0), None,
                                      log=lambda s: None)
    hill = hist[0]["terms"][0][terms.names().index("hill")]
    assert np.isfinite(hill) and hill > 0 and not diverged.any()
    # the simulator integrates it: at zero velocity, F = a F_max exactly
    u = jnp.full((20, model.n_muscles), 0.3)
    traj = simulator.simulate(model, u, 0.01, jnp.asarray([0.1]), jnp.asarray([0.0]),
                              muscle_model=linear_muscle)
    np.testing.assert_allclose(traj.forces, traj.a * model.muscles.f_max_n, rtol=1e-5)
    rigid = simulator.simulate(model, u, 0.01, jnp.asarray([0.1]), jnp.asarray([0.0]))
    assert not np.allclose(rigid.forces, traj.forces, rtol=1e-2)
    with pytest.raises(ValueError, match="linear_test"):
        train.TrainConfig(tendon="nonlinear_test")


def smoothness(p: losses.PointState):
    """q̈ in units of 100 rad/s² at each collocation time: a preference for smooth motion."""
    return p.qdd / 100.0


@pytest.fixture()
def smooth_term():
    terms.register(terms.Term("smooth_test", "point", smoothness, "lambda", default=0.5))
    yield "smooth_test"
    terms.unregister("smooth_test")


def test_a_loss_term_added_from_a_test_file_trains(tiny, smooth_term):
    cfg = train.TrainConfig(epochs=1, batch_size=64, n_colloc=2, latent=16)
    w = terms.weights_for(cfg, [0.0, 2.0])
    np.testing.assert_allclose(w[smooth_term], [0.0, 1.0])  # default 0.5 times λ
    over = terms.weights_for(train.TrainConfig(term_weights=f"{smooth_term}=3"), [2.0])
    np.testing.assert_allclose(over[smooth_term], [6.0])
    with pytest.raises(ValueError, match="use hill_weight"):
        terms.weights_for(train.TrainConfig(term_weights="hill=3"))
    with pytest.raises(ValueError, match="no registered loss term"):
        terms.weights_for(train.TrainConfig(term_weights="jerk=3"))
    data = loading.load_dataset(spec.load_spec(tiny))
    prep = prepare.prepare(data, cfg)
    runs = {}
    for weight in (0.0, 1.0):
        one = {**terms.run_weights(cfg, 1.0), smooth_term: np.float32(weight)}
        _, hist, diverged, _ = runner.fit(prep, cfg, one, None, log=lambda s: None)
        assert not diverged.any() and len(hist[0]["terms"][0]) == len(terms.names())
        runs[weight] = hist[0]
    j = terms.names().index(smooth_term)
    value = runs[0.0]["terms"][0][j]
    assert np.isfinite(value) and value > 0  # recorded even where it does not weigh
    # it weighs in the loss: the same first epoch with the term on differs by about its value
    assert runs[1.0]["loss"][0] > runs[0.0]["loss"][0] + 0.1 * value


CONFIG_WITH_A_BODY = """
from pinnmsk import bodies
from pinnmsk.config import TrainConfig
from tests.test_extension import POINT_MASS  # the body above, as a user's module would hold it

bodies.register("point_mass_test", POINT_MASS)


def get_config():
    return TrainConfig(epochs=1, batch_size=64, n_colloc=2, latent=16)
"""


def test_a_body_registered_by_a_config_file_trains_and_evaluates_through_the_binaries(
        point_mass_spec, tmp_path):
    """The binaries take a user's registrations from a --config file: train runs it before the
    spec is read; evaluate, which reads the run's settings from its record, runs the same file
    for its registrations and stops in one line without it."""
    cfg = tmp_path / "point_mass_config.py"
    cfg.write_text(CONFIG_WITH_A_BODY)
    w = tmp_path / "run"
    run = lambda name, *a: forkserver.run(f"experiments.{name}", *a,
                                          cwd=pathlib.Path(__file__).parents[1])
    r = run("train", f"--data_spec={point_mass_spec}", f"--workdir={w}", f"--config={cfg}",
            "--noplots")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.load(open(w / "config.json"))["epochs"] == 1
    r = run("evaluate", f"--workdir={w}", "--noplots")
    assert r.returncode == 2 and "body.model" in r.stderr and "Traceback" not in r.stderr, \
        r.stderr[-2000:]
    r = run("evaluate", f"--workdir={w}", f"--config={cfg}", "--noplots")
    assert r.returncode == 0 and "test metrics" in r.stdout, r.stderr[-3000:]


def test_curves_are_swapped_by_a_subclass_in_a_test_file(tiny):
    """A Hill muscle with other curves is a subclass of a built-in tendon that sets ``curves``:
    here a flat active force-length curve (rigid) and a stiffer tendon (compliant). The Hill term
    reads the registered model; the defaults are De Groote's, unchanged."""
    from pinnmsk import muscle, tendons

    class FlatRigid(tendons.RigidTendon):
        curves = muscle.DE_GROOTE._replace(active_force_length=lambda l: jnp.ones_like(l))

    class StiffCompliant(tendons.CompliantTendon):
        curves = muscle.DE_GROOTE._replace(
            tendon_length_from_force=lambda f, s: muscle.tendon_length_from_force(f, 0.01))

    muscle_models.register("flat_test", FlatRigid)
    muscle_models.register("stiff_test", StiffCompliant)
    try:
        model = loading.load_dataset(spec.load_spec(tiny)).model_of(0)
        p = model.muscles
        a = jnp.linspace(0.2, 0.8, model.n_muscles)
        q, qd = jnp.asarray([0.3]), jnp.asarray([0.4])
        l_mt, ldot = model.geometry.length_and_velocity(q, qd)
        l_norm, v_norm, cos_phi = muscle.fibre_kinematics(l_mt, ldot, p)
        flat = p.f_max_n * (a * muscle.force_velocity(v_norm)
                            + muscle.passive_force_length(l_norm, p.passive_strain)) * cos_phi
        np.testing.assert_allclose(muscle_models.get("flat_test").force(a, l_mt, ldot, p), flat,
                                   rtol=1e-5)
        f = jnp.full(model.n_muscles, 40.0)
        np.testing.assert_allclose(msk.tendon_residual(model, a, q, qd, f, jnp.zeros_like(f),
                                                       "flat_test"), f - flat, rtol=1e-5)
        rigid = muscle_models.get("rigid").force(a, l_mt, ldot, p)
        np.testing.assert_allclose(rigid, muscle.hill_force(a, l_mt, ldot, p), rtol=0)
        assert not np.allclose(rigid, flat, rtol=1e-2)
        stiff = muscle_models.get("stiff_test").force(a, l_mt, jnp.zeros_like(ldot), p)
        soft = muscle_models.get("compliant").force(a, l_mt, jnp.zeros_like(ldot), p)
        assert np.all(np.isfinite(stiff)) and not np.allclose(stiff, soft, rtol=1e-3)
        # a stiffer tendon is nearer the rigid tendon's force
        at_rest = muscle_models.get("rigid").force(a, l_mt, jnp.zeros_like(ldot), p)
        assert np.mean(np.abs(stiff - at_rest)) < np.mean(np.abs(soft - at_rest))
    finally:
        del muscle_models.MUSCLE_MODELS["flat_test"], muscle_models.MUSCLE_MODELS["stiff_test"]
