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

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmhash.data.dataset import DataError
from cmhash.index import MISSING_ID, HashIndex, PgVectorStore
from cmhash.service.items import read_items, remove_stale_items, write_items

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


class ItemExists(ValueError):
    """An add named an (id, modality) the store already holds."""


class CodeStore(Protocol):
    bits: int
    metadata: dict[str, Any]

    def __len__(self) -> int: ...
    def search(self, code: np.ndarray, k: int) -> list[Hit]: ...
    def within(self, code: np.ndarray, radius: int) -> list[Hit]: ...
    def add(self, item_id: int, modality: str, code: np.ndarray, metadata: dict[str, Any]) -> None: ...
    def remove(self, item_id: int) -> int: ...
    def info(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class ReadWriteLock:
    """Many readers or one writer: searches run together, a write waits for them and holds them off."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def check_store_modality(store: CodeStore, modality: str) -> None:
    if modality not in store.metadata["modalities"]:
        raise ValueError(f"this index holds {'/'.join(store.metadata['modalities'])} codes; cannot add a "
                         f"{modality} item")


class FileStore:
    """A HashIndex file and its item sidecar (see the module docstring).

    Writes (:meth:`add`, :meth:`remove`) change the index in memory while no search runs, then save
    index and sidecar (one atomic switch, see :mod:`cmhash.service.items`) before returning; a failed
    save reloads the previous files, so memory never holds a state that is not on disk. One
    writer at a time; searches see the state before or after a write, never half of it.
    """

    def __init__(self, index: HashIndex, entries: list[dict[str, Any] | None], path: str | os.PathLike):
        live = sum(e is not None for e in entries)
        if live != index.ntotal:
            raise DataError(f"item sidecar has {live} entries for {index.ntotal} codes", source=str(path))
        self.index, self.entries, self.path = index, entries, Path(path)
        self._lock = ReadWriteLock()
        self._writer = threading.Lock()
        self._where: dict[tuple[int, str], int] | None = None  # (item id, modality) -> entry number, built on first write

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
        """Write the sidecar, then switch to the index whose header names it."""
        entries = [{"modality": modality, **record} for modality, _, records in parts for record in records]
        index = HashIndex(bits, kind, metadata)
        index.add_with_ids(np.concatenate([codes for _, codes, _ in parts]), np.arange(len(entries)))
        store = cls(index, entries, out)
        store._save()
        return store

    @classmethod
    def load(cls, path: str | os.PathLike, expect_model: str | None = None) -> FileStore:
        index = HashIndex.load(path, expect_model=expect_model)
        if "items" not in index.metadata:
            raise DataError("index has no item metadata record: build it with `cmhash index build`",
                            source=str(path), field="metadata.items")
        return cls(index, read_items(path, index.metadata["items"]), path)

    def _save(self) -> None:
        """Sidecar under a new name, then the index naming it (the switch), then old sidecars removed."""
        self.index.metadata["items"] = write_items(self.path, self.entries)
        self.index.save(self.path)
        remove_stale_items(self.path, self.index.metadata["items"])

    def _hits(self, distances: np.ndarray, ids: np.ndarray) -> list[Hit]:
        hits = []
        for entry_id, distance in zip(ids.tolist(), distances.tolist()):
            if entry_id == MISSING_ID:  # padding of a row shorter than k, not a result
                continue
            entry = dict(self.entries[entry_id])
            hits.append(Hit(entry.pop("id"), entry.pop("modality"), int(distance), entry))
        return hits

    def search(self, code: np.ndarray, k: int) -> list[Hit]:
        with self._lock.reading():
            distances, ids = self.index.search(code, k)
            return self._hits(distances[0], ids[0])

    def within(self, code: np.ndarray, radius: int) -> list[Hit]:
        with self._lock.reading():
            return self._hits(*self.index.range_search(code, radius)[0])

    def add(self, item_id: int, modality: str, code: np.ndarray, metadata: dict[str, Any]) -> None:
        check_store_modality(self, modality)
        with self._writer:
            where = self._entry_numbers()
            if (item_id, modality) in where:
                raise ItemExists(f"item {item_id} already has a {modality} entry: delete it first")
            entry = len(self.entries)
            self._write(lambda: (self.index.add_with_ids(code[None], np.array([entry])),
                                 self.entries.append({"modality": modality, "id": item_id, **metadata})))
            where[(item_id, modality)] = entry

    def remove(self, item_id: int) -> int:
        with self._writer:
            where = self._entry_numbers()
            found = [((item_id, m), where[(item_id, m)]) for m in self.metadata["modalities"] if (item_id, m) in where]
            if not found:
                return 0

            def change() -> None:
                self.index.remove_ids(np.array([e for _, e in found]))
                for _, e in found:
                    self.entries[e] = None
            self._write(change)
            for key, _ in found:
                del where[key]
            return len(found)

    def _entry_numbers(self) -> dict[tuple[int, str], int]:
        if self._where is None:
            self._where = {(e["id"], e["modality"]): n for n, e in enumerate(self.entries) if e is not None}
        return self._where

    def _write(self, change) -> None:
        """Apply ``change`` with searches held off, then save; on a failed save go back to the files."""
        with self._lock.writing():
            change()
        try:
            self._save()
        except BaseException:
            previous = FileStore.load(self.path)
            with self._lock.writing():
                self.index, self.entries, self._where = previous.index, previous.entries, None
            raise

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
            raise DataError(f"table {store.table!r} already holds {rows} rows: `cmhash index drop --model MODEL` "
                            "(or `index build --replace`), or pass another --table", field="table")
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
                            "no header: a build stopped half-way?): rebuild it with `cmhash index build --store pg --replace`, or "
                            "remove it with `cmhash index drop`", field="table") from None
        if header.get("model") != expect_model:
            store.close()
            raise DataError(f"table {store.table!r} was built for model {header.get('model')!r}, expected "
                            f"{expect_model!r}", field="metadata.model")
        return cls(store, header)

    @staticmethod
    def drop(location: PgLocation, bits: int, model_id: str) -> str:
        """Delete the table of ``model_id`` (complete or not); returns its name."""
        store = PgVectorStore(location.dsn, location.table_for(model_id), bits=bits, datadir=location.datadir)
        try:
            store.drop()
        finally:
            store.close()
        return store.table

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

    def add(self, item_id: int, modality: str, code: np.ndarray, metadata: dict[str, Any]) -> None:
        """One row in one transaction: committed (durable) when this returns."""
        check_store_modality(self, modality)
        with self._lock:
            try:
                self.store.add_with_ids(code[None], np.array([item_id]), modality=modality, metadata=[metadata])
            except ValueError as exc:
                if "already" in str(exc) or "Remove it first" in str(exc):
                    raise ItemExists(f"item {item_id} already has a {modality} entry: delete it first") from None
                raise

    def remove(self, item_id: int) -> int:
        """Every modality's row of ``item_id``, in one transaction."""
        with self._lock:
            return self.store.remove_ids(np.array([item_id]), modality=self.metadata["modalities"])

    def info(self) -> dict[str, Any]:
        return {"store": "pg", "table": self.store.table, "size": len(self), **self.metadata}

    def close(self) -> None:
        self.store.close()
