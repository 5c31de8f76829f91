"""Datasets: the in-memory type, file formats, protocol splits, the embedded Wiki, synthetic data."""

from cmhash.data.dataset import CrossModalDataset, DataError, one_hot
from cmhash.data.native import load_native, save_dataset

__all__ = ["CrossModalDataset", "DataError", "one_hot", "load_native", "save_dataset"]
