"""What a search hit shows besides its id: labels, caption and image path of each indexed item.

Index stores keep ids and codes only, so per-item metadata is built here once for both stores:
HashIndex files get a JSON Lines sidecar (one line per index entry, ``null`` for a removed entry),
and PgVectorStore keeps the same dict in each row's ``metadata`` column.

The sidecar's name carries its SHA-256 (``INDEX.items.<sha>.jsonl``) and the index header names
it, so replacing the index file is the ONE atomic switch between an old and a new (index,
sidecar) pair: a build or write killed at any point leaves the previous pair usable. Sidecars no
longer named by the header are removed after the switch (:func:`remove_stale_items`).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.io import atomic_path


def label_names_for(dataset_spec: str, num_labels: int) -> list[str] | None:
    """The label names ``cmhash encode`` wrote beside a dataset file, if any."""
    from cmhash.encoders import output_paths

    if not Path(dataset_spec).is_file():
        return None
    sidecar = output_paths(dataset_spec)["labels"]
    if not sidecar.exists():
        return None
    names = json.loads(sidecar.read_text())
    if not isinstance(names, list) or len(names) != num_labels:
        raise DataError(f"holds {len(names) if isinstance(names, list) else 'no list of'} label names but the "
                        f"dataset has {num_labels} label columns", source=str(sidecar))
    return names


def item_records(dataset: CrossModalDataset, rows: np.ndarray, label_names: list[str] | None = None,
                 manifest: Any = None) -> list[dict[str, Any]]:
    """One dict per row: ``id``, ``labels`` (names, else column numbers), and ``text``/``image`` from a manifest.

    ``manifest`` (a :class:`cmhash.encoders.Manifest`) must list every id of those rows.
    """
    ids = dataset.ids[rows]
    records = []
    for item_id, label_row in zip(ids.tolist(), dataset.labels[rows]):
        columns = np.flatnonzero(label_row).tolist()
        records.append({"id": item_id, "labels": [label_names[c] for c in columns] if label_names else columns})
    if manifest is not None:
        where = {i: r for r, i in enumerate(manifest.ids.tolist())}
        missing = [i for i in ids.tolist() if i not in where]
        if missing:
            raise DataError(f"manifest has no row for item id {missing[0]} ({len(missing)} dataset ids missing): "
                            "is it the manifest this dataset was encoded from?", source=manifest.source, field="id")
        for record in records:
            row = where[record["id"]]
            record.update(text=manifest.texts[row], image=manifest.images[row])
    return records


def items_path(index_path: str | os.PathLike, sha256: str) -> Path:
    """The sidecar of ``index_path`` with that digest (its first 16 hex digits name it)."""
    index_path = Path(index_path)
    return index_path.with_name(f"{index_path.name}.items.{sha256[:16]}.jsonl")


def write_items(index_path: str | os.PathLike, entries: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Write a new sidecar for ``index_path`` (the current one is untouched); returns the header's record."""
    data = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode()
    sha = hashlib.sha256(data).hexdigest()
    path = items_path(index_path, sha)
    if not path.exists():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    return {"file": path.name, "sha256": sha, "count": sum(e is not None for e in entries)}


def remove_stale_items(index_path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Delete sidecars of ``index_path`` other than the one ``record`` names, and temporaries of killed builds."""
    index_path = Path(index_path)
    name = glob.escape(index_path.name)  # an index named e.g. "run[1].npz" must not glob other files
    for pattern in (f"{name}.items.*.jsonl", f".{name}.*.tmp"):
        for path in index_path.parent.glob(pattern):
            if path.name != record["file"]:
                path.unlink(missing_ok=True)


def read_items(index_path: str | os.PathLike, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The sidecar's entries, after checking it is the one the index header names."""
    path = Path(index_path).with_name(record["file"])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError("item metadata sidecar is missing (copy it with the index, or rebuild)",
                        source=str(path)) from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise DataError(f"item metadata does not belong to index {Path(index_path).name} (SHA-256 differs from "
                        "the one recorded at build time): rebuild the index", source=str(path))
    return [json.loads(line) for line in data.decode().splitlines()]
