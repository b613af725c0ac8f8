"""One README table, from its config: run the table's sweeps (each resumes, so a finished one
only re-evaluates, and refuses a work directory made with other settings), then print the table
in README's format, with the linear ridge decoder on the same split as a row.

  python -m experiments.table --config=configs/tables/wrist_v2_labels.py

A table config (``configs/tables/*.py``) returns {"title", "data_spec", "rows": [{"workdir",
"flags": [experiments.sweep flags]}]}. Each physics weight's row has its test figures as mean ±
sd over seeds and its validation loss against λ = 0 with a 95 % interval over seeds ×
validation trials, which says whether it excludes zero.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from absl import flags

from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "A configs/tables/*.py file.")
flags.mark_flag_as_required("config")
flags.DEFINE_boolean("reuse", False, "Read each row's sweep.json as it is, without running the "
                     "sweep (which resumes: a finished one re-evaluates and checks that its "
                     "settings are the row's).")


def _config(path: str) -> dict:
    if not os.path.isfile(path):
        raise cli.UsageError(f"--config={path}: no such file; give a configs/tables/*.py file")
    spec = importlib.util.spec_from_file_location("pinnmsk_table_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def _run_sweep(data_spec: str, row: dict) -> dict:
    """The row's sweep.json, running ``experiments.sweep`` first where needed."""
    path = os.path.join(row["workdir"], "sweep.json")
    if not (FLAGS.reuse and os.path.exists(path)):
        cmd = [sys.executable, "-m", "experiments.sweep", f"--data_spec={data_spec}",
               f"--workdir={row['workdir']}", *row["flags"]]
        print("running " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
        r = subprocess.run(cmd)
        if r.returncode != 0:
            raise cli.UsageError(f"{' '.join(cmd[2:])} failed (exit {r.returncode})")
    else:
        print(f"using {path} as it is (--reuse)", file=sys.stderr, flush=True)
    with open(path) as f:
        return json.load(f)


def main(argv):
    del argv
    from experiments import common  # JAX and the library: after the flags (--help stays fast)
    from pinnmsk import ridge, tables

    table = _config(FLAGS.config)
    sweeps = [_run_sweep(table["data_spec"], row) for row in table["rows"]]
    data = common.load_data(table["data_spec"])
    coords = list(data.spec.labels.coordinates)
    split = data.split()
    lags = ridge.lags(data.window)
    emg = lambda t: t.excitation
    fit = lambda goal: ridge.ridge_decoder(split["train"], split["validation"],
                                                 split["test"], lags, emg, goal)
    angles = [fit(lambda t, j=j: t.q_rad[:, [j]]) for j in range(len(coords))]
    label_free = any("--force_labels=false" in row["flags"] for row in table["rows"])
    rows = [r for sw in sweeps for r in tables.sweep_rows(sw, coords)]
    rows.append(tables.ridge_row(angles, fit(lambda t: t.forces_n), label_free))
    print(tables.markdown(table["title"], coords, rows))
    print(f"(command: python -m experiments.table --config={FLAGS.config})")


if __name__ == "__main__":
    cli.run(main)
