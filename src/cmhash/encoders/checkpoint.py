"""Checks that a local directory holds a complete CLIP-format checkpoint, and fingerprints it.

We never download at run time, so a missing file must be caught here with a message that says
which part is missing, instead of surfacing as a transformers hub lookup error.
The fingerprint ties resumable work (encoded chunks) to the exact model that produced it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cmhash.data.dataset import DataError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
PREPROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")


def check_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it holds config, weights, tokenizer and image preprocessor config; else DataError.

    The error lists every missing part at once, so one look at the message fixes the directory.
    """
    path = Path(path)
    src = str(path)
    if not path.is_dir():
        raise DataError("no such checkpoint directory (put a saved CLIP checkpoint there; see docs/encoders.md)",
                        source=src)
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        missing.append("weights (one of " + ", ".join(WEIGHT_FILES) + ")")
    if not any(all((path / f).is_file() for f in group) for group in TOKENIZER_FILES):
        missing.append("tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if not any((path / f).is_file() for f in PREPROCESSOR_FILES):
        missing.append("image preprocessor config (preprocessor_config.json or processor_config.json)")
    if missing:
        raise DataError("not a complete CLIP checkpoint; missing " + "; ".join(missing), source=src)
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    if model_type != "clip":
        raise DataError(f"model_type is {model_type!r}; only CLIP-architecture checkpoints (model_type 'clip', "
                        "e.g. CLIP, FLIP) are supported", source=str(path / "config.json"), field="model_type")
    return path


def checkpoint_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 over the checkpoint's files (names and contents), so a fine-tuned model of the same size differs."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).iterdir() if p.is_file()):
        digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()
