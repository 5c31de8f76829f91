"""Encode one split of a dataset with a saved model into an index (file or PostgreSQL).

The index header records what is needed to trust a later search: the model's identity, how to
reopen the exact dataset split (spec, protocol, seed: splits are seeded, so the same arguments
give the same rows), and the encoder that made the features when ``cmhash encode`` recorded it.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import numpy as np

from cmhash.data.sources import DatasetRef
from cmhash.methods.base import HashMethod
from cmhash.service.items import item_records, label_names_for
from cmhash.service.provenance import encoder_record, model_record
from cmhash.service.stores import CodeStore, FileStore, Part, PgLocation, PgStore

MODALITIES = ("image", "text")
ENCODE_BATCH = 4096  # rows per model call, so a large split never holds all outputs of a deep model at once


def encode_rows(model: HashMethod, modality: str, features: np.ndarray) -> np.ndarray:
    """±1 codes of one modality's features, in batches."""
    encode = model.encode_image if modality == "image" else model.encode_text
    parts = [encode(features[i:i + ENCODE_BATCH]) for i in range(0, len(features), ENCODE_BATCH)]
    return np.concatenate(parts) if parts else np.zeros((0, model.bits), np.int8)


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    return modality


def build_index(model_path: str | os.PathLike, dataset: DatasetRef, *, split: str = "database",
                modalities: tuple[str, ...] = ("image",), out: str | os.PathLike | None = None, kind: str = "flat",
                pg: PgLocation | None = None, manifest: str | os.PathLike | None = None) -> CodeStore:
    """Encode ``dataset``'s ``split`` with the model at ``model_path`` into ``out`` (HashIndex) or ``pg``.

    ``manifest``: the ``cmhash encode`` manifest, to show each hit's caption and image path.
    """
    if (out is None) == (pg is None):
        raise ValueError("give exactly one of out (an index file) and pg (a PostgreSQL location)")
    for modality in modalities:
        check_modality(modality)
    model = HashMethod.load(model_path)
    data = dataset.open()
    if split not in data.splits:
        raise KeyError(f"{data.name}: no split {split!r}; has {sorted(data.splits)}")
    if manifest is not None:
        from cmhash.encoders import read_manifest

        manifest = read_manifest(manifest)
    rows = data.splits[split]
    names = label_names_for(dataset.spec, data.num_labels) or (list(data.label_names) if data.label_names else None)
    records = item_records(data, rows, names, manifest)
    features = {"image": data.image, "text": data.text}
    parts: list[Part] = [(m, encode_rows(model, m, features[m][rows]), records) for m in modalities]
    identity = model_record(model_path, model)
    metadata: dict[str, Any] = {
        "model": identity.pop("model"), "model_file": identity,
        "dataset": {**asdict(dataset.resolved()), "name": data.name, "split": split, "items": len(rows)},
        "modalities": list(modalities), "encoder": encoder_record(dataset.spec),
    }
    if pg is not None:
        return PgStore.build(pg, model.bits, metadata, parts)
    return FileStore.build(out, model.bits, kind, metadata, parts)
