"""Device meshes for training: the sweep axis (K models) and the batch axis over devices.

A mesh has two named axes, ``"sweep"`` and ``"data"``. Stacked sweep states are split along their
leading (model) axis over ``"sweep"``; each batch is split along its window axis over ``"data"``
(gradients are then all-reduced by XLA). One device, or ``None`` for the mesh, is the plain
single-device program. Multi-host runs call :func:`initialize_distributed` first.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(sweep: int = 1, data: int = 1, devices=None) -> Mesh:
    """A (sweep × data) mesh over the first ``sweep * data`` devices."""
    devices = jax.devices() if devices is None else devices
    need = sweep * data
    if sweep < 1 or data < 1:
        raise ValueError(f"mesh sizes must be >= 1, got sweep={sweep}, data={data}")
    if need > len(devices):
        raise ValueError(f"a {sweep}x{data} mesh needs {need} devices but {len(devices)} are "
                         "visible; on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N")
    return Mesh(np.asarray(devices[:need]).reshape(sweep, data), ("sweep", "data"))


def shard_stacked(tree, mesh: Mesh):
    """Place a pytree whose leaves have a leading model axis K, split over ``"sweep"``."""
    def put(x):
        x = jax.numpy.asarray(x)
        spec = P("sweep") if x.ndim >= 1 else P()
        return jax.device_put(x, NamedSharding(mesh, spec))
    return jax.tree_util.tree_map(put, tree)


def replicate(tree, mesh: Mesh):
    """Place a pytree replicated on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, P()))


def constrain_batch(batch, mesh: Mesh):
    """Inside jit: split every leaf of a batch along its first (window) axis over ``"data"``."""
    return jax.tree_util.tree_map(
        lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P("data"))), batch)


def initialize_distributed(coordinator_address: str | None, num_processes: int | None,
                           process_id: int | None) -> None:
    """``jax.distributed.initialize`` for multi-host runs (no-op when no coordinator is given)."""
    if coordinator_address:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id)
