"""README table: OpenSim wrist v2 with force labels, λ chosen on validation, 3 seeds.

  python -m experiments.table --config=configs/tables/wrist_v2_labels.py
"""


def get_config() -> dict:
    return {"title": "OpenSim wrist v2, with force labels, 25 epochs",
            "data_spec": "data_specs/opensim_wrist_v2.toml",
            "rows": [{"workdir": "runs/v2s_seeds",
                      "flags": ["--physics_weights=0,1,10", "--epochs=25", "--seeds=3"]}]}
