"""A physics-weight sweep with force labels, λ chosen on validation data (the README's arm26
sweep): one model per λ in one compiled program.

  python -m experiments.sweep --config=configs/sweep.py \
      --data_spec=data_specs/opensim_arm26.toml --workdir=runs/arm
"""

from pinnmsk.config import TrainConfig



def get_config() -> TrainConfig:
    return TrainConfig(epochs=80, physics_weights=(0.0, 1.0, 10.0))
