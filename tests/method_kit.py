"""Shared tiny fixtures for the per-method tests: data, an unfitted-but-sized method, a batch."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cmhash.data import CrossModalDataset
from cmhash.methods.deep import DeepHashMethod

DIMS = (128, 10)   # Wiki-like: image features much wider than text features
CLASSES = 5


def tiny_data(n: int = 60, dims: tuple[int, int] = DIMS, classes: int = CLASSES, seed: int = 0,
              single_label: bool = False) -> CrossModalDataset:
    """Label-driven features (plus a little noise), train split = all rows; every item has a label."""
    rng = np.random.default_rng(seed)
    if single_label:
        labels = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    else:
        labels = (rng.random((n, classes)) < 0.4).astype(np.uint8)
        labels[np.arange(n), rng.integers(0, classes, n)] = 1
    img = labels @ rng.normal(size=(classes, dims[0])) + 0.1 * rng.normal(size=(n, dims[0]))
    txt = labels @ rng.normal(size=(classes, dims[1])) + 0.1 * rng.normal(size=(n, dims[1]))
    return CrossModalDataset(img, txt, labels, splits={"train": np.arange(n)})


def sized(cls: type[DeepHashMethod], bits: int = 16, **config: Any) -> DeepHashMethod:
    """A method that knows its input dims and label count without being fitted (to build networks)."""
    m = cls(bits=bits, seed=0, **config)
    m.dims, m.num_labels = DIMS, CLASSES
    return m


def prepared_net(m: DeepHashMethod, seed: int = 0) -> torch.nn.Module:
    """A network with its training-set state (anchor banks, affinities) set as ``prepare`` does."""
    torch.manual_seed(seed)
    net = m.build_network()
    m.prepare(net, tiny_data(n=40))
    return net


def batch(n: int = 12, seed: int = 1, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """A random training batch in the engine's format."""
    g = torch.Generator().manual_seed(seed)
    y = labels if labels is not None else (torch.rand(n, CLASSES, generator=g) < 0.4).float()
    return {"image": torch.randn(n, DIMS[0], generator=g), "text": torch.randn(n, DIMS[1], generator=g),
            "labels": y, "index": torch.arange(n)}
