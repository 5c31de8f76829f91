"""The estimator API every hashing method shares (scikit-learn style).

``fit(dataset)`` learns from the dataset's ``train`` split (or all rows if it has none);
``encode_image(x)`` / ``encode_text(x)`` map features of ONE modality to ±1 codes, each item
independently; ``save`` / ``load`` round-trip the model with its config.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from cmhash.codes import sign
from cmhash.config import merge, method_defaults
from cmhash.data.dataset import CrossModalDataset
from cmhash.errors import DataError
from cmhash.io import atomic_path

MODEL_FORMAT = "cmhash-model"
MODEL_FORMAT_VERSION = 1


class HashMethod(ABC):
    """Base class: holds bits, seed, config and the feature dims seen at fit time."""

    name: ClassVar[str]
    supervised: ClassVar[bool] = True
    deep: ClassVar[bool] = False

    def __init__(self, bits: int = 32, seed: int = 0, **config: Any):
        if bits <= 0:
            raise ValueError(f"bits must be positive, got {bits}")
        self.bits = int(bits)
        self.seed = int(seed)
        self.config = merge(self.default_config(), config, where=self.name)
        self.dims: tuple[int, int] | None = None
        self.num_labels: int | None = None

    # ---- config -------------------------------------------------------------------------
    @classmethod
    def default_config(cls) -> dict[str, Any]:
        """Defaults from ``methods/configs/<name>.yaml`` (empty when the method has none; see cmhash.config)."""
        return method_defaults(cls.name, deep=cls.deep)

    # ---- estimator API ----------------------------------------------------------------------
    def fit(self, dataset: CrossModalDataset) -> "HashMethod":
        """Learn hash functions from ``dataset``'s train split (all rows when it has none)."""
        train = dataset.split("train") if "train" in dataset.splits else dataset
        if len(train) < 2:
            raise DataError("need at least 2 training items", source=dataset.source, field="train")
        if self.supervised and train.num_labels == 0:
            raise DataError(f"{self.name} is supervised but the dataset has no label columns "
                            "(index it with a trained model, or train an unsupervised method)",
                            source=dataset.source, field="labels")
        self.dims, self.num_labels = train.dims, train.num_labels
        self._fit(train)
        return self

    def encode_image(self, x: np.ndarray) -> np.ndarray:
        """Image features (N, Di) to int8 ±1 codes (N, bits)."""
        return sign(self.image_outputs(x))

    def encode_text(self, x: np.ndarray) -> np.ndarray:
        """Text features (N, Dt) to int8 ±1 codes (N, bits)."""
        return sign(self.text_outputs(x))

    def image_outputs(self, x: np.ndarray) -> np.ndarray:
        """Real-valued image outputs before sign (N, bits)."""
        return self._project("image", self._check_input(x, 0, "image"))

    def text_outputs(self, x: np.ndarray) -> np.ndarray:
        """Real-valued text outputs before sign (N, bits)."""
        return self._project("text", self._check_input(x, 1, "text"))

    # ---- what a method implements -------------------------------------------------------------
    @abstractmethod
    def _fit(self, train: CrossModalDataset) -> None:
        """Learn from the training dataset."""

    @abstractmethod
    def _project(self, modality: str, x: np.ndarray) -> np.ndarray:
        """Real outputs (N, bits) for one modality; row i depends on x[i] alone."""

    @abstractmethod
    def get_state(self) -> dict[str, torch.Tensor]:
        """Learned parameters as named tensors (saved with the model)."""

    @abstractmethod
    def set_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore learned parameters from :meth:`get_state` output."""

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the model (method, bits, seed, config, dims, parameters) atomically."""
        if self.dims is None:
            raise RuntimeError(f"{self.name}: fit before save")
        payload = {
            "format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, "method": self.name,
            "bits": self.bits, "seed": self.seed, "config": self.config, "dims": list(self.dims),
            "num_labels": self.num_labels,
            "state": {k: v.detach().cpu() for k, v in self.get_state().items()},
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @staticmethod
    def load(path: str | os.PathLike) -> "HashMethod":
        """Load any saved model; the method class comes from the file."""
        from cmhash.methods.registry import get_method

        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:  # corrupt or foreign file
            raise DataError(f"not a readable cmhash model ({exc.__class__.__name__}: {exc})", source=str(path)) from exc
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise DataError("not a cmhash model file", source=str(path))
        if payload["version"] > MODEL_FORMAT_VERSION:
            raise DataError(f"model format version {payload['version']} is newer than this cmhash "
                            f"({MODEL_FORMAT_VERSION})", source=str(path), field="version")
        model = get_method(payload["method"])(bits=payload["bits"], seed=payload["seed"], **payload["config"])
        model.dims, model.num_labels = tuple(payload["dims"]), payload["num_labels"]
        model.set_state(payload["state"])
        return model

    # ---- helpers -----------------------------------------------------------------------------
    def _check_input(self, x: np.ndarray, axis: int, modality: str) -> np.ndarray:
        if self.dims is None:
            raise RuntimeError(f"{self.name}: call fit (or load) before encoding")
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dims[axis]:
            raise DataError(f"{modality} features must be (N, {self.dims[axis]}), got shape {x.shape}",
                            field=modality)
        if not np.isfinite(x).all():
            raise DataError("NaN/Inf in input features", field=modality)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bits={self.bits}, seed={self.seed})"

