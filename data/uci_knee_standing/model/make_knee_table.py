"""Musculotendon lengths of the generic model's knee-crossing muscles over the knee grid of
knee_muscle_analysis_Length_hip0.sto, hip and ankle coordinates at 0 (standing), as OpenSim
computes them (the patellofemoral coupling assembled, the knee unclamped below 0 rad, as the
shared table was made). Reproduces that table's four columns to 5e-9 m and adds the muscles
without an EMG channel. Also writes knee_hip_muscle_analysis_Length_ankle0.sto: the same
muscles over the knee grid × hip flexion −10…60° (every 5°), ankle at 0, a time column then
both coordinates in radians (the layout of arm26's grid tables), so that a spec can hold the
unrecorded hip at a flexed angle (geometry.held_coordinates_rad). Needs the optional `opensim`
package (pip install opensim, 4.6):

    python data/uci_knee_standing/model/make_knee_table.py
"""

import os

import numpy as np
import opensim as osim

HERE = os.path.dirname(os.path.abspath(__file__))
MUSCLES = ["recfem_r", "bflh_r", "vasmed_r", "semiten_r", "semimem_r", "bfsh_r", "vaslat_r",
           "vasint_r", "gaslat_r", "gasmed_r", "grac_r", "sart_r"]

model = osim.Model(os.path.join(HERE, "subject_walk_armless.osim"))
state = model.initSystem()
coords = model.getCoordinateSet()
for i in range(coords.getSize()):
    c = coords.get(i)
    if c.getName() != "knee_angle_r" and not c.getLocked(state):
        c.setValue(state, 0.0, False)
model.assemble(state)
knee = coords.get("knee_angle_r")
knee.setClamped(state, False)
grid = np.loadtxt(os.path.join(HERE, "knee_muscle_analysis_Length_hip0.sto"), skiprows=7)[:, 0]
HIP = np.radians(np.arange(-10.0, 60.1, 5.0))
hip = coords.get("hip_flexion_r")


def lengths(q_knee, q_hip):
    hip.setValue(state, float(q_hip), False)
    knee.setValue(state, float(q_knee), True)
    model.realizePosition(state)
    return [model.getMuscles().get(m).getLength(state) for m in MUSCLES]


def write(name, columns, rows):
    out = os.path.join(HERE, name)
    with open(out, "w") as f:
        f.write(f"Length\nversion=1\nnRows={len(rows)}\nnColumns={len(columns)}\n"
                "inDegrees=no\nendheader\n" + "\t".join(columns) + "\n")
        for r in rows:
            f.write("\t".join(f"{v:.8f}" for v in r) + "\n")
    print("wrote", out)


write("knee_muscle_analysis_Length_hip0_ankle0.sto", ["knee_angle_r"] + MUSCLES,
      [[q] + lengths(q, 0.0) for q in grid])
pairs = [(k, h) for h in HIP for k in grid]
write("knee_hip_muscle_analysis_Length_ankle0.sto",
      ["time", "knee_angle_r", "hip_flexion_r"] + MUSCLES,
      [[0.01 * i, k, h] + lengths(k, h) for i, (k, h) in enumerate(pairs)])
