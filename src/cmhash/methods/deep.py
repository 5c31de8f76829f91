"""Base class of every deep method: it supplies networks and loss terms, the engine does the rest.

A deep method implements ``build_network`` (an :class:`HashNetwork`) and ``loss_terms`` (named,
unweighted scalar losses for a batch). Weights live in the config under ``losses``; a weight of 0
switches a term off. Architectural parts are switched under ``components``. Both are what
``cmhash bench --ablate`` turns off one at a time (the names listed in ``ablations``).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from cmhash.data.dataset import CrossModalDataset
from cmhash.methods.base import HashMethod
from cmhash.train import fit_deep

Batch = dict[str, torch.Tensor]


class HashNetwork(nn.Module):
    """A method's networks. ``encode`` is the per-item inference path: row i depends on x[i] alone."""

    @abstractmethod
    def encode(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Continuous codes in (-1, 1) of shape (N, bits) for ``modality`` in {"image", "text"}."""


class DeepHashMethod(HashMethod):
    """A hashing method trained by :mod:`cmhash.train` (PyTorch Lightning)."""

    deep = True
    ablations: ClassVar[tuple[str, ...]] = ()

    def __init__(self, bits: int = 32, seed: int = 0, **config: Any):
        super().__init__(bits=bits, seed=seed, **config)
        self.net: HashNetwork | None = None
        self.history: list[dict[str, float]] = []
        # Called with (epoch, validation mAP) after each validation while fitting (cmhash tune's pruner).
        self.on_validation: Callable[[int, float], None] | None = None
        # Per-modality input standardisation (mean, std) from the training rows; identity when off.
        self.input_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # ---- what a method supplies ----------------------------------------------------------------
    @abstractmethod
    def build_network(self) -> HashNetwork:
        """Networks for ``self.dims``, ``self.num_labels`` and ``self.bits`` from ``self.config``."""

    @abstractmethod
    def loss_terms(self, net: HashNetwork, batch: Batch) -> dict[str, torch.Tensor]:
        """Unweighted scalar loss terms for one batch (keys match ``config['losses']``)."""

    def prepare(self, net: HashNetwork, train: CrossModalDataset) -> None:
        """Set training-set state before the first epoch (anchor banks, prototypes); default none."""

    # ---- helpers for methods -------------------------------------------------------------------
    def weight(self, term: str) -> float:
        """Weight of a loss term (0 = off); unknown names are an error."""
        try:
            return float(self.config["losses"][term])
        except KeyError:
            raise KeyError(f"{self.name}: loss term {term!r} has no weight in config['losses']") from None

    def enabled(self, component: str) -> bool:
        """Whether an architectural component is switched on."""
        try:
            return bool(self.config["components"][component])
        except KeyError:
            raise KeyError(f"{self.name}: unknown component {component!r}") from None

    def ablation_overrides(self, name: str) -> dict[str, Any]:
        """Config overrides that remove one ablatable part (a component or a loss term)."""
        if name in self.config["components"]:
            return {"components": {name: False}}
        if name in self.config["losses"]:
            return {"losses": {name: 0.0}}
        raise KeyError(f"{self.name}: {name!r} is neither a component nor a loss term")

    # ---- input standardisation ------------------------------------------------------------------
    def fit_input_stats(self, train: CrossModalDataset) -> None:
        """Record per-dimension mean/std of each modality (when ``train.standardize`` is on).

        Hand-crafted features (bag-of-words histograms, LDA topic proportions) have tiny,
        uneven scales; z-scoring them once here keeps every network's first layer well conditioned.
        """
        self.input_stats = {}
        if self.config["train"]["standardize"]:
            for modality in ("image", "text"):
                x = torch.from_numpy(getattr(train, modality)).double()
                self.input_stats[modality] = (x.mean(0).float(), x.std(0).clamp_min(1e-6).float())

    def standardize(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        if modality not in self.input_stats:
            return x
        mean, std = self.input_stats[modality]
        return (x - mean.to(x.device)) / std.to(x.device)

    # ---- HashMethod -----------------------------------------------------------------------------
    def _fit(self, train: CrossModalDataset) -> None:
        self.history = fit_deep(self, train)

    def _project(self, modality: str, x: np.ndarray) -> np.ndarray:
        assert self.net is not None
        self.net.eval()
        device = next(self.net.parameters()).device
        out = []
        with torch.no_grad():
            for start in range(0, len(x), 4096):
                chunk = self.standardize(modality, torch.from_numpy(x[start:start + 4096]).to(device))
                out.append(self.net.encode(modality, chunk).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.bits), np.float32)

    def get_state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        for modality, (mean, std) in self.input_stats.items():
            state[f"input.{modality}.mean"], state[f"input.{modality}.std"] = mean, std
        return state

    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        self.input_stats = {m: (state[f"input.{m}.mean"], state[f"input.{m}.std"])
                            for m in ("image", "text") if f"input.{m}.mean" in state}
        self.net = self.build_network()
        self.net.load_state_dict({k[len("net."):]: v for k, v in state.items() if k.startswith("net.")})
        self.net.eval()
