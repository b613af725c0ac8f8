"""README table: OpenSim wrist v2 without force labels, with the prior, λ = 10, 3 seeds.

  python -m experiments.table --config=configs/tables/wrist_v2_label_free.py
"""


def get_config() -> dict:
    return {"title": "OpenSim wrist v2, label-free (forces against the simulated truth), prior, "
                     "25 epochs",
            "data_spec": "data_specs/opensim_wrist_v2.toml",
            "rows": [{"workdir": "runs/v2p_seeds",
                      "flags": ["--force_labels=false", "--prior_weight=1",
                                "--physics_weights=10", "--epochs=25", "--seeds=3"]}]}
