"""In-memory Hamming-distance index over binary codes, backed by FAISS.

Two kinds, both exact:

- ``"flat"``: ``IndexBinaryFlat`` inside an ``IndexBinaryIDMap``; every search is an exhaustive
  XOR+popcount scan. 16 bytes per 64-bit item (8 code + 8 id).
- ``"mih"``: multi-index hashing (``IndexBinaryMultiHash``): the code is cut into
  ``bits / mih_bits`` disjoint substrings, each with its own hash table. ``range_search`` with a
  small radius probes only the buckets that can hold a match (pigeonhole: an item within radius r
  agrees with the query within ``r // tables`` bits on at least one substring), so it is sub-linear
  and still exact. Top-k ``search`` scans the MIH's own flat storage, because FAISS's MIH top-k only
  looks inside the probed buckets and would be approximate.

Tie order (both kinds, search and range_search): ascending distance, then insertion order
(removal keeps the relative order of the rest). FAISS's flat top-k already returns exactly this
order, so the wrapper adds no sorting on the hot path.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from math import comb
from typing import Any

import faiss
import numpy as np

from cmhash.data.dataset import DataError
from cmhash.index.code_input import check_bits, int_ids, new_ids, packed_codes, positive_int, radius_value
from cmhash.io import atomic_path

FORMAT = "cmhash-hash-index"
FORMAT_VERSION = 1
KINDS = ("flat", "mih")
MISSING_ID = -1
MISSING_DISTANCE = int(np.iinfo(np.int32).max)


class HashIndex:
    """Ids + binary codes, searched by Hamming distance.

    ``metadata`` (JSON-serialisable) travels with saved files; its ``"model"`` entry is the model
    identity (e.g. ``"dcmh@<sha256 of the model file>"``) that :meth:`load` can check, so codes are
    never searched with queries from another model. Not safe for concurrent writes: guard
    ``add``/``remove`` with a lock if threads share an index.
    """

    def __init__(self, bits: int, kind: str = "flat", metadata: dict[str, Any] | None = None,
                 *, mih_bits: int | None = None):
        self.bits = check_bits(bits)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.metadata = dict(metadata or {})
        try:
            json.dumps(self.metadata)
        except TypeError as e:
            raise ValueError(f"metadata must be JSON-serialisable: {e}") from None
        self.mih_bits = _substring_bits(self.bits, mih_bits) if kind == "mih" else None
        self._index = faiss.IndexBinaryIDMap(self._empty_backend())
        self._nflip_lock = threading.Lock()

    def _empty_backend(self) -> faiss.IndexBinary:
        if self.kind == "flat":
            return faiss.IndexBinaryFlat(self.bits)
        return faiss.IndexBinaryMultiHash(self.bits, self.bits // self.mih_bits, self.mih_bits)

    @property
    def _backend(self) -> faiss.IndexBinary:
        return faiss.downcast_IndexBinary(self._index.index)

    @property
    def _scan(self) -> faiss.IndexBinaryFlat:
        """The exhaustive index whose positions are the insertion order."""
        backend = self._backend
        return backend if self.kind == "flat" else faiss.downcast_IndexBinary(backend.storage)

    @property
    def ntotal(self) -> int:
        return int(self._index.ntotal)

    def __len__(self) -> int:
        return self.ntotal

    def _id_view(self) -> np.ndarray:
        """External ids by position, as a zero-copy view (valid until the next add/remove)."""
        id_map = self._index.id_map
        return faiss.rev_swig_ptr(id_map.data(), id_map.size()) if id_map.size() else np.empty(0, np.int64)

    def _labels(self, positions: np.ndarray) -> np.ndarray:
        out = np.full(positions.shape, MISSING_ID, dtype=np.int64)
        found = positions >= 0
        out[found] = self._id_view()[positions[found]]
        return out

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add codes under new unique ids; an id already present is an error and nothing is added."""
        x = packed_codes(codes, self.bits)
        ids = new_ids(ids, len(x))
        clash = ids[np.isin(ids, self._id_view())]
        if len(clash):
            raise ValueError(f"id {clash[0]} is already in the index ({len(clash)} clashing ids); remove it first")
        self._index.add_with_ids(x, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove the given ids; ids not present are ignored. Returns how many items were removed.

        The MIH backend has no removal in FAISS, so it is rebuilt from the remaining codes:
        O(ntotal) per call — remove in batches.
        """
        ids = int_ids(ids)
        if self.kind == "flat":
            return int(self._index.remove_ids(ids))
        current = self._id_view()
        keep = ~np.isin(current, ids)
        removed = int(len(current) - keep.sum())
        if removed:
            codes = faiss.vector_to_array(self._scan.xb).reshape(-1, self.bits // 8)[keep]
            kept_ids = current[keep].copy()
            self._index = faiss.IndexBinaryIDMap(self._empty_backend())
            self._index.add_with_ids(codes, kept_ids)
        return removed

    def search(self, codes: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest by Hamming distance: ids (Q, k) int64 and distances (Q, k) int32.

        Rows with fewer than k items are padded with id -1 and distance ``MISSING_DISTANCE``.
        """
        q = packed_codes(codes, self.bits, "queries")
        distances, positions = self._scan.search(q, positive_int(k, "k"))
        return self._labels(positions), distances

    def range_search(self, codes: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """All items within Hamming distance <= radius (inclusive), per query as (ids, distances).

        (FAISS's own binary range search is strict, ``< radius``; we pass ``radius + 1``.)
        """
        q = packed_codes(codes, self.bits, "queries")
        radius = radius_value(radius, self.bits)
        if self.kind == "mih" and self._probes(radius) < self.ntotal:
            backend = self._backend
            with self._nflip_lock:  # nflip is a member of the shared FAISS object
                backend.nflip = radius // backend.nhash
                lims, distances, positions = backend.range_search(q, radius + 1)
        else:
            lims, distances, positions = self._scan.range_search(q, radius + 1)
        lims = lims.astype(np.int64)
        query_of = np.repeat(np.arange(len(q)), np.diff(lims))
        order = np.lexsort((positions, distances, query_of))
        ids, distances = self._labels(positions[order]), distances[order]
        return [(ids[a:b], distances[a:b]) for a, b in zip(lims[:-1], lims[1:])]

    def _probes(self, radius: int) -> int:
        """Hash buckets one MIH range query visits; beyond ntotal a flat scan is cheaper."""
        tables = self.bits // self.mih_bits
        return tables * sum(comb(self.mih_bits, i) for i in range(radius // tables + 1))

    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically as an .npz: a JSON ``header`` and the FAISS ``payload``."""
        header = {"format": FORMAT, "version": FORMAT_VERSION, "bits": self.bits, "kind": self.kind,
                  "mih_bits": self.mih_bits, "metadata": self.metadata}
        payload = faiss.serialize_index_binary(self._index)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), payload=payload)

    @classmethod
    def load(cls, path: str | os.PathLike, expect_bits: int | None = None,
             expect_model: str | None = None) -> HashIndex:
        """Read an index written by :meth:`save`, checking format version, bit length and model."""
        source = os.fspath(path)
        try:
            with np.load(source, allow_pickle=False) as z:
                header = json.loads(str(z["header"]))
                payload = z["payload"]
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"not a readable cmhash index file ({e})", source=source) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DataError(f"not a cmhash index file (header {str(header)[:80]!r})", source=source,
                            field="header")
        if header.get("version") != FORMAT_VERSION:
            raise DataError(f"index format version {header.get('version')!r} is not supported "
                            f"(this cmhash reads version {FORMAT_VERSION}); rebuild the index",
                            source=source, field="version")
        if expect_bits is not None and header["bits"] != expect_bits:
            raise DataError(f"index holds {header['bits']}-bit codes, expected {expect_bits}",
                            source=source, field="bits")
        model = header["metadata"].get("model")
        if expect_model is not None and model != expect_model:
            raise DataError(f"index was built for model {model!r}, expected {expect_model!r}",
                            source=source, field="metadata.model")
        index = cls(header["bits"], header["kind"], header["metadata"], mih_bits=header["mih_bits"])
        try:
            stored = faiss.deserialize_index_binary(payload)
        except RuntimeError as e:
            raise DataError(f"corrupt FAISS payload ({str(e).splitlines()[0]})", source=source,
                            field="payload") from None
        if not isinstance(stored, faiss.IndexBinaryIDMap) or stored.d != index.bits:
            raise DataError(f"payload is {type(stored).__name__} of {stored.d} bits, expected an id-mapped "
                            f"{index.bits}-bit index", source=source, field="payload")
        index._index = stored
        return index


def _substring_bits(bits: int, mih_bits: int | None) -> int:
    """MIH substring length: 16-bit tables (65,536 buckets) when they fit, else bytes."""
    if mih_bits is None:
        return 16 if bits % 16 == 0 else 8
    if isinstance(mih_bits, bool) or not isinstance(mih_bits, int) or not 1 <= mih_bits <= 32 \
            or bits % mih_bits:
        raise ValueError(f"mih_bits must divide bits ({bits}) and lie in [1, 32], got {mih_bits!r}")
    return mih_bits
