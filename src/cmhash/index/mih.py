"""Exact k-nearest-neighbour search in Hamming space by multi-index hashing.

Norouzi, Punjani, Fleet, "Fast Exact Search in Hamming Space with Multi-Index Hashing" (CVPR 2012,
TPAMI 2014). Each ``bits``-bit code is cut into ``m`` disjoint substrings; table ``j`` maps every
value of substring ``j`` to the positions of the codes holding it. Search runs in steps
``t = 0, 1, 2, ...``; step ``t`` probes table ``t % m`` at substring distance exactly ``t // m``.

Exactness (the pigeonhole refinement): write ``r = rho * m + a`` with ``0 <= a < m``. An item whose
substring distances ``d_j`` sum to at most ``r`` has ``d_j <= rho`` for some ``j <= a`` or
``d_j <= rho - 1`` for some ``j > a`` (otherwise the sum is at least ``(a + 1)(rho + 1) +
(m - a - 1) rho = r + 1``). After step ``t = r`` tables ``0..a`` have been probed up to ``rho`` and
the others up to ``rho - 1``, so every item within distance ``r`` is a candidate. Search stops after
the first step ``t`` at which at least ``k`` verified items lie within ``t``: nothing unseen can be
closer, and every item at a distance ``<= t`` has been seen, so ties are complete too and the order
(distance, then position = insertion order) is the flat scan's order.

Each item is accepted once: only at the first step that can reach it, ``min_j(d_j * m + j)``,
computed from its substring distances (after its full distance, which already rules out most
candidates once k items are known). No visited set is needed.

Incremental: the tables cover positions ``[0, n_main)``; later adds sit in a delta that every query
scans linearly, merged into the tables when it grows past a fraction of the index. Removal marks a
tombstone (skipped by search); the storage is compacted when a large share is dead.

Compiled with numba (``nogil``; queries are split over Python threads): FAISS has no exact MIH
top-k (``IndexBinaryMultiHash.search`` only looks inside the probed buckets), and the probe loop is
branchy per-item work that numpy cannot vectorise. A query whose probing would cost more than a scan
falls back to an exact two-pass scan (histogram of distances, then a counting-sort collect).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from math import ceil, comb, log2

import faiss
import numpy as np
from numba import njit

from cmhash.popcount import popcount as _popcount

MAX_SUBSTRING_BITS = 32  # substrings are uint32 keys
PREFIX_BITS = 24  # tables address a substring's first 24 bits directly (2^24 uint32 offsets: 64 MB)
SCAN_COST = 8  # one random probe/candidate costs about this many sequential popcounts
DELTA_MIN, DELTA_MAX, DELTA_SHARE = 1024, 1 << 18, 16  # merge the delta past clamp(n_main / SHARE)
DEAD_SHARE = 8  # compact when more than n / DEAD_SHARE positions are tombstones
NO_POSITION = -1
STATS = ("probes", "met", "verified", "accepted", "scanned", "steps")  # per-query counters, see search()


def table_count(bits: int, n: int) -> int:
    """The paper's m = bits / log2(N), rounded, with substrings of at most 32 bits."""
    m = round(bits / max(log2(max(n, 2)), 1.0))
    return int(min(bits, max(m, ceil(bits / MAX_SUBSTRING_BITS), 1)))


def layout(bits: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(start bit, size) of each of ``m`` substrings; the first ``bits % m`` get one bit more."""
    sizes = np.full(m, bits // m, dtype=np.int64)
    sizes[: bits % m] += 1
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64), sizes


def to_words(packed: np.ndarray) -> np.ndarray:
    """Packed uint8 codes (N, bits/8) as little-endian uint64 words (N, ceil(bits/64)), zero-padded."""
    n, nbytes = packed.shape
    width = -(-nbytes // 8) * 8
    if width != nbytes:
        padded = np.zeros((n, width), np.uint8)
        padded[:, :nbytes] = packed
        packed = padded
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def from_words(words: np.ndarray, bits: int) -> np.ndarray:
    return np.ascontiguousarray(words).view(np.uint8).reshape(len(words), -1)[:, : bits // 8].copy()


@njit(inline="always")
def _substring(words, row, start, size):
    w, t = start >> 6, start & 63
    v = words[row, w] >> np.uint64(t)
    if t + size > 64:
        v |= words[row, w + 1] << np.uint64(64 - t)
    return v & np.uint64((1 << size) - 1)


@njit(inline="always")
def _distance(words, row, q):
    d = 0
    for w in range(words.shape[1]):
        d += _popcount(words[row, w] ^ q[0, w])
    return np.int64(d)


@njit(inline="always")
def _first_step(words, row, qkeys, starts, sizes):
    """The first step that reaches ``row``: min over tables j of (its substring distance * m + j)."""
    m = len(starts)
    first = np.int64(1 << 62)
    for j in range(m):
        rho = np.int64(_popcount(_substring(words, row, starts[j], sizes[j]) ^ qkeys[j]))
        if rho * m + j < first:
            first = rho * m + j
    return first


@njit(cache=True, nogil=True)
def build_tables(words, n, starts, sizes, prefix, obase, offsets, positions, suffixes):
    """Counting sort of positions ``0..n-1`` by each substring's prefix: CSR ``offsets``/``positions``;
    the remaining (at most 8) low bits of each entry's substring go to ``suffixes``."""
    for j in range(len(starts)):
        base, low = obase[j], sizes[j] - prefix[j]
        nb = (1 << prefix[j]) + 1
        offsets[base: base + nb] = 0
        for p in range(n):
            offsets[base + 1 + np.int64(_substring(words, p, starts[j], sizes[j]) >> np.uint64(low))] += 1
        for b in range(1, nb):
            offsets[base + b] += offsets[base + b - 1]
        fill = offsets[base: base + nb - 1].copy()
        for p in range(n):
            key = _substring(words, p, starts[j], sizes[j])
            head = np.int64(key >> np.uint64(low))
            positions[j, fill[head]] = p
            if low:
                suffixes[j, fill[head]] = key & np.uint64((1 << low) - 1)
            fill[head] += 1


@njit(inline="always")
def _push(buf, nbuf, key):
    if nbuf == len(buf):
        grown = np.empty(2 * len(buf), np.int64)
        grown[:nbuf] = buf[:nbuf]
        buf = grown
    buf[nbuf] = key
    return buf, nbuf + 1


@njit(inline="always")
def _kth_bound(hist, k):
    """Smallest distance D with at least k items at distance <= D (len(hist) if none)."""
    total = 0
    for d in range(len(hist)):
        total += hist[d]
        if total >= k:
            return d
    return len(hist)


@njit(cache=True, nogil=True)
def _scan_knn(q, k, words, alive, n, bits, out):
    """Exact top-k keys by a two-pass scan: distance histogram, then a counting-sort collect."""
    hist = np.zeros(bits + 1, np.int64)
    for p in range(n):
        if alive[p]:
            hist[_distance(words, p, q)] += 1
    cut = _kth_bound(hist, k)
    start = np.zeros(bits + 2, np.int64)
    for d in range(cut):
        start[d + 1] = start[d] + hist[d]
    left = k - start[cut]  # how many of the ties at the cut still fit
    for p in range(n):
        if alive[p]:
            d = _distance(words, p, q)
            if d < cut or (d == cut and left > 0):
                if d == cut:
                    left -= 1
                out[start[d]] = (d << 32) | p
                start[d] += 1


@njit(cache=True, nogil=True)
def _scan_range(q, radius, words, alive, n):
    buf = np.empty(64, np.int64)
    nbuf = 0
    for p in range(n):
        if alive[p]:
            d = _distance(words, p, q)
            if d <= radius:
                buf, nbuf = _push(buf, nbuf, (d << 32) | p)
    return np.sort(buf[:nbuf])


@njit(cache=True, nogil=True)
def _search_one(q, k, radius, words, alive, n_main, n, n_alive, bits, starts, sizes, prefix, obase, offsets,
                positions, suffixes, binom, stats):
    """Sorted keys (distance << 32 | position): the top k (``radius < 0``) or all within ``radius``;
    ``stats`` receives the counters named in ``STATS``."""
    m = len(starts)
    top_k = radius < 0
    bound = bits if top_k else radius  # candidates farther than this cannot be in the answer
    last = bits + m if top_k else radius  # the last step
    qkeys = np.empty(m, np.uint64)
    for j in range(m):
        qkeys[j] = _substring(q, 0, starts[j], sizes[j])
    hist = np.zeros(bits + 1, np.int64)
    buf = np.empty(256, np.int64)
    nbuf = 0
    for p in range(n_main, n):  # the delta, scanned
        if alive[p]:
            d = _distance(words, p, q)
            if d <= bound:
                hist[d] += 1
                buf, nbuf = _push(buf, nbuf, (d << 32) | p)
    budget, work, found, accepted = n_alive // SCAN_COST, n - n_main, 0, 0
    stats[:] = 0
    for t in range(last + 1):
        stats[5] = t
        if top_k and t > 0:
            found += hist[t - 1]
            if found >= k:  # every item within t - 1 is verified, and there are k of them
                break
        j, rho = t % m, t // m
        if rho > sizes[j]:
            continue
        base, head_bits, low = obase[j], prefix[j], sizes[j] - prefix[j]
        qhead, qlow = np.int64(qkeys[j] >> np.uint64(low)), qkeys[j] & np.uint64((1 << low) - 1)
        for rho_head in range(max(0, rho - low), min(rho, head_bits) + 1):
            rho_low = rho - rho_head  # substring distance exactly rho: split between prefix and suffix
            work += binom[head_bits, rho_head]  # probes, then the candidates actually met
            stats[0] += binom[head_bits, rho_head]
            limit = np.int64(1) << head_bits
            mask = (np.int64(1) << rho_head) - 1
            while mask < limit:
                head = qhead ^ mask
                lo, hi = np.int64(offsets[base + head]), np.int64(offsets[base + head + 1])
                work += hi - lo
                stats[1] += hi - lo
                if work > budget:  # probing now costs more than a scan: scan instead
                    stats[4] = 1
                    if top_k:
                        keys = np.empty(k, np.int64)
                        _scan_knn(q, k, words, alive, n, bits, keys)
                        return keys
                    return _scan_range(q, radius, words, alive, n)
                for i in range(lo, hi):
                    if low and np.int64(_popcount(np.uint64(suffixes[j, i]) ^ qlow)) != rho_low:
                        continue
                    p = np.int64(positions[j, i])
                    stats[2] += 1
                    d = _distance(words, p, q)
                    if d > bound or not alive[p] or _first_step(words, p, qkeys, starts, sizes) != t:
                        continue
                    hist[d] += 1
                    accepted += 1
                    stats[3] += 1
                    if top_k and accepted % 32 == 0:  # a tighter bound skips more candidates early
                        bound = min(bound, _kth_bound(hist, k))
                    if nbuf == len(buf) and top_k:  # drop what can no longer make the top k before growing
                        bound = _kth_bound(hist, k)
                        kept = 0
                        for b in range(nbuf):
                            if buf[b] >> 32 <= bound:
                                buf[kept] = buf[b]
                                kept += 1
                        nbuf = kept
                    if d <= bound:
                        buf, nbuf = _push(buf, nbuf, (d << 32) | p)
                if mask == 0:
                    break
                lowest = mask & -mask  # Gosper's hack: the next mask with the same popcount
                ripple = mask + lowest
                mask = (((ripple ^ mask) >> 2) // lowest) | ripple
    keys = np.sort(buf[:nbuf])
    return keys[:k] if top_k else keys


@njit(cache=True, nogil=True)
def _knn_batch(qs, lo, hi, k, words, alive, n_main, n, n_alive, bits, starts, sizes, prefix, obase, offsets,
               positions, suffixes, binom, out_d, out_p, stats):
    for i in range(lo, hi):
        keys = _search_one(qs[i: i + 1], k, -1, words, alive, n_main, n, n_alive, bits, starts, sizes, prefix,
                           obase, offsets, positions, suffixes, binom, stats[i])
        for c in range(k):
            out_d[i, c] = keys[c] >> 32
            out_p[i, c] = keys[c] & 0xFFFFFFFF


@njit(cache=True, nogil=True)
def _lookup(ids, order, n_main, alive, needles, out):
    """Alive position of each needle among the tables' positions (binary search over ``order``)."""
    for i in range(len(needles)):
        lo, hi = 0, n_main
        while lo < hi:
            mid = (lo + hi) >> 1
            if ids[order[mid]] < needles[i]:
                lo = mid + 1
            else:
                hi = mid
        out[i] = NO_POSITION
        while lo < n_main and ids[order[lo]] == needles[i]:
            if alive[order[lo]]:
                out[i] = order[lo]
                break
            lo += 1


class MultiIndex:
    """Codes, ids and MIH tables by position (= insertion order); see the module docstring."""

    def __init__(self, bits: int, tables: int | None = None):
        if tables is not None and (isinstance(tables, bool) or not isinstance(tables, (int, np.integer))
                                   or not ceil(bits / MAX_SUBSTRING_BITS) <= tables <= bits):
            raise ValueError(f"tables must be an integer in [{ceil(bits / MAX_SUBSTRING_BITS)}, {bits}] for "
                             f"{bits}-bit codes (substrings of at most {MAX_SUBSTRING_BITS} bits), got {tables!r}")
        self.bits, self.fixed_tables = bits, tables
        width = -(-bits // 64)
        self._words = np.zeros((0, width), np.uint64)
        self._ids = np.zeros(0, np.int64)
        self._alive = np.zeros(0, np.bool_)
        self._n = self._n_main = self._dead = 0
        self._delta: dict[int, int] = {}
        self._binom = np.array([[comb(s, r) for r in range(PREFIX_BITS + 1)] for s in range(PREFIX_BITS + 1)],
                               dtype=np.int64)
        self._build_tables()

    @property
    def ntotal(self) -> int:
        return self._n - self._dead

    @property
    def tables(self) -> int:
        return len(self._starts)

    def nbytes(self) -> int:
        """Bytes held by the live structures (storage capacity included)."""
        return sum(a.nbytes for a in (self._words, self._ids, self._alive, self._offsets, self._positions,
                                      self._suffixes, self._order))

    def _reserve(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._ids):
            return
        cap = max(need, len(self._ids) + len(self._ids) // 2)
        for name in ("_words", "_ids", "_alive"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def add(self, packed: np.ndarray, ids: np.ndarray) -> None:
        if self._n + len(ids) >= 1 << 32:
            raise ValueError("a multi-index holds fewer than 2**32 positions")
        self._reserve(len(ids))
        lo, hi = self._n, self._n + len(ids)
        self._words[lo:hi], self._ids[lo:hi], self._alive[lo:hi] = to_words(packed), ids, True
        self._n = hi
        if hi - self._n_main > min(max(self._n_main // DELTA_SHARE, DELTA_MIN), DELTA_MAX):
            self._build_tables()
        else:
            self._delta.update(zip(ids.tolist(), range(lo, hi)))

    def locate(self, ids: np.ndarray) -> np.ndarray:
        """The alive position of each id, NO_POSITION where absent."""
        out = np.empty(len(ids), np.int64)
        _lookup(self._ids, self._order, self._n_main, self._alive, ids, out)
        for i, id_ in enumerate(ids.tolist()):
            if out[i] == NO_POSITION:
                out[i] = self._delta.get(id_, NO_POSITION)
        return out

    def remove(self, ids: np.ndarray) -> int:
        where = self.locate(np.unique(ids))
        where = where[where != NO_POSITION]
        self._alive[where] = False
        for id_ in self._ids[where].tolist():
            self._delta.pop(id_, None)
        self._dead += len(where)
        if self._dead > max(self._n // DEAD_SHARE, DELTA_MIN) or (self._dead and self._dead == self._n):
            keep = self._alive[: self._n]
            self._words, self._ids = self._words[: self._n][keep], self._ids[: self._n][keep]
            self._n, self._dead = int(keep.sum()), 0
            self._alive = np.ones(self._n, np.bool_)
            self._build_tables()
        return len(where)

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """(packed codes, ids) of the live items in insertion order."""
        keep = self._alive[: self._n]
        return from_words(self._words[: self._n][keep], self.bits), self._ids[: self._n][keep].copy()

    def _build_tables(self) -> None:
        """(Re)build the tables over every stored position; the delta becomes empty."""
        n = self._n
        m = self.fixed_tables or table_count(self.bits, n)
        self._starts, self._sizes = layout(self.bits, m)
        self._prefix = np.minimum(self._sizes, PREFIX_BITS)
        self._obase = np.concatenate([[0], np.cumsum((1 << self._prefix) + 1)]).astype(np.int64)
        self._offsets = np.empty(self._obase[-1], np.uint32)
        self._positions = np.empty((m, n), np.uint32)
        self._suffixes = np.empty((m, n if (self._sizes > self._prefix).any() else 0), np.uint8)
        build_tables(self._words, n, self._starts, self._sizes, self._prefix, self._obase[:-1], self._offsets,
                     self._positions, self._suffixes)
        ids = self._ids[:n]
        self._order = (np.arange(n, dtype=np.uint32) if n < 2 or (ids[1:] > ids[:-1]).all()
                       else np.argsort(ids, kind="stable").astype(np.uint32))
        self._n_main = n
        self._delta = {}

    def _args(self) -> tuple:
        return (self._words, self._alive, self._n_main, self._n, self.ntotal, self.bits, self._starts, self._sizes,
                self._prefix, self._obase[:-1], self._offsets, self._positions, self._suffixes, self._binom)

    def search(self, queries: np.ndarray, k: int, stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (k <= ntotal): distances (Q, k) int32 and positions (Q, k) int64.

        ``stats``, if given, an int64 (Q, len(STATS)) array, receives each query's work: substring probes,
        bucket entries met, candidates verified by full distance, accepted, whether it fell back to a
        scan, and the last step (the profile in benchmarks/profile_mih.py)."""
        qs = to_words(queries)
        out_d = np.empty((len(qs), k), np.int64)
        out_p = np.empty((len(qs), k), np.int64)
        stats = np.empty((len(qs), len(STATS)), np.int64) if stats is None else stats
        args = self._args()
        threads = max(1, min(faiss.omp_get_max_threads(), len(qs)))
        bounds = np.linspace(0, len(qs), threads + 1).astype(int)

        def run(lo: int, hi: int) -> None:
            _knn_batch(qs, lo, hi, k, *args, out_d, out_p, stats)

        if threads == 1:
            run(0, len(qs))
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(run, bounds[:-1], bounds[1:]))
        return out_d.astype(np.int32), out_p

    def range_search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (distances int32, positions int64) of every item within ``radius``, in order."""
        qs = to_words(queries)
        args = self._args()
        stats = np.empty(len(STATS), np.int64)
        out = []
        for i in range(len(qs)):
            keys = _search_one(qs[i: i + 1], 0, radius, *args, stats)
            out.append(((keys >> 32).astype(np.int32), keys & 0xFFFFFFFF))
        return out

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        return self._ids[positions]
