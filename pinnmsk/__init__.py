"""pinnmsk: physics-informed deep learning for musculoskeletal modelling in JAX/Flax."""

__version__ = "0.1.0"
