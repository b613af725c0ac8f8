"""Musculotendon lengths of the generic model's knee-crossing muscles over the knee grid of
knee_muscle_analysis_Length_hip0.sto, hip and ankle coordinates at 0 (standing), as OpenSim
computes them (the patellofemoral coupling assembled, the knee unclamped below 0 rad, as the
shared table was made). Reproduces that table's four columns to 5e-9 m and adds the muscles
without an EMG channel. Needs the optional `opensim` package (pip install opensim, 4.6):

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
rows = []
for q in grid:
    knee.setValue(state, float(q), True)
    model.realizePosition(state)
    rows.append([q] + [model.getMuscles().get(m).getLength(state) for m in MUSCLES])
out = os.path.join(HERE, "knee_muscle_analysis_Length_hip0_ankle0.sto")
with open(out, "w") as f:
    f.write(f"Length\nversion=1\nnRows={len(rows)}\nnColumns={len(MUSCLES) + 1}\ninDegrees=no\n"
            "endheader\n" + "\t".join(["knee_angle_r"] + MUSCLES) + "\n")
    for r in rows:
        f.write("\t".join(f"{v:.8f}" for v in r) + "\n")
print("wrote", out)
