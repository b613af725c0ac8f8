"""Data layer: data specs, file loaders, windowing, splits and synthetic data."""
