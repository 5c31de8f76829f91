"""The Wiki dataset (Rasiwasia et al., ACM MM 2010), embedded so every install has a real benchmark.

``assets/wiki.npz`` is the feature form the hashing literature uses (128-d SIFT bag of visual
words, 10-d LDA topics, 10 categories) in cmhash's native format, float32; it is regenerated
from ``wiki.mat`` by ``benchmarks/make_wiki_asset.py``. Splits: train = database = the 2,173
training pairs, query = the 693 test pairs.
"""

from __future__ import annotations

from importlib import resources

from cmhash.data.dataset import CrossModalDataset
from cmhash.data.native import load_native

ASSET = "assets/wiki.npz"


def load_wiki() -> CrossModalDataset:
    """The embedded Wiki dataset (2,866 pairs, splits train/query/database); no network."""
    with resources.as_file(resources.files("cmhash.data") / ASSET) as path:
        return load_native(path)
