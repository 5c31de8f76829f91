"""In-memory Hamming-distance index over binary codes, with FAISS's calling conventions.

``add_with_ids(codes, ids)``, ``search(queries, k) -> (distances, ids)``, ``range_search``,
``remove_ids``, as in a FAISS ``IndexBinaryIDMap``. Two kinds, both exact, with the same results:

- ``"flat"``: FAISS ``IndexBinaryFlat`` in an ``IndexBinaryIDMap``; every search is an exhaustive
  XOR+popcount scan. 16 bytes per 64-bit item (8 code + 8 id). Best below about a million items.
- ``"mih"`` (recommended for large indexes): exact multi-index hashing (:mod:`cmhash.index.mih`):
  sub-linear top-k and range search; ``tables`` substring tables (default: bits / log2 N).

Tie order (both kinds, search and range_search): ascending distance, then insertion order
(removal keeps the relative order of the rest). ``k`` larger than the index returns every item:
results have ``min(k, ntotal)`` columns, so an absurd ``k`` costs nothing.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from cmhash.data.dataset import DataError
from cmhash.index.code_input import check_bits, int_ids, new_ids, packed_codes, positive_int, radius_value
from cmhash.index.mih import MultiIndex
from cmhash.io import atomic_path

FORMAT = "cmhash-hash-index"
FORMAT_VERSION = 2
KINDS = ("flat", "mih")
MISSING_ID = -1  # padding used by stores whose results have a fixed width (PgVectorStore)
MISSING_DISTANCE = int(np.iinfo(np.int32).max)


class _Flat:
    """FAISS exhaustive scan; positions are insertion order."""

    def __init__(self, bits: int):
        self.bits = bits
        self._index = faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(bits))

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def _ids(self) -> np.ndarray:
        """External ids by position, as a zero-copy view (valid until the next add/remove)."""
        id_map = self._index.id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size()) if id_map.size() else np.empty(0, np.int64)

    def _scan(self) -> faiss.IndexBinaryFlat:
        return faiss.downcast_IndexBinary(self._index.index)

    def add(self, packed: np.ndarray, ids: np.ndarray) -> None:
        self._index.add_with_ids(packed, ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self._ids())

    def remove(self, ids: np.ndarray) -> int:
        return int(self._index.remove_ids(ids))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, positions = self._scan().search(queries, k)  # FAISS's own order: distance, then position
        return distances, self._ids()[positions]

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        lims, distances, positions = self._scan().range_search(queries, radius + 1)  # FAISS's bound is strict
        lims = lims.astype(np.int64)
        query_of = np.repeat(np.arange(len(queries)), np.diff(lims))
        order = np.lexsort((positions, distances, query_of))
        distances, ids = distances[order], self._ids()[positions[order]]
        return [(distances[a:b], ids[a:b]) for a, b in zip(lims[:-1], lims[1:])]

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        codes = faiss.vector_to_array(self._scan().xb).reshape(-1, self.bits // 8)
        return codes, self._ids().copy()


class _MultiIndexHashing:
    """:class:`MultiIndex` answering with ids instead of positions."""

    def __init__(self, bits: int, tables: int | None):
        self.mih = MultiIndex(bits, tables)

    @property
    def ntotal(self) -> int:
        return self.mih.ntotal

    def add(self, packed: np.ndarray, ids: np.ndarray) -> None:
        self.mih.add(packed, ids)

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.mih.locate(ids) >= 0

    def remove(self, ids: np.ndarray) -> int:
        return self.mih.remove(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        distances, positions = self.mih.search(queries, k)
        return distances, self.mih.ids_at(positions)

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(d, self.mih.ids_at(p)) for d, p in self.mih.range_search(queries, radius)]

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mih.export()


class HashIndex:
    """Ids + binary codes, searched by Hamming distance.

    ``metadata`` (JSON-serialisable) travels with saved files; its ``"model"`` entry is the model
    identity (e.g. ``"dcmh@<sha256 of the model file>"``) that :meth:`load` can check, so codes are
    never searched with queries from another model. Not safe for concurrent writes: guard
    ``add_with_ids``/``remove_ids`` with a lock if threads share an index (searches may run together).
    """

    def __init__(self, bits: int, kind: str = "flat", metadata: dict[str, Any] | None = None,
                 *, tables: int | None = None):
        self.bits = check_bits(bits)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if tables is not None and kind != "mih":
            raise ValueError("tables applies to the 'mih' kind only")
        self.kind = kind
        self.metadata = dict(metadata or {})
        try:
            json.dumps(self.metadata)
        except TypeError as e:
            raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
        self._fixed_tables = tables
        self._backend = _Flat(self.bits) if kind == "flat" else _MultiIndexHashing(self.bits, tables)

    @property
    def ntotal(self) -> int:
        return self._backend.ntotal

    def __len__(self) -> int:
        return self.ntotal

    @property
    def tables(self) -> int | None:
        """MIH substring tables in use (None for flat)."""
        return self._backend.mih.tables if self.kind == "mih" else None

    def add_with_ids(self, codes: np.ndarray, ids: np.ndarray) -> None:
        """Add codes under new unique ids; an id already present is an error and nothing is added."""
        x = packed_codes(codes, self.bits)
        ids = new_ids(ids, len(x))
        clash = ids[self._backend.contains(ids)]
        if len(clash):
            raise ValueError(f"id {clash[0]} is already in the index ({len(clash)} clashing ids); remove it first")
        self._backend.add(x, ids)

    def remove_ids(self, ids: np.ndarray) -> int:
        """Remove the given ids; ids not present are ignored. Returns how many items were removed.

        flat: O(ntotal) per call (FAISS compacts), so remove in batches; mih: tombstones, O(len(ids)).
        """
        return self._backend.remove(int_ids(ids))

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest by Hamming distance: distances (Q, k') int32 and ids (Q, k') int64.

        ``k' = min(k, ntotal)``: a row never holds padding, and a huge ``k`` allocates nothing.
        """
        q = packed_codes(codes, self.bits, "queries")
        k = min(positive_int(k, "k"), self.ntotal)
        if k == 0:
            return np.empty((len(q), 0), np.int32), np.empty((len(q), 0), np.int64)
        return self._backend.search(q, k)

    def range_search(self, codes: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """All items within Hamming distance <= radius (inclusive), per query as (distances, ids)."""
        q = packed_codes(codes, self.bits, "queries")
        return self._backend.range_search(q, radius_value(radius, self.bits))

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """(packed codes (N, bits/8) uint8, ids (N,) int64) in insertion order."""
        return self._backend.export()

    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically as one .npz: a JSON ``header``, the packed ``codes`` and the ``ids``.

        The MIH tables are not stored: :meth:`load` rebuilds them (seconds per 100M items).
        """
        header = {"format": FORMAT, "version": FORMAT_VERSION, "bits": self.bits, "kind": self.kind,
                  "tables": self._fixed_tables, "metadata": self.metadata}
        codes, ids = self.export()
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), codes=codes, ids=ids)

    @staticmethod
    def read_header(path: str | os.PathLike) -> dict[str, Any]:
        """The JSON header of an index file (format and version checked), without reading the codes."""
        return _read(path, arrays=False)[0]

    @classmethod
    def load(cls, path: str | os.PathLike, expect_bits: int | None = None,
             expect_model: str | None = None) -> HashIndex:
        """Read an index written by :meth:`save`, checking format version, bit length and model."""
        source = os.fspath(path)
        header, codes, ids = _read(source, arrays=True)
        if expect_bits is not None and header["bits"] != expect_bits:
            raise DataError(f"index holds {header['bits']}-bit codes, expected {expect_bits}",
                            source=source, field="bits")
        model = header["metadata"].get("model")
        if expect_model is not None and model != expect_model:
            raise DataError(f"index was built for model {model!r}, expected {expect_model!r}",
                            source=source, field="metadata.model")
        try:
            index = cls(header["bits"], header["kind"], header["metadata"], tables=header["tables"])
            index.add_with_ids(codes, ids)
        except ValueError as e:
            raise DataError(f"corrupt index contents ({e})", source=source, field="codes") from None
        return index


def _read(path: str | os.PathLike, arrays: bool) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """(header, codes, ids) of an index file; every way it can be unreadable is a DataError naming it."""
    source = os.fspath(path)
    if Path(source).is_file() and Path(source).stat().st_size == 0:
        raise DataError("index file is empty (0 bytes): the build that wrote it did not finish; rebuild it",
                        source=source)
    try:
        with np.load(source, allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise DataError(f"not a cmhash index file (header {str(header)[:80]!r})", source=source,
                                field="header")
            if header.get("version") != FORMAT_VERSION:
                raise DataError(f"index format version {header.get('version')!r} is not supported "
                                f"(this cmhash reads version {FORMAT_VERSION}); rebuild the index",
                                source=source, field="version")
            return (header, z["codes"], z["ids"]) if arrays else (header, None, None)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"not a readable cmhash index file ({e})", source=source) from None
