"""The physics API's shape annotations (pinnmsk.shapes, jaxtyping) resolve and describe what the
functions return, with one size per dimension name across a call (n coordinates, M muscles)."""

import typing

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from pinnmsk import activation, dynamics, msk, muscle
from pinnmsk.data import loading, spec
from tests.conftest import ROOT


def _dims(annotation, value, sizes: dict) -> None:
    """Check ``value`` against a jaxtyping annotation and record/compare its named sizes."""
    assert isinstance(value, annotation), (annotation, np.shape(value))
    names = annotation.dim_str.split()
    shape = np.shape(value)[len(np.shape(value)) - len([d for d in names if d != "*b"]):]
    for name, size in zip([d for d in names if d != "*b"], shape):
        assert sizes.setdefault(name, size) == size, (annotation, name, size, sizes[name])


def test_annotations_match_what_the_physics_returns():
    for path in ("synthetic_wrist.toml", "opensim_arm26.toml"):
        model = loading.build_model(spec.load_spec(str(ROOT / "data_specs" / path)))
        n, m = model.n_coords, model.n_muscles
        q, qd, qdd = jnp.full(n, 0.3), jnp.full(n, 0.1), jnp.full(n, -0.2)
        a, f = jnp.full(m, 0.2), jnp.full(m, 50.0)
        calls = [
            (msk.dynamics_residual, (model, q, qd, qdd, f)),
            (msk.joint_torque, (model, f, q)),
            (msk.muscle_forces, (model, a, q, qd)),
            (msk.tendon_residual, (model, a, q, qd, f, jnp.zeros(m))),
            (msk.accelerations, (model, q, qd, f)),
            (dynamics.mass_matrix, (model.body, q)),
            (dynamics.inverse_dynamics, (model.body, q, qd, qdd)),
            (dynamics.muscle_torque, (model.geometry.moment_arms(q), f)),
            (type(model.geometry).moment_arms, (model.geometry, q)),
            (muscle.hill_force, (a, jnp.full(m, 0.25), jnp.zeros(m), model.muscles)),
            (muscle.integrate_activation, (jnp.full((7, m), 0.5), 0.01, model.muscles)),
        ]
        sizes = {"n": n, "M": m}
        for fn, args in calls:
            hints = typing.get_type_hints(fn)
            _dims(hints["return"], jax.jit(lambda: fn(*args))(), dict(sizes))
        assert typing.get_type_hints(msk.MskModel)["body"] is dynamics.BodyModel
    # the check itself can fail: a moment-arm matrix is not (n, M)
    bad = Float[Array, "n M"]
    try:
        _dims(bad, jnp.zeros((6, 2)), {"n": 2, "M": 6})
    except AssertionError:
        pass
    else:
        raise AssertionError("a transposed shape passed the check")


def test_annotations_match_what_the_network_and_losses_return():
    """models/losses/train: one size per dimension name across the calls (W window, M muscles,
    n coordinates, L latent, P query times, B batch)."""
    from pinnmsk import losses, models, terms, train

    model = loading.build_model(spec.load_spec(str(ROOT / "data_specs" / "opensim_arm26.toml")))
    n, m, w, b = model.n_coords, model.n_muscles, 40, 3
    net = models.make_model("cnn", n, m, 0.05, np.zeros(n), np.ones(n), np.full(m, 100.0),
                            latent=16)
    tx = train.make_optimizer(train.TrainConfig(epochs=1), 1)
    bounds = np.asarray([[0.5, 1.5], [0.9, 1.1], [0.9, 1.1], [0.5, 2.0], [0.0, 0.1], [0.0, 0.3]],
                        np.float32)
    state = jax.jit(lambda: train.init_state(net, tx, (w, m), 2, m, bounds, 0))()
    variables = state.params["net"]
    win = jnp.full((w, m), 0.2)
    encode, decode = train._fns(net, variables)
    z = jax.jit(encode)(win)
    consts = losses.LossConstants(jnp.full(n, 0.1), jnp.full(m, 10.0), jnp.ones(n),
                                  jnp.asarray(bounds), 100.0, 0.05,
                                  prior_width=jnp.asarray([0.3, 0.05, 0.05]))
    act = jax.jit(lambda w: activation.window_activation(w, jnp.ones(m), jnp.zeros(m), model.muscles,
                                                     100.0))(win)
    h = 6
    batch = losses.Batch(jnp.full((b, w, m), 0.2), jnp.zeros((b, h, n)), jnp.zeros((b, h, m)),
                         jnp.ones(b), jnp.zeros(b, jnp.int32))
    base = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), model)
    weights = terms.named(angle=1.0, force=1.0, dynamics=1.0, hill=1.0, prior=1.0)
    calls = [
        (models.PINNModel.__call__, lambda: net.apply(variables, win, jnp.zeros(5) - 0.01)),
        (models.PINNModel.encode, lambda: z),
        (models.PINNModel.decode, lambda: jax.jit(decode)(z, jnp.zeros(()))),
        (models.kinematics, lambda: jax.jit(lambda t: models.kinematics(
            lambda u: decode(z, u), t))(jnp.zeros(()))),
        (activation.window_activation, lambda: act),
        (losses.batch_loss, jax.jit(lambda: losses.batch_loss(
            encode, decode, base, state.params["physio"], consts, batch, weights,
            jax.random.PRNGKey(0), True))),
    ]
    sizes = {"n": n, "M": m, "W": w, "L": 16, "P": 5, "B": b, "n_terms": len(terms.names())}
    checked = 0
    for fn, run in calls:
        ret = typing.get_type_hints(fn)["return"]
        out = run()
        parts = typing.get_args(ret) if typing.get_origin(ret) is tuple else (ret,)
        outs = out if isinstance(out, tuple) else (out,)
        assert len(parts) == len(outs), fn
        for ann, val in zip(parts, outs):
            _dims(ann, val, dict(sizes))
        checked += 1
    assert checked >= 6
    # the step and predict functions: their Callable types name the shapes they return
    pred_ret = typing.get_args(typing.get_type_hints(train.make_predict)["return"])[1]
    q, f = train.make_predict(net)(variables, batch.emg)
    for ann, val in zip(typing.get_args(pred_ret), (q, f)):
        _dims(ann, val, dict(sizes))
    batch_hints = typing.get_type_hints(losses.Batch)
    for name, val in batch._asdict().items():
        _dims(batch_hints[name], val, dict(sizes, H=h))
