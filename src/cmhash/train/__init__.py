"""The one training engine for every deep method (PyTorch Lightning underneath)."""

from cmhash.train.engine import fit_deep

__all__ = ["fit_deep"]
