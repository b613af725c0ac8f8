"""README table: OpenSim arm26 (2 DOF) with force labels, λ chosen on validation, 3 seeds.

  python -m experiments.table --config=configs/tables/arm26.py
"""


def get_config() -> dict:
    return {"title": "OpenSim arm26, with force labels, 80 epochs",
            "data_spec": "data_specs/opensim_arm26.toml",
            "rows": [{"workdir": "runs/arm_seeds",
                      "flags": ["--config=configs/sweep.py", "--physics_weights=0,1",
                                "--seeds=3"]}]}
