"""The README's main run: the physics-informed CNN (λ = 10) on the embedded default data.

  python -m experiments.train --config=configs/default.py \
      --data_spec=data_specs/synthetic_wrist.toml --workdir=runs/default
"""

from pinnmsk.config import TrainConfig


def get_config() -> TrainConfig:
    return TrainConfig(epochs=25)
