"""The physics API's shape annotations (pinnmsk.shapes, jaxtyping) resolve and describe what the
functions return, with one size per dimension name across a call (n coordinates, M muscles)."""

import typing

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from pinnmsk import dynamics, msk, muscle
from pinnmsk.data import dataset, spec
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
        model = dataset.build_model(spec.load_spec(str(ROOT / "data_specs" / path)))
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
            _dims(hints["return"], fn(*args), dict(sizes))
        assert typing.get_type_hints(msk.MskModel)["body"] is dynamics.BodyModel
    # the check itself can fail: a moment-arm matrix is not (n, M)
    bad = Float[Array, "n M"]
    try:
        _dims(bad, jnp.zeros((6, 2)), {"n": 2, "M": 6})
    except AssertionError:
        pass
    else:
        raise AssertionError("a transposed shape passed the check")
