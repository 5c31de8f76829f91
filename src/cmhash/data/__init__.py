"""Datasets: the in-memory type, file formats, protocol splits, the embedded Wiki, synthetic data."""

from cmhash.data.dataset import CrossModalDataset, one_hot
from cmhash.errors import DataError
from cmhash.data.loaders import load_dataset
from cmhash.data.native import load_native, save_dataset
from cmhash.data.protocols import PROTOCOLS, apply_protocol, custom_split
from cmhash.data.synthetic import PRESETS, make_preset, make_synthetic
from cmhash.data.wiki import load_wiki

__all__ = ["CrossModalDataset", "DataError", "one_hot", "load_native", "save_dataset", "load_dataset",
           "apply_protocol", "custom_split", "PROTOCOLS", "load_wiki", "make_synthetic",
           "make_preset", "PRESETS"]
