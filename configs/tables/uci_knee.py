"""README table: real standing knee flexion (UCI) with the lab's generic model, 3 seeds.

  python -m experiments.table --config=configs/tables/uci_knee.py
"""


def get_config() -> dict:
    return {"title": "UCI standing knee flexion (real), the generic model, 30 epochs",
            "data_spec": "data_specs/uci_knee_standing.toml",
            "rows": [{"workdir": "runs/knee_seeds",
                      "flags": ["--epochs=30", "--physics_weights=0,0.01,0.1,1",
                                "--prior_weight=1", "--residual_weight=0.1", "--seeds=3"]}]}
