"""Label-free forces (arXiv 2412.04213): angles are the only labels; forces come from the
physics (λ = 10), with the muscle parameters identified under a prior centred on the lab's model.
The settings of README's label-free OpenSim wrist v2 row:

  python -m experiments.train --config=configs/label_free.py \
      --data_spec=data_specs/opensim_wrist_v2.toml --workdir=runs/v2p
"""

from pinnmsk.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(force_labels=False, physics_weights=(10.0,), prior_weight=1.0, epochs=25)
