"""cmhash: supervised deep cross-modal hashing — learn, evaluate and search binary codes."""

from cmhash.data.dataset import CrossModalDataset, DataError

__all__ = ["CrossModalDataset", "DataError", "__version__"]
__version__ = "0.1.0"
