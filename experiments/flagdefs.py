"""The binaries' flag definitions, apart from their work: this module imports no JAX, so a
binary defines its flags (and answers ``--help``) before the heavy libraries load; the binaries
import :mod:`experiments.common` inside ``main``."""

from __future__ import annotations

from absl import flags

import dataclasses

from pinnmsk.config import SWEEP_LAYOUTS, CalibrationConfig, TrainConfig

DEFAULT_SPEC = "data_specs/synthetic_wrist.toml"


def define_data_flags(plots: bool = True, spec_from_run: bool = False) -> None:
    """--data_spec, --workdir and (for the binaries that write figures) --plots.

    ``spec_from_run``: the binary reads a trained run (evaluate, predict), so --data_spec
    defaults to the spec the run recorded in its config.json; otherwise it is required."""
    if spec_from_run:
        flags.DEFINE_string("data_spec", None, "Data spec (TOML); default: the one the run in "
                            "--workdir was trained with (its config.json).")
    else:
        flags.DEFINE_string("data_spec", None, "Data spec (TOML), e.g. " + DEFAULT_SPEC +
                            " (the embedded default data); see data_specs/README.md.")
        flags.mark_flag_as_required("data_spec")
    flags.DEFINE_string("workdir", None, "Work directory: checkpoints, metrics.json, plots.")
    flags.mark_flag_as_required("workdir")
    if plots:
        flags.DEFINE_boolean("plots", True, "Write PNG figures to WORKDIR/plots (each test "
                             "trial's predicted vs true angles and forces, the loss curves); "
                             "--noplots skips them (~2 s of a run).")


def define_extensions_flag() -> None:
    """--config for the binaries that read a trained run (evaluate, predict, calibrate): the
    file only registers what the run used; the run's settings come from its record."""
    flags.DEFINE_string("config", None, "The configs/*.py file the run was trained with, run "
                        "first for the loss terms, bodies and muscle models it registers (the "
                        "run's settings come from its config.json, not from this file).")


def _define(f, name: str) -> None:
    """One flag ``name`` for the dataclass field ``f`` (its default, help and choices)."""
    choices = f.metadata.get("choices")
    if choices:
        flags.DEFINE_enum(name, f.default, list(choices), f.metadata["help"])
    elif f.type == "tuple":  # comma-separated numbers (:func:`numbers_of`)
        flags.DEFINE_string(name, ",".join(f"{x:g}" for x in f.default), f.metadata["help"])
    else:
        {"int": flags.DEFINE_integer, "float": flags.DEFINE_float, "str": flags.DEFINE_string,
         "bool": flags.DEFINE_boolean}[f.type](name, f.default, f.metadata["help"])


def define_calibration_flags(exclude: tuple = ()) -> None:
    """``--calibrate_<field>`` for each :class:`CalibrationConfig` field not in ``exclude``."""
    for f in dataclasses.fields(CalibrationConfig):
        if f.name not in exclude:
            _define(f, "calibrate_" + f.name)


def calibration_config(**fixed) -> CalibrationConfig:
    """The :class:`CalibrationConfig` of the ``--calibrate_*`` flags, ``fixed`` fields given; a
    value it refuses is a usage error naming the flag."""
    from experiments.cli import UsageError

    vals = {f.name: getattr(flags.FLAGS, "calibrate_" + f.name)
            for f in dataclasses.fields(CalibrationConfig) if f.name not in fixed}
    try:
        return CalibrationConfig(**vals, **fixed)
    except ValueError as e:
        raise UsageError(f"--calibrate_{e}") from None


def define_train_flags() -> None:
    """One flag per :class:`TrainConfig` field (same name, default, help and choices), plus the
    run's device and layout flags."""
    flags.DEFINE_string("config", None, "A configs/*.py file whose get_config() returns the "
                        "run's TrainConfig; flags given on the command line override its fields.")
    for f in dataclasses.fields(TrainConfig):
        _define(f, f.name)
    flags.DEFINE_alias("physics_weight", "physics_weights")
    flags.DEFINE_enum("sweep_layout", "vmap", list(SWEEP_LAYOUTS),
                      "Layout of a sweep's K-model program (same numbers): vmap (the whole step "
                      "vmapped; fastest on a GPU) or unrolled_encoder (each model's encoder as "
                      "in a single run, the rest vmapped; ~10% faster on a CPU, one device).")
    flags.DEFINE_integer("seeds", 1, "Seeds per physics weight (--seed, --seed + 1, ...), "
                         "trained in one program; figures as mean ± sd over seeds and the seeds "
                         "as an ensemble with calibrated bands (sweep.json).", lower_bound=1)
    flags.DEFINE_integer("mesh_sweep", 1, "Devices along the sweep (model) axis.")
    flags.DEFINE_integer("mesh_data", 1, "Devices along the batch axis (data parallel).")
    flags.DEFINE_string("coordinator_address", None,
                        "Multi-host: address of process 0 for jax.distributed.initialize.")
    flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
    flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")
