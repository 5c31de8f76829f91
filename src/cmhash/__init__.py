"""cmhash: supervised deep cross-modal hashing — learn, evaluate and search binary codes."""

from cmhash.data.dataset import CrossModalDataset
from cmhash.errors import CmhashError, ConfigError, DataError

__all__ = ["CrossModalDataset", "CmhashError", "ConfigError", "DataError", "__version__"]
__version__ = "0.1.0"
