"""README table: real standing knee flexion (UCI) with the identified person's model, 3 seeds.

  python -m experiments.table --config=configs/tables/uci_knee_person.py
"""


def get_config() -> dict:
    return {"title": "UCI standing knee flexion (real), identified models, 30 epochs",
            "data_spec": "data_specs/uci_knee_standing_person.toml",
            "rows": [{"workdir": "runs/knee_person",
                      "flags": ["--epochs=30", "--physics_weights=0,0.01,0.1,1",
                                "--prior_weight=1", "--residual_weight=0.1",
                                "--ceiling_weight=10", "--seeds=3"]}]}
