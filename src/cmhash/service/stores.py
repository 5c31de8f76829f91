"""The two places a built index lives, behind one small interface the Retriever searches.

- :class:`FileStore`: a :class:`HashIndex` file plus its item sidecar. Index ids are entry
  numbers (the sidecar's line numbers), so one index can hold the image AND the text codes of
  the same items; each entry names its item ``id`` and ``modality``.
- :class:`PgStore`: a :class:`PgVectorStore` table per model (named from the model file's
  SHA-256), one modality per ``modality`` value, ids = item ids, item metadata in each row. The
  index header (model, dataset, encoder) is the row ``(modality "_index", id 0)``, added last, so
  a build that stopped half-way is detected.

Both return hits in ascending distance, ties in insertion order (image entries before text
entries when both are indexed).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmhash.data.dataset import DataError
from cmhash.index import MISSING_ID, HashIndex, PgVectorStore
from cmhash.service.items import read_items, remove_stale_parts, write_items

HEADER_MODALITY = "_index"
Part = tuple[str, np.ndarray, list[dict[str, Any]]]  # (modality, ±1 codes (N, bits), one record per code)


@dataclass(frozen=True)
class Hit:
    """One search result: the item, which of its modalities matched, how far, and what is known about it."""

    id: int
    modality: str
    distance: int
    metadata: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "modality": self.modality, "distance": self.distance, "metadata": self.metadata}


class CodeStore(Protocol):
    bits: int
    metadata: dict[str, Any]

    def __len__(self) -> int: ...
    def search(self, code: np.ndarray, k: int) -> list[Hit]: ...
    def within(self, code: np.ndarray, radius: int) -> list[Hit]: ...
    def info(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class FileStore:
    """A HashIndex file and its item sidecar (see the module docstring)."""

    def __init__(self, index: HashIndex, entries: list[dict[str, Any]], path: str | os.PathLike):
        if len(entries) != index.ntotal:
            raise DataError(f"item sidecar has {len(entries)} entries for {index.ntotal} codes", source=str(path))
        self.index, self.entries, self.path = index, entries, Path(path)

    @property
    def bits(self) -> int:
        return self.index.bits

    @property
    def metadata(self) -> dict[str, Any]:
        return self.index.metadata

    def __len__(self) -> int:
        return self.index.ntotal

    @classmethod
    def build(cls, out: str | os.PathLike, bits: int, kind: str, metadata: dict[str, Any],
              parts: list[Part]) -> FileStore:
        """Write a new sidecar beside the current pair, then switch to the index naming it (one rename).

        A build that fails or is killed before the switch leaves the previous index and its sidecar
        usable; the next build removes what it left behind.
        """
        entries = [{"modality": modality, **record} for modality, _, records in parts for record in records]
        index = HashIndex(bits, kind, metadata)  # checks bits and kind before anything is written
        index.add_with_ids(np.concatenate([codes for _, codes, _ in parts]), np.arange(len(entries)))
        index.metadata["items"] = write_items(out, entries)
        index.save(out)
        remove_stale_parts(out, keep=index.metadata["items"]["file"])
        return cls(index, entries, out)

    @classmethod
    def load(cls, path: str | os.PathLike, expect_model: str | None = None) -> FileStore:
        index = HashIndex.load(path, expect_model=expect_model)
        if "items" not in index.metadata:
            raise DataError("index has no item metadata record: build it with `cmhash index build`",
                            source=str(path), field="metadata.items")
        return cls(index, read_items(path, index.metadata["items"]), path)

    def _hits(self, distances: np.ndarray, ids: np.ndarray) -> list[Hit]:
        hits = []
        for entry_id, distance in zip(ids.tolist(), distances.tolist()):
            if entry_id == MISSING_ID:  # padding of a row shorter than k, not a result
                continue
            entry = dict(self.entries[entry_id])
            hits.append(Hit(entry.pop("id"), entry.pop("modality"), int(distance), entry))
        return hits

    def search(self, code: np.ndarray, k: int) -> list[Hit]:
        distances, ids = self.index.search(code, k)
        return self._hits(distances[0], ids[0])

    def within(self, code: np.ndarray, radius: int) -> list[Hit]:
        return self._hits(*self.index.range_search(code, radius)[0])

    def info(self) -> dict[str, Any]:
        return {"store": "file", "path": str(self.path), "kind": self.index.kind, "size": len(self),
                **{k: v for k, v in self.metadata.items() if k != "items"}}

    def close(self) -> None:
        """Nothing to release; here for the CodeStore interface."""


@dataclass(frozen=True)
class PgLocation:
    """Which PostgreSQL: a DSN, or the embedded server on ``datadir`` (both None: its default directory)."""

    dsn: str | None = None
    datadir: str | None = None
    table: str | None = None

    def table_for(self, model_id: str) -> str:
        """``table``, else one table per model: ``<method>_<first 16 hex digits of the file's SHA-256>``."""
        if self.table:
            return self.table
        method, _, sha = model_id.partition("@")
        return f"{re.sub(r'[^a-z0-9_]', '_', method.lower())[:30]}_{sha[:16]}"


class PgStore:
    """A model's table in PostgreSQL (see the module docstring). One connection, guarded by a lock."""

    def __init__(self, store: PgVectorStore, header: dict[str, Any]):
        self.store, self.metadata = store, header
        self.bits = store.bits
        self._lock = threading.Lock()

    @classmethod
    def build(cls, location: PgLocation, bits: int, metadata: dict[str, Any], parts: list[Part]) -> PgStore:
        store = PgVectorStore(location.dsn, location.table_for(metadata["model"]), bits=bits, datadir=location.datadir)
        rows = len(store)
        if rows:
            store.close()
            raise DataError(f"table {store.table!r} already holds {rows} rows: drop it, or pass another "
                            "table name", field="table")
        for modality, codes, records in parts:
            store.add_with_ids(codes, np.array([r["id"] for r in records], dtype=np.int64), modality=modality,
                               metadata=[{k: v for k, v in r.items() if k != "id"} for r in records])
        store.add_with_ids(np.zeros((1, bits // 8), np.uint8), np.zeros(1, np.int64), modality=HEADER_MODALITY,
                           metadata=[metadata])
        return cls(store, metadata)

    @classmethod
    def open(cls, location: PgLocation, bits: int, expect_model: str) -> PgStore:
        store = PgVectorStore(location.dsn, location.table_for(expect_model), bits=bits, datadir=location.datadir)
        try:
            (header,) = store.get_metadata(np.zeros(1, np.int64), modality=HEADER_MODALITY)
        except KeyError:
            rows = len(store)
            store.close()
            raise DataError(f"table {store.table!r} holds no complete index for model {expect_model!r} ({rows} rows, "
                            "no header): build it with `cmhash index build --store pg`", field="table") from None
        if header.get("model") != expect_model:
            store.close()
            raise DataError(f"table {store.table!r} was built for model {header.get('model')!r}, expected "
                            f"{expect_model!r}", field="metadata.model")
        return cls(store, header)

    def __len__(self) -> int:
        with self._lock:
            return sum(self.store.count(m) for m in self.metadata["modalities"])

    def _hits(self, modality: str, distances: np.ndarray, ids: np.ndarray) -> list[Hit]:
        keep = ids != MISSING_ID
        ids, distances = ids[keep], distances[keep]
        metadata = self.store.get_metadata(ids, modality=modality) if len(ids) else []
        return [Hit(i, modality, d, m or {}) for i, d, m in zip(ids.tolist(), distances.tolist(), metadata)]

    def _merged(self, per_modality: list[list[Hit]]) -> list[Hit]:
        return sorted((h for hits in per_modality for h in hits), key=lambda h: h.distance)  # stable

    def search(self, code: np.ndarray, k: int) -> list[Hit]:
        with self._lock:
            found = [self._hits(m, *(a[0] for a in self.store.search(code, k, modality=m)))
                     for m in self.metadata["modalities"]]
        return self._merged(found)[:k]

    def within(self, code: np.ndarray, radius: int) -> list[Hit]:
        with self._lock:
            found = [self._hits(m, *self.store.range_search(code, radius, modality=m)[0])
                     for m in self.metadata["modalities"]]
        return self._merged(found)

    def info(self) -> dict[str, Any]:
        return {"store": "pg", "table": self.store.table, "size": len(self), **self.metadata}

    def close(self) -> None:
        self.store.close()
