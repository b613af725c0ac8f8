"""Writing files as a lab would hand them over: OpenSim .mot/.sto and CSV tables
(:func:`write_opensim`, :func:`write_csv`), and a whole simulated dataset (:func:`write_dataset`:
raw sEMG as CSV or NPZ, kinematics and forces as OpenSim tables, MuscleAnalysis-shaped geometry,
the simulated truth in model.json and the dataset's spec.toml; atomic: files go to a temporary
folder moved into place at the end).
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from pinnmsk.data.toml_fields import dumps_toml


def write_opensim(path: str, name: str, time, columns, values, in_degrees: bool = False,
                  time_label: str = "time") -> None:
    """Write an OpenSim .mot/.sto (version 1 header, tab-separated)."""
    values = np.asarray(values, float)
    time = np.asarray(time, float)
    lines = [name, "version=1", f"nRows={len(time)}", f"nColumns={len(columns) + 1}",
             f"inDegrees={'yes' if in_degrees else 'no'}", "endheader",
             "\t".join([time_label, *columns])]
    body = np.column_stack([time, values])
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
        np.savetxt(f, body, delimiter="\t", fmt="%.8g")


def write_csv(path: str, time, columns, values) -> None:
    """Write a CSV with a ``time`` column and one column per name."""
    body = np.column_stack([np.asarray(time, float), np.asarray(values, float)])
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(["time", *columns]) + "\n")
        np.savetxt(f, body, delimiter=",", fmt="%.6g")


def write_dataset(ds, out_dir: str) -> str:
    """Write ``ds`` (:class:`pinnmsk.data.synthetic.SyntheticDataset`) under ``out_dir``;
    returns the path of its ``spec.toml``. A failed run leaves nothing half-written."""
    tmp = out_dir.rstrip("/") + ".partial"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    names, coords, t = list(ds.muscles), list(ds.coordinates), ds.t_s
    tl = np.asarray(t[::ds.decimation])
    emg_name = f"emg.{ds.emg_format}"
    for subject in ds.subjects:
        for trial in subject["trials"]:
            d = os.path.join(tmp, subject["name"], trial["name"])
            os.makedirs(d)
            raw = trial["raw_emg_v"]
            if ds.emg_format == "npz":
                np.savez(os.path.join(d, emg_name), time=np.asarray(t, np.float64),
                         **{m: raw[:, j].astype(np.float32) for j, m in enumerate(names)})
            else:
                write_csv(os.path.join(d, emg_name), np.asarray(t), names, raw)
            write_opensim(os.path.join(d, "kinematics.mot"), "kinematics", tl, coords,
                                  np.rad2deg(trial["q_rad"][::ds.decimation]), in_degrees=True)
            for fname, key in (("muscle_forces", "forces_n"), ("activations", "activations"),
                               ("excitations", "excitations")):
                write_opensim(os.path.join(d, f"{fname}.sto"), fname, tl, names,
                                      trial[key][::ds.decimation])
    for name, index, columns, values, index_label in ds.geometry_tables:
        path = os.path.join(tmp, f"muscle_analysis_{name}.sto")
        kw = {} if index_label is None else {"time_label": index_label}
        write_opensim(path, name.split("_")[0], index, columns, values, **kw)
    with open(os.path.join(tmp, "model.json"), "w") as f:
        json.dump(ds.truth, f, indent=1)
    with open(os.path.join(tmp, "spec.toml"), "w") as f:
        f.write(dumps_toml(ds.spec, "Synthetic dataset written by python -m experiments.simulate.\n"
                                    "Field reference: data_specs/README.md."))
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return os.path.join(out_dir, "spec.toml")
