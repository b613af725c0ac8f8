"""README table: OpenSim wrist v2 with 10 % of the training data labelled, with the prior.

  python -m experiments.table --config=configs/tables/wrist_v2_10pct.py
"""


def get_config() -> dict:
    return {"title": "OpenSim wrist v2, 10 % of training labelled, prior, 25 epochs",
            "data_spec": "data_specs/opensim_wrist_v2.toml",
            "rows": [{"workdir": "runs/v2s10_seeds",
                      "flags": ["--label_fraction=0.1", "--physics_weights=0,1",
                                "--prior_weight=1", "--epochs=25", "--seeds=3"]}]}
