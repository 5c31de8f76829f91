"""CLIP-architecture feature extractor for images and captions, loaded from a local directory only.

Outputs are the *projected* embeddings (the joint image-text space CLIP is trained in), L2-normalised
per item, as float32: the same vectors CLIP compares by cosine similarity, and the kind of features
CLIP-based hashing methods (UCMFH, DCHMT, FJSPH) start from. FLIP and other checkpoints saved in
the CLIP format load the same way. Preprocessing uses the transformers PIL/numpy image processor,
so torchvision is not needed.
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from functools import cached_property
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image

from cmhash.data.dataset import DataError
from cmhash.encoders.checkpoint import check_checkpoint, checkpoint_fingerprint

ImageInput = Union[Image.Image, str, os.PathLike]


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image as RGB; DataError (naming the file) if it is missing or unreadable."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError("image file not found", source=str(path)) from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"unreadable image ({exc})", source=str(path)) from exc


def resolve_device(device: str) -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ClipEncoder:
    """Encode images and captions with a local CLIP-format checkpoint (see the module docstring)."""

    def __init__(self, checkpoint_dir: str | os.PathLike, device: str = "auto", batch_size: int = 64):
        # Imported here: transformers takes seconds to import, and `cmhash --help` should not pay for it.
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.checkpoint_dir = check_checkpoint(checkpoint_dir)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        local = dict(local_files_only=True)
        self.model = CLIPModel.from_pretrained(self.checkpoint_dir, dtype=torch.float32, **local).to(self.device).eval()
        self.image_processor = AutoImageProcessor.from_pretrained(self.checkpoint_dir, backend="pil", **local)
        self._tokenizer = AutoTokenizer.from_pretrained(self.checkpoint_dir, **local)
        self._per_thread = threading.local()
        # Tokenizer configs often carry a huge placeholder model_max_length; positions are the real limit.
        self.max_length = min(self._tokenizer.model_max_length, self.model.config.text_config.max_position_embeddings)

    @property
    def tokenizer(self):
        """This thread's own tokenizer: a fast tokenizer keeps its truncation settings in one shared Rust
        object, so calls with and without truncation from two threads would see each other's settings."""
        own = getattr(self._per_thread, "tokenizer", None)
        if own is None:
            own = self._per_thread.tokenizer = copy.deepcopy(self._tokenizer)
        return own

    @property
    def image_dim(self) -> int:
        return self.model.config.projection_dim

    @property
    def text_dim(self) -> int:
        return self.model.config.projection_dim

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the model weights and configs, so resumed work is never mixed across models."""
        return checkpoint_fingerprint(self.checkpoint_dir)

    def encode_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(N, D) float32 unit-norm projected image embeddings; paths are opened with :func:`load_image`."""
        parts = []
        for batch in _batches(list(images), self.batch_size):
            pil = [img if isinstance(img, Image.Image) else load_image(img) for img in batch]
            pixels = self.image_processor(images=pil, return_tensors="pt")["pixel_values"]
            with torch.inference_mode():
                parts.append(_normalised(self.model.get_image_features(pixel_values=pixels.to(self.device))))
        return _stack(parts, self.image_dim)

    def encode_texts(self, texts: Sequence[str],
                     return_truncated: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """(N, D) float32 unit-norm projected caption embeddings.

        Captions longer than ``max_length`` tokens are truncated (as CLIP itself does). With
        ``return_truncated`` the call also returns a (N,) bool mask of those captions, for the caller
        to report; without it, a warning states how many were truncated.
        """
        texts = list(texts)
        lengths = [len(ids) for ids in self.tokenizer(texts, verbose=False)["input_ids"]] if texts else []
        truncated = np.array(lengths, dtype=np.int64) > self.max_length
        parts = []
        for batch in _batches(texts, self.batch_size):
            tokens = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                    return_tensors="pt")
            with torch.inference_mode():
                parts.append(_normalised(self.model.get_text_features(**tokens.to(self.device))))
        out = _stack(parts, self.text_dim)
        if return_truncated:
            return out, truncated
        if truncated.any():
            warnings.warn(f"{int(truncated.sum())} of {len(texts)} captions were longer than {self.max_length} "
                          "tokens and were truncated", stacklevel=2)
        return out

    def __repr__(self) -> str:
        return f"ClipEncoder({str(self.checkpoint_dir)!r}, device={str(self.device)!r}, dim={self.image_dim})"


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _stack(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)


def _normalised(features: torch.Tensor | object) -> np.ndarray:
    """Projected features as unit-norm float32 numpy.

    transformers 4.x returns the projected tensor; 5.x returns a model output whose
    ``pooler_output`` holds it.
    """
    if not isinstance(features, torch.Tensor):
        features = features.pooler_output
    return torch.nn.functional.normalize(features.float(), dim=-1).cpu().numpy()
