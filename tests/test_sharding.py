"""A 2x4 (sweep x data) mesh on 8 emulated CPU devices gives the same sweep as one device."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import dataclasses, sys
    import jax, numpy as np
    from pinnmsk import host, prepare, runner, sharding, terms, train
    from pinnmsk.data import loading, spec
    host.keep_freed_memory(); host.run_on_calling_thread()  # as the binaries run
    assert len(jax.devices()) == 8, jax.devices()
    data = loading.load_dataset(spec.load_spec(sys.argv[1]))
    cfg = train.TrainConfig(epochs=2, batch_size=64, n_colloc=2, latent=16)
    prep = prepare.prepare(data, cfg)
    w = terms.weights_for(cfg, [0.0, 1.0])
    one, h1, _, _ = runner.fit(prep, cfg, w, None, log=lambda s: None)
    mesh = sharding.make_mesh(2, 4)
    many, h8, _, _ = runner.fit(prep, cfg, w, None, log=lambda s: None, mesh=mesh)
    leaf = jax.tree_util.tree_leaves(many.params)[0]
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    for a, b in zip(jax.tree_util.tree_leaves(one.params), jax.tree_util.tree_leaves(many.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-5)
    np.testing.assert_allclose([h["loss"] for h in h1], [h["loss"] for h in h8], rtol=1e-4)
    print("SHARDED_OK")
""")


def test_sweep_on_emulated_2x4_mesh_matches_one_device(tiny):
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "")
               + " --xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", SCRIPT, tiny], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "SHARDED_OK" in r.stdout, r.stderr[-4000:]
