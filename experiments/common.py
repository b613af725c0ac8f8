"""Flags and steps shared by train / evaluate / sweep: config from flags, data, outputs."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib.util
import os
import sys

import jax
import numpy as np
from absl import flags

from experiments.cli import UsageError, WorkdirError
from pinnmsk import (checkpoint, plots, prepare, records, run_report, runner, sanity, sharding,
                     terms, train)
from pinnmsk.data import dataset, loading, spec
from pinnmsk.config import TrainConfig

FLAGS = flags.FLAGS


def spec_of_run(workdir: str) -> str:
    """--data_spec, or where it is not given the spec path the run in ``workdir`` recorded."""
    if FLAGS.data_spec:
        return FLAGS.data_spec
    rec = records.read_run_record(workdir) or {}
    path = rec.get("data_spec")
    if not path:
        raise UsageError(f"{os.path.join(workdir, 'config.json')}: no run record naming its data "
                         "spec; pass --data_spec")
    return path


@contextlib.contextmanager
def claimed_workdir(path: str):
    """Hold ``path`` as this process's work directory (:func:`_claim`) for the ``with`` block.

    When the block fails before the run wrote anything (bad data, a bad flag, a changed spec),
    what the claim made is taken back: the ``.lock`` file, and the folder if it was new, so an
    exit-2 case leaves nothing behind."""
    existed = os.path.isdir(path)
    lock_path = os.path.join(path, ".lock")
    lock_existed = os.path.exists(lock_path)
    lock = _claim(path)
    try:
        yield lock
    except BaseException:
        lock.close()
        with contextlib.suppress(OSError):
            if not lock_existed:
                os.remove(lock_path)
            if not existed and not os.listdir(path):
                os.rmdir(path)
        raise


def _claim(path: str):
    """Check that ``path`` can be a run's work directory and hold it for this process.

    Before any data is loaded: a file in its place, a folder that cannot be created or written,
    or another run holding it (an exclusive ``fcntl`` lock on ``path/.lock``, released when the
    process ends, even by ``kill -9``) stop with one line. Returns the open lock file; keep it
    referenced for the run's lifetime."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f"--workdir={path} is a file; give a folder (it is created if missing)")
    try:
        os.makedirs(path, exist_ok=True)
        lock = open(os.path.join(path, ".lock"), "a+")
    except OSError as e:
        raise WorkdirError(f"--workdir={path}: cannot create or write it ({e.strerror}); choose "
                         "another folder") from None
    if not os.access(path, os.W_OK):
        raise WorkdirError(f"--workdir={path} is not writable; choose another folder")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        other = lock.read().strip() or "another process"
        lock.close()
        raise WorkdirError(f"--workdir={path} is in use by a running job ({other}); wait for it "
                         "or choose another folder") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}")
    lock.flush()
    return lock


def mesh_from_flags():
    """The device mesh the flags ask for, or None for the plain single-device program."""
    sharding.initialize_distributed(FLAGS.coordinator_address, FLAGS.num_processes,
                                    FLAGS.process_id)
    if FLAGS.mesh_sweep == 1 and FLAGS.mesh_data == 1:
        return None
    try:
        return sharding.make_mesh(FLAGS.mesh_sweep, FLAGS.mesh_data)
    except ValueError as e:
        raise UsageError(f"--mesh_sweep/--mesh_data: {e}")


def run_config_file(path: str):
    """Execute the configs/*.py file ``path`` (its registrations take effect) and return it
    as a module; a usage error naming the file if it is missing or fails."""
    if not os.path.isfile(path):
        raise UsageError(f"--config={path}: no such file; give a configs/*.py file")
    spec_ = importlib.util.spec_from_file_location("pinnmsk_run_config", path)
    module = importlib.util.module_from_spec(spec_)
    try:
        spec_.loader.exec_module(module)
    except Exception as e:  # a user's file: report it in one line
        raise UsageError(f"--config={path}: running it failed ({type(e).__name__}: {e})")
    return module


def config_module():
    """The module --config names (None without it); a usage error naming the file otherwise."""
    if not FLAGS.config:
        return None
    path = FLAGS.config
    module = run_config_file(path)
    try:
        config = module.get_config()
    except Exception as e:  # a user's file: report it in one line
        raise UsageError(f"--config={path}: get_config() failed ({type(e).__name__}: {e})")
    if not isinstance(config, TrainConfig):
        raise UsageError(f"--config={path}: get_config() must return a pinnmsk.config.TrainConfig")
    module.config = config
    return module


def config_from_flags(module=None) -> TrainConfig:
    """The run's :class:`TrainConfig`: --config's (or the defaults) with every flag given on
    the command line applied over it; an invalid value is a usage error naming the flag.
    ``module``: --config's module when the caller has loaded it (:func:`config_module`), so the
    file runs once."""
    module = module or config_module()
    base = module.config if module is not None else TrainConfig()
    values = {}
    for f in dataclasses.fields(TrainConfig):
        if FLAGS[f.name].present:
            v = getattr(FLAGS, f.name)
            values[f.name] = tuple(as_float_list(v, f.name)) if f.type == "tuple" else v
    try:
        config = dataclasses.replace(base, **values)
        terms.weights_for(config)  # --term_weights names registered terms
        return config
    except ValueError as e:
        raise UsageError(f"--{e}") from None


def load_data(path: str) -> dataset.Dataset:
    print(f"loading {path}", file=sys.stderr, flush=True)
    data = loading.load_dataset(spec.load_spec(path), progress=True)
    if data.spec.person is not None:
        print(f"identifying each subject's model from its training trials before training "
              f"([person]: {', '.join(data.spec.person.identify)}; a minute or so)",
              file=sys.stderr, flush=True)
    return data


def report_sanity(prep) -> dict:
    """Print the model sanity report over the training motion (stderr) and return it."""
    report = sanity.sanity_by_subject(prep.data, prep.train_trials,
                                           prep.consts.tendon)
    print(sanity.sanity_table(report), file=sys.stderr, flush=True)
    return report


def load_config(workdir: str) -> tuple[TrainConfig, dict]:
    """A trained run's :class:`TrainConfig` and record; --config, where the binary has it and
    it is given, runs first (the run's registrations)."""
    if getattr(FLAGS, "config", None):
        run_config_file(FLAGS.config)
    rec = records.read_run_record(workdir)
    if rec is None:
        raise UsageError(f"{os.path.join(workdir, 'config.json')}: not found; train first with "
                         f"python -m experiments.train --workdir={workdir}")
    return TrainConfig.from_record(rec), rec


def write_plots(workdir: str, prep, per_trial, history, labels=None, tag: str = "",
                weights=None) -> list:
    """One figure per test trial (predicted vs true) and the loss curves (the terms ``weights``
    use); none with --noplots."""
    if not FLAGS.plots:
        return []
    d = os.path.join(workdir, "plots")
    os.makedirs(d, exist_ok=True)
    paths = []
    for item in per_trial or ():
        p = os.path.join(d, f"test_{item['id'].replace('/', '_')}{tag}.png")
        plots.plot_trial(p, item, prep.data.spec.labels.coordinates, prep.data.spec.muscle_names)
        paths.append(p)
    if history:
        p = os.path.join(d, "loss_curves.png")
        plots.plot_losses(p, history, labels, weights)
        paths.append(p)
    return paths


def as_float_list(text: str, flag: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--{flag}={text!r} must be comma-separated numbers, e.g. 0,0.1,1,10")
    if not vals or min(vals) < 0:
        raise UsageError(f"--{flag} needs at least one non-negative number")
    return vals


class Scalars:
    """Per-epoch loss and loss terms as TensorBoard scalars under ``workdir/tensorboard``
    (``tensorboard --logdir WORKDIR/tensorboard``); one run per model of a sweep, named by λ."""

    def __init__(self, workdir: str, physics_weights):
        lams = np.atleast_1d(physics_weights)
        names = ["."] if len(lams) == 1 else [f"lambda_{k}_{lam:g}" for k, lam in enumerate(lams)]
        self.dirs = [os.path.join(workdir, "tensorboard", n) for n in names]
        self.writers = []  # opened at the first epoch, so a run that fails to start writes none

    def __call__(self, record: dict) -> None:
        if not self.writers:
            # imported here: tensorboardX imports torch where it is installed (~1 s of start-up
            # for every binary, --help included)
            import tensorboardX
            self.writers = [tensorboardX.SummaryWriter(d) for d in self.dirs]
        for w, loss, values in zip(self.writers, record["loss"], record["terms"]):
            w.add_scalar("loss/total", loss, record["epoch"])
            for name, v in zip(terms.names(), values):
                w.add_scalar(f"loss/{name}", v, record["epoch"])
            w.flush()

    def close(self) -> None:
        for w in self.writers:
            w.close()


def fit_or_exit(prep, config: TrainConfig, weights, physics_weights, seeds=None,
                workdir: str | None = None):
    """``runner.fit`` into ``workdir`` (default --workdir) on the flags' mesh, with TensorBoard
    scalars; divergence exits 3, misfit sizes exit 2. ``seeds``: one per model of a sweep
    (``runner.fit``)."""
    workdir = workdir or FLAGS.workdir
    scalars = Scalars(workdir, physics_weights)
    try:
        return runner.fit(prep, config, weights, workdir, mesh=mesh_from_flags(),
                          on_epoch=scalars, sweep_layout=FLAGS.sweep_layout, seeds=seeds)
    except runner.TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
    except OSError as e:  # a full disk or a folder gone read-only while checkpointing
        print(f"error: {workdir}: cannot write the run ({e.strerror or e}); free disk "
              "space or choose another --workdir; the last complete checkpoint is kept",
              file=sys.stderr)
        sys.exit(4)
    except ValueError as e:  # mesh and batch sizes that do not fit together
        raise UsageError(str(e))
    finally:
        scalars.close()


def restore_run(prep, config: TrainConfig, n_models: int | None = None,
                workdir: str | None = None):
    """(epoch, state, history, best) of ``workdir``'s (default --workdir) newest checkpoint; a
    usage error if none. ``n_models``: a sweep's, whose states are stacked."""
    workdir = workdir or FLAGS.workdir
    tx = train.make_optimizer(config, 1)  # the optimiser state's structure only
    one = lambda: prepare.new_state(prep, tx, config.seed)
    template = jax.eval_shape(one if n_models is None else  # shapes only
                              lambda: train.stack_states([one()] * n_models))
    epoch, state, history, best = checkpoint.restore_latest(workdir, template)
    if epoch == 0:
        raise UsageError(f"{workdir}/checkpoints: no checkpoint; train first")
    return epoch, state, history, best


def write_run_outputs(prep, config: TrainConfig, best, extra: dict, history: list,
                      weights=None, workdir: str | None = None) -> dict:
    """The evaluation of ``best`` into ``workdir`` (default --workdir): metrics.json (with
    ``extra``), the inference record predict reads, and the plots; returns the metrics block."""
    workdir = workdir or FLAGS.workdir
    block, per_trial = run_report.metrics_block(prep, best.params, config,
                                                run_report.selection_record(best), extra)
    records.write_json(os.path.join(workdir, "metrics.json"), block)
    sha = records.spec_fingerprint(prep.data.spec.path)
    records.write_json(os.path.join(workdir, records.INFERENCE_RECORD),
                       prepare.inference_record(prep, config, sha))
    write_plots(workdir, prep, per_trial, history, weights=weights)
    return block
