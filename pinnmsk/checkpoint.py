"""A run's orbax checkpoints: one manager per work directory, used as a context manager.

Each checkpoint holds the train state, the parameters selected on validation data so far
(:class:`Best`) and JSON metadata: the history, the selection, and the *signature* of the state's
parameters (every leaf's path, shape and dtype). Restoring compares the stored signature with the
model's before reading any array, so a checkpoint written by another model or version is named
as such (:class:`ConfigMismatch`) instead of surfacing as an orbax error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import NamedTuple

import jax
import numpy as np

from pinnmsk.errors import ConfigMismatch


class Best(NamedTuple):
    """The parameters selected on validation data: per model (K leading for a sweep) the
    epoch with the lowest validation score (the last epoch when there is no validation data)."""

    params: dict
    epoch: np.ndarray  # (K,) 1-based epoch
    score: np.ndarray  # (K,) validation score at that epoch (NaN: no validation data)


def signature(tree) -> list:
    """[[path, shape, dtype], ...] of every leaf of ``tree`` (arrays or ShapeDtypeStructs)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(p), list(np.shape(x)), str(np.dtype(x.dtype))]
            for p, x in leaves]


class Checkpoints:
    """``workdir/checkpoints``, keeping the newest two (synchronous writes)."""

    def __init__(self, workdir: str):
        import orbax.checkpoint as ocp  # here: 0.25 s to import; only runs with a workdir need it

        self._args = ocp.args
        self.dir = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self._mgr = ocp.CheckpointManager(self.dir, options=ocp.CheckpointManagerOptions(
            max_to_keep=2, enable_async_checkpointing=False))

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._mgr.close()

    def save(self, epoch: int, state, history: list, best: Best) -> None:
        meta = {"history": history, "best_epoch": np.asarray(best.epoch).tolist(),
                "best_score": [None if not np.isfinite(x) else float(x) for x in best.score],
                "signature": signature(state.params)}
        a = self._args
        self._mgr.save(epoch, args=a.Composite(state=a.StandardSave(state),
                                               best=a.StandardSave(best.params),
                                               meta=a.JsonSave(meta)))
        self._mgr.wait_until_finished()
        _write_manifest(os.path.join(self.dir, str(epoch)))

    def restore(self, template):
        """(epoch, state, history, best) of the newest checkpoint, or (0, template, [], None).
        ``template``: the state's structure (arrays or ``jax.eval_shape`` output)."""
        step = self._mgr.latest_step()
        if step is None:
            return 0, template, [], None
        path = os.path.join(self.dir, str(step))
        _check_manifest(path)
        a = self._args
        with _readable(path):
            meta = self._mgr.restore(step, args=a.Composite(meta=a.JsonRestore()))["meta"]
        stored, model = meta.get("signature"), signature(template.params)
        if stored is not None and stored != model:
            raise ConfigMismatch(f"{path}: the checkpoint's parameters do not fit this model "
                                 f"({_first_difference(stored, model)}; it "
                                 "was written by another pinnmsk version or model); use a new "
                                 "--workdir or delete the old one")
        try:
            with _readable(path, passing=(ValueError,) if stored is None else ()):
                got = self._mgr.restore(step, args=a.Composite(
                    state=a.StandardRestore(template), best=a.StandardRestore(template.params)))
        except ConfigMismatch:  # a damaged checkpoint, named by _readable
            raise
        except ValueError:  # a checkpoint from before signatures were stored
            raise ConfigMismatch(f"{path}: the checkpoint's parameters do not fit this model "
                                 "(it was written by another pinnmsk version or model); use a "
                                 "new --workdir or delete the old one") from None
        score = np.array([np.nan if x is None else x for x in meta["best_score"]], float)
        return (int(step), got["state"], meta["history"],
                Best(got["best"], np.asarray(meta["best_epoch"]), score))


_MANIFEST = "pinnmsk_files.json"


def _file_digests(path: str) -> dict:
    """{relative path: [size in bytes, sha256]} of every file under ``path`` but the manifest."""
    out = {}
    for root, _, names in os.walk(path):
        for n in sorted(names):
            f = os.path.join(root, n)
            rel = os.path.relpath(f, path)
            if rel in (_MANIFEST, _MANIFEST + ".tmp"):
                continue
            with open(f, "rb") as fh:
                out[rel] = [os.path.getsize(f), hashlib.sha256(fh.read()).hexdigest()]
    return out


def _write_manifest(path: str) -> None:
    """Record the size and digest of each file of the finished checkpoint at ``path``
    (written atomically: a checkpoint without one is read unchecked)."""
    digests = _file_digests(path)
    tmp = os.path.join(path, _MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(digests, fh)
    os.replace(tmp, os.path.join(path, _MANIFEST))


def _check_manifest(path: str) -> None:
    """Compare the checkpoint at ``path`` with its manifest before orbax reads it: a truncated,
    altered or missing file is one ConfigMismatch line. (Letting orbax find it instead leaves
    its reader threads printing "Event loop is closed" tracebacks after the error.)"""
    f = os.path.join(path, _MANIFEST)
    if not os.path.exists(f):
        return  # written before manifests, or by another tool
    want = json.load(open(f))
    have = _file_digests(path)
    for rel, (size, digest) in sorted(want.items()):
        got = have.get(rel)
        why = ("is missing" if got is None else
               f"has {got[0]} bytes, {size} when written" if got[0] != size else
               "differs from what was written" if got[1] != digest else None)
        if why:
            raise ConfigMismatch(f"{path}: the checkpoint cannot be read ({rel} {why}): it is "
                                 f"damaged (a truncated or partly copied file?); delete {path} "
                                 "to fall back to the previous checkpoint, or train again in a "
                                 "new --workdir")


@contextlib.contextmanager
def _readable(path: str, passing: tuple = ()):
    """Reading the checkpoint at ``path``: a damaged one (a truncated or half-copied file, which
    orbax reports as a multi-line OCDBT/tensorstore error) becomes one ConfigMismatch line
    naming the folder and the fix. ``passing``: exception types left to the caller."""
    try:
        yield
    except ConfigMismatch:
        raise
    except passing:
        raise
    except Exception as e:  # orbax/tensorstore raise many types for a damaged file
        what = " ".join(str(e).split())[:160]
        raise ConfigMismatch(f"{path}: the checkpoint cannot be read ({type(e).__name__}: "
                             f"{what}...): it is damaged (a truncated or partly copied file?); "
                             f"delete {path} to fall back to the previous checkpoint, or train "
                             "again in a new --workdir") from None


def _first_difference(stored: list, model: list) -> str:
    old = {p: (s, d) for p, s, d in stored}
    new = {p: (s, d) for p, s, d in model}
    for p in sorted(set(old) | set(new)):
        if old.get(p) != new.get(p):
            if p not in new:
                return f"it has {p}, the model does not"
            if p not in old:
                return f"the model has {p}, it does not"
            return f"{p} is {old[p][0]} {old[p][1]} there, {new[p][0]} {new[p][1]} here"
    return "same leaves, different order"


def restore_latest(workdir: str, template):
    """:meth:`Checkpoints.restore` of ``workdir``'s checkpoints."""
    with Checkpoints(workdir) as ckpt:
        return ckpt.restore(template)
