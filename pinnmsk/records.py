"""A run's records on disk: its configuration record and fingerprints, the inference record,
strict atomic JSON, and restoring a trained network from a run directory without its data."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import jax
import numpy as np

from pinnmsk import checkpoint, terms, train
from pinnmsk.errors import ConfigMismatch
from pinnmsk.data import dataset as ds_lib
from pinnmsk.prepare import net_from_record
from pinnmsk.config import TrainConfig


def spec_fingerprint(path: str) -> str:
    """SHA-256 of the data spec file: a resumed run must train on the spec it started with."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def data_fingerprint(data: ds_lib.Dataset) -> str:
    """SHA-256 of every trial's id, excitation and angles as loaded: a resumed run must see the
    data it started with (an edited recording changes it even when the spec does not)."""
    h = hashlib.sha256()
    for t in data.trials:
        h.update(t.id.encode())
        h.update(np.ascontiguousarray(t.excitation, np.float32).tobytes())
        h.update(np.ascontiguousarray(t.q_rad, np.float32).tobytes())
    return h.hexdigest()


def read_run_record(workdir: str) -> dict | None:
    """``workdir/config.json`` (the run's configuration record), None if there is none; a
    ConfigMismatch naming the file if it cannot be read (e.g. half-written)."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigMismatch(f"{path}: not a readable run record (a half-written file?); "
                             "delete it and its checkpoints/, or use a new --workdir") from None


def check_resumable(workdir: str, spec_path: str, action: str = "resume") -> None:
    """Before loading any data: a run record in ``workdir`` must be readable and made with the
    same data spec contents (the full comparison happens in :func:`fit`). ``action``: what the
    caller is about to do with the run ("resume", "evaluate"), for the message."""
    old = read_run_record(workdir)
    if old is None:
        return
    path = os.path.join(workdir, "config.json")
    sha = old.get("data_spec_sha256")
    if sha is not None and os.path.isfile(spec_path) and sha != spec_fingerprint(spec_path):
        raise ConfigMismatch(f"{path}: the run in this work directory used a different "
                             f"data_spec_sha256 (the contents of {spec_path} changed since); use "
                             f"a new --workdir or restore the spec to {action} it")


def check_same_data(workdir: str, data: ds_lib.Dataset, action: str = "evaluate") -> None:
    """The loaded ``data`` must be what the run in ``workdir`` was trained on (its recorded
    ``data_sha256``): an edited recording changes the data even when the spec does not."""
    old = read_run_record(workdir) or {}
    sha = old.get("data_sha256")
    if sha is not None and sha != data_fingerprint(data):
        raise ConfigMismatch(f"{os.path.join(workdir, 'config.json')}: the run in this work "
                             "directory was trained on other data (data_sha256 differs: a "
                             f"recording of {data.spec.path} changed since); restore the data "
                             f"to {action} it, or train a new run")


def check_config(workdir: str, record: dict) -> None:
    path = os.path.join(workdir, "config.json")
    old = read_run_record(workdir)
    record = json.loads(json.dumps(record, default=_plain))  # as it is on disk (tuples: lists)
    if old is not None:
        # a setting added after the run was recorded: the run used its default
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        old = json.loads(json.dumps({**defaults, **_upgraded(old)}, default=_plain))
        diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if diff:
            raise ConfigMismatch(
                f"{path}: the run in this work directory used a different {diff[0]} "
                f"({old.get(diff[0])!r}, now {record.get(diff[0])!r}); use a new --workdir "
                "or the same flags to resume")
    else:
        os.makedirs(workdir, exist_ok=True)
        write_json(path, record)


def _plain(x):
    return np.asarray(x).tolist()


def _upgraded(old: dict) -> dict:
    """A record of an earlier version in today's terms: its one ``physics_weight`` as
    ``physics_weights``, its loss weights (…, T) by name (the terms it had, in their order), a
    term it did not have at weight 0."""
    old = dict(old)
    w = np.asarray(old["weights"]) if isinstance(old.get("weights"), list) else None
    if "physics_weight" in old and "physics_weights" not in old:
        lam = old.pop("physics_weight")
        # a sweep recorded its first λ; its λ are the dynamics weights of its models (λ · 1)
        # (recorded in float32: the shortest decimal that is that float32, as the flag gave it)
        old["physics_weights"] = ([lam] if w is None or w.ndim == 1 else
                                  [float(str(np.float32(x))) for x in dict.fromkeys(
                                      w[:, terms.names().index("dynamics")].tolist())])
    if w is not None:
        old["weights"] = {n: w[..., j].tolist() for j, n in enumerate(terms.names()[:w.shape[-1]])}
    if isinstance(old.get("weights"), dict) and old["weights"]:
        # a term registered after the run was recorded did not weigh in it
        zero = (np.asarray(next(iter(old["weights"].values()))) * 0.0).tolist()
        old["weights"] = {**{n: zero for n in terms.names()}, **old["weights"]}
    return old


def recorded_weights(rec: dict) -> dict | None:
    """The loss weights ``{name: scalar or (K,)}`` a run recorded (None if none)."""
    return _upgraded(rec).get("weights")


def is_sweep(rec: dict) -> bool:
    """Whether the run record is a sweep's (K models stacked in its checkpoints)."""
    w = recorded_weights(rec)
    return bool(w) and terms.n_models(w) is not None


INFERENCE_RECORD = "inference.json"


def restore_from_record(workdir: str, rec: dict, spec, config: TrainConfig):
    """(net, best parameters) of ``workdir``'s newest checkpoint, from its inference record and
    spec alone (no data loaded). Raises ConfigMismatch if there is no checkpoint."""
    net = net_from_record(rec, spec)
    tx = train.make_optimizer(config, 1)  # the optimiser state's structure only
    # shapes only (jax.eval_shape): running the initialisers eagerly compiles ~120 small
    # programs, 4.6 s of predict's start-up
    template = jax.eval_shape(lambda: train.init_state(
        net, tx, (rec["window"], rec["n_muscles"]), len(rec["subjects"]), rec["n_muscles"],
        np.asarray(rec["bounds"], np.float32), rec["seed"]))
    epoch, _, _, best = checkpoint.restore_latest(workdir, template)
    if epoch == 0:
        raise ConfigMismatch(f"{workdir}/checkpoints: no checkpoint; train first")
    return net, best.params


def _json_safe(obj):
    """``obj`` with NumPy scalars as floats and NaN/Inf as null (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str, obj) -> None:
    """Write strict JSON atomically (a temporary file renamed over ``path``): a crash or a full
    disk never leaves a half-written file; NaN/Inf are written as null."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(_json_safe(obj), f, indent=1, allow_nan=False, default=float)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
