"""Copy a lab dataset folder, converting CSV tables (raw EMG, MVC and rest recordings) to NPZ.

  python -m experiments.to_npz --src=../shared/opensim_wrist_v2 --out=data/opensim_wrist_v2

Each ``*.csv`` (first column time [s], one column per channel) becomes ``*.npz`` with a float64
``time`` array and one float32 array per column: about a quarter of the text's size, read 20x
faster, and exact to float32 (7 significant digits, more than an sEMG amplifier's resolution).
Every other file (.mot, .sto, .osim, .json, ...) is copied unchanged. The output folder is
written under a temporary name and moved into place at the end, so a failed run leaves nothing.
"""

from __future__ import annotations

import os
import shutil
import sys

import numpy as np
from absl import flags

from experiments import cli
from pinnmsk.data import opensim

FLAGS = flags.FLAGS
flags.DEFINE_string("src", None, "Dataset folder to convert.")
flags.DEFINE_string("out", None, "Output folder (must not exist).")
flags.DEFINE_list("skip", [], "File names to leave out (e.g. activations.sto).")
flags.mark_flags_as_required(["src", "out"])


def convert(src: str, out: str, skip=()) -> int:
    """Write the converted copy of ``src`` to ``out``; returns the number of CSV files converted."""
    n = 0
    for dirpath, _, files in os.walk(src):
        dst_dir = os.path.join(out, os.path.relpath(dirpath, src))
        os.makedirs(dst_dir, exist_ok=True)
        for name in sorted(files):
            if name in skip:
                continue
            path = os.path.join(dirpath, name)
            if name.lower().endswith(".csv"):
                tab = opensim.read_csv(path)
                arrays = {c: tab.values[:, i].astype(np.float32)
                          for i, c in enumerate(tab.columns)}
                np.savez_compressed(os.path.join(dst_dir, name[:-4] + ".npz"),
                                    time=tab.time, **arrays)
                n += 1
            else:
                shutil.copy2(path, os.path.join(dst_dir, name))
    return n


def main(argv):
    del argv
    if not os.path.isdir(FLAGS.src):
        raise cli.UsageError(f"--src={FLAGS.src}: not a folder")
    if os.path.exists(FLAGS.out):
        raise cli.UsageError(f"--out={FLAGS.out} exists; remove it or choose another folder")
    tmp = FLAGS.out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n = convert(FLAGS.src, tmp, set(FLAGS.skip))
        os.replace(tmp, FLAGS.out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {FLAGS.out}: {n} CSV table(s) as NPZ, everything else copied", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
