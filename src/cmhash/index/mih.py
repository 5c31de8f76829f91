"""Exact k-nearest-neighbour search in Hamming space by multi-index hashing.

Norouzi, Punjani, Fleet, "Fast Exact Search in Hamming Space with Multi-Index Hashing" (CVPR 2012,
TPAMI 2014). Each ``bits``-bit code is cut into ``m`` disjoint substrings; table ``j`` groups the
codes by the value of substring ``j``. Search runs in steps ``t = 0, 1, 2, ...``; step ``t`` probes
table ``t % m`` at substring distance exactly ``t // m``.

Exactness (the pigeonhole refinement): write ``r = rho * m + a`` with ``0 <= a < m``. An item whose
substring distances ``d_j`` sum to at most ``r`` has ``d_j <= rho`` for some ``j <= a`` or
``d_j <= rho - 1`` for some ``j > a`` (otherwise the sum is at least ``(a + 1)(rho + 1) +
(m - a - 1) rho = r + 1``). After step ``t = r`` tables ``0..a`` have been probed up to ``rho`` and
the others up to ``rho - 1``, so every item within distance ``r`` is a candidate. Search stops after
the first step ``t`` at which at least ``k`` verified items lie within ``t``: nothing unseen can be
closer, and every item at a distance ``<= t`` has been seen, so ties are complete too and the order
(distance, then position = insertion order) is the flat scan's order.

Layout: table ``j`` is a CSR over the first (at most 24) bits of substring ``j`` (``offsets``), and
holds, in that bucket order, a copy of every item's full code and its position. Verifying a probed
bucket is then a sequential read (learned codes cluster, so a probe meets thousands of far items per
item it keeps: reading their codes by position was one cache miss each, and 90% of the time); the
position (for the answer and the tombstone check) is read only for items within the current bound.
Codes by position are kept only for the delta; export and rebuilds scatter table 0 back.

Each item is accepted once: only at the first step that can reach it, ``min_j(d_j * m + j)``,
computed from its full code (after its full distance, which already rules out most candidates once
k items are known). No visited set is needed.

Incremental: the tables cover positions ``[0, n_main)``; later adds sit in a delta that every query
scans linearly, merged into the tables when it grows past a fraction of the index. Removal marks a
tombstone (skipped by search); the storage is compacted when a large share is dead.

Compiled with numba (``nogil``; queries are split over Python threads): FAISS has no exact MIH
top-k (``IndexBinaryMultiHash.search`` only looks inside the probed buckets), and the probe loop is
branchy per-item work that numpy cannot vectorise. A query whose probing would cost more than a scan
falls back to an exact two-pass scan (histogram of distances with a shrinking bound, then collect).
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
PROBE_COST = 16  # one bucket probe (a random read of offsets) costs about this many sequential code reads
BIG_BUCKET = 2048  # a bucket with more entries gets its runs indexed (<= 257 uint32 per 2,048 items: 0.5 B/item)
DELTA_MIN, DELTA_MAX, DELTA_SHARE = 1024, 1 << 18, 16  # merge the delta past clamp(n_main / SHARE)
DEAD_SHARE = 8  # compact when more than n / DEAD_SHARE positions are tombstones
NO_POSITION = -1
STATS = ("probes", "met", "near", "accepted", "scanned", "steps")  # per-query counters, see search()


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


@njit(inline="always")
def _position(positions, base, i):
    """Position of entry ``i``: from a table's ``positions``, or ``base + i`` where there are none (delta)."""
    return np.int64(positions[i]) if len(positions) else base + i


@njit(cache=True, nogil=True)
def build_tables(words, n, starts, sizes, prefix, obase, offsets, codes, positions):
    """Per table, the ``positions`` and full ``codes`` sorted by substring (then position): an LSD radix
    sort, by the low bits beyond the prefix, then by the prefix, whose counts are the CSR ``offsets``."""
    order = np.empty(n if (sizes > prefix).any() else 0, np.uint32)
    for j in range(len(starts)):
        base, low = obase[j], sizes[j] - prefix[j]
        if low:
            fill = np.zeros((1 << low) + 1, np.int64)
            for p in range(n):
                fill[1 + np.int64(_substring(words, p, starts[j], sizes[j]) & np.uint64((1 << low) - 1))] += 1
            fill = np.cumsum(fill)
            for p in range(n):
                tail = np.int64(_substring(words, p, starts[j], sizes[j]) & np.uint64((1 << low) - 1))
                order[fill[tail]] = p
                fill[tail] += 1
        nb = (1 << prefix[j]) + 1
        offsets[base: base + nb] = 0
        for p in range(n):
            offsets[base + 1 + np.int64(_substring(words, p, starts[j], sizes[j]) >> np.uint64(low))] += 1
        for b in range(1, nb):
            offsets[base + b] += offsets[base + b - 1]
        fill = offsets[base: base + nb - 1].astype(np.int64)
        for i in range(n):
            p = np.int64(order[i]) if low else i
            head = np.int64(_substring(words, p, starts[j], sizes[j]) >> np.uint64(low))
            positions[j, fill[head]] = p
            for w in range(words.shape[1]):
                codes[j, fill[head], w] = words[p, w]
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
def _count_pass(q, k, codes, positions, base, alive, hist, bound):
    """Histogram of the alive items within ``bound`` (which shrinks to the k-th distance seen so far)."""
    for i in range(len(codes)):
        d = _distance(codes, i, q)
        if d <= bound and alive[_position(positions, base, i)]:
            hist[d] += 1
            bound = min(bound, _kth_bound(hist, k))
    return bound


@njit(cache=True, nogil=True)
def _collect_pass(q, cut, codes, positions, base, alive, out, nout, ties, nties, limit):
    """Items nearer than ``cut`` into ``out``; positions below ``limit`` at distance ``cut`` into ``ties``,
    which is sorted and cut to its first half whenever it fills up (its largest kept position: the new limit)."""
    keep = len(ties) // 2
    for i in range(len(codes)):
        d = _distance(codes, i, q)
        if d > cut:
            continue
        p = _position(positions, base, i)
        if not alive[p]:
            continue
        if d < cut:
            out[nout] = (d << 32) | p
            nout += 1
        elif p < limit:
            ties[nties] = p
            nties += 1
            if nties == len(ties):
                ties.sort()
                nties, limit = keep, ties[keep - 1]
    return nout, nties, limit


@njit(cache=True, nogil=True)
def build_runs(codes, offsets, obase, starts, sizes, prefix, big, runs):
    """For each big bucket (global bucket numbers ``big``, sorted), where each low-bit value's run starts
    in its table: ``runs[r, v]`` (``v = 0 .. 2**low``; the last is the bucket's end)."""
    for r in range(len(big)):
        j = np.searchsorted(obase, big[r], side="right") - 1
        lo, hi, low = np.int64(offsets[big[r]]), np.int64(offsets[big[r] + 1]), sizes[j] - prefix[j]
        runs[r, :] = 0
        for i in range(lo, hi):
            runs[r, 1 + np.int64(_substring(codes[j], i, starts[j], sizes[j]) & np.uint64((1 << low) - 1))] += 1
        runs[r, 0] = lo
        for v in range(1, (1 << low) + 1):
            runs[r, v] += runs[r, v - 1]


@njit(cache=True, nogil=True)
def _scan_knn(q, k, bits, codes0, positions0, delta, n_main, alive):
    """Exact top-k keys by a two-pass scan of table 0 and the delta: histogram, then collect."""
    hist = np.zeros(bits + 1, np.int64)
    bound = _count_pass(q, k, codes0, positions0, 0, alive, hist, bits)
    _count_pass(q, k, delta, positions0[:0], n_main, alive, hist, bound)
    cut = _kth_bound(hist, k)
    out = np.empty(k, np.int64)
    ties = np.empty(2 * (k - hist[:cut].sum()), np.int64)
    nout, nties, limit = _collect_pass(q, cut, codes0, positions0, 0, alive, out, 0, ties, 0, np.int64(1) << 62)
    nout, nties, limit = _collect_pass(q, cut, delta, positions0[:0], n_main, alive, out, nout, ties, nties, limit)
    ties = np.sort(ties[:nties])
    for i in range(k - nout):
        out[nout + i] = (cut << 32) | ties[i]
    return np.sort(out)


@njit(cache=True, nogil=True)
def _range_pass(q, radius, codes, positions, base, alive, buf, nbuf):
    for i in range(len(codes)):
        d = _distance(codes, i, q)
        if d <= radius:
            p = _position(positions, base, i)
            if alive[p]:
                buf, nbuf = _push(buf, nbuf, (d << 32) | p)
    return buf, nbuf


@njit(cache=True, nogil=True)
def _scan_range(q, radius, codes0, positions0, delta, n_main, alive):
    buf, nbuf = _range_pass(q, radius, codes0, positions0, 0, alive, np.empty(64, np.int64), 0)
    buf, nbuf = _range_pass(q, radius, delta, positions0[:0], n_main, alive, buf, nbuf)
    return np.sort(buf[:nbuf])


@njit(inline="always")
def _next_mask(mask):
    """The next larger integer with as many set bits (Gosper's hack); after 0 (no bits set), none: 2**62."""
    lowest = mask & -mask
    if lowest == 0:
        return np.int64(1) << 62
    ripple = mask + lowest
    return (((ripple ^ mask) >> 2) // lowest) | ripple


@njit(cache=True, nogil=True)
def _search_one(q, k, radius, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive, n_main, n_alive,
                bits, starts, sizes, prefix, binom, stats):
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
    for i in range(len(delta)):  # the delta, scanned
        p = n_main + i
        if alive[p]:
            d = _distance(delta, i, q)
            if d <= bound:
                hist[d] += 1
                buf, nbuf = _push(buf, nbuf, (d << 32) | p)
    budget, work, found, accepted = n_alive, len(delta), 0, 0
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
        table, where = codes[j], positions[j]
        base, head_bits, low = obase[j], prefix[j], sizes[j] - prefix[j]
        qhead, qlow = np.int64(qkeys[j] >> np.uint64(low)), np.int64(qkeys[j]) & ((np.int64(1) << low) - 1)
        # substring distance exactly rho, split between the prefix (rho_head) and the low bits (rho_low)
        for rho_head in range(max(0, rho - low), min(rho, head_bits) + 1):
            rho_low = rho - rho_head
            wanted = binom[low, rho_low]  # low-bit values at distance rho_low: runs of a big bucket
            work += PROBE_COST * binom[head_bits, rho_head]
            stats[0] += binom[head_bits, rho_head]
            mask = (np.int64(1) << rho_head) - 1
            while mask < np.int64(1) << head_bits:
                head = qhead ^ mask
                lo, hi = np.int64(offsets[base + head]), np.int64(offsets[base + head + 1])
                indexed = low > 0 and hi - lo > big_bucket
                work += PROBE_COST * wanted if indexed else hi - lo
                if work > budget:  # probing now costs more than a scan: scan instead
                    stats[4] = 1
                    if top_k:
                        return _scan_knn(q, k, bits, codes[0], positions[0], delta, n_main, alive)
                    return _scan_range(q, radius, codes[0], positions[0], delta, n_main, alive)
                if hi == lo:
                    mask = _next_mask(mask)
                    continue
                r = np.searchsorted(big, base + head) if indexed else 0
                tail = (np.int64(1) << rho_low) - 1
                for _ in range(wanted if indexed else 1):
                    if indexed:  # read only the run of each low-bit value at distance rho_low
                        a, b = np.int64(runs[r, qlow ^ tail]), np.int64(runs[r, (qlow ^ tail) + 1])
                        work += b - a
                        stats[0] += 1
                        tail = _next_mask(tail)
                    else:  # read it all: _first_step drops the entries at other distances
                        a, b = lo, hi
                    stats[1] += b - a
                    for i in range(a, b):
                        d = _distance(table, i, q)
                        if d > bound:
                            continue
                        stats[2] += 1
                        p = np.int64(where[i])
                        if _first_step(table, i, qkeys, starts, sizes) != t or not alive[p]:
                            continue
                        hist[d] += 1
                        accepted += 1
                        stats[3] += 1
                        if top_k and accepted % 32 == 0:  # a tighter bound skips more candidates early
                            bound = min(bound, _kth_bound(hist, k))
                        if nbuf == len(buf) and top_k:  # drop what can no longer make the top k before growing
                            bound = _kth_bound(hist, k)
                            kept = 0
                            for c in range(nbuf):
                                if buf[c] >> 32 <= bound:
                                    buf[kept] = buf[c]
                                    kept += 1
                            nbuf = kept
                        if d <= bound:
                            buf, nbuf = _push(buf, nbuf, (d << 32) | p)
                mask = _next_mask(mask)
    keys = np.sort(buf[:nbuf])
    return keys[:k] if top_k else keys


@njit(cache=True, nogil=True)
def _knn_batch(qs, lo, hi, k, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive, n_main, n_alive,
               bits, starts, sizes, prefix, binom, out_d, out_p, stats):
    for i in range(lo, hi):
        keys = _search_one(qs[i: i + 1], k, -1, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive,
                           n_main, n_alive, bits, starts, sizes, prefix, binom, stats[i])
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
    """Ids by position (= insertion order) and MIH tables holding the codes; see the module docstring."""

    def __init__(self, bits: int, tables: int | None = None):
        if tables is not None and (isinstance(tables, bool) or not isinstance(tables, (int, np.integer))
                                   or not ceil(bits / MAX_SUBSTRING_BITS) <= tables <= bits):
            raise ValueError(f"tables must be an integer in [{ceil(bits / MAX_SUBSTRING_BITS)}, {bits}] for "
                             f"{bits}-bit codes (substrings of at most {MAX_SUBSTRING_BITS} bits), got {tables!r}")
        self.bits, self.fixed_tables = bits, tables
        self._width = -(-bits // 64)
        self._delta = np.zeros((0, self._width), np.uint64)  # codes at positions n_main.., by position
        self._ids = np.zeros(0, np.int64)
        self._alive = np.zeros(0, np.bool_)
        self._n = self._n_main = self._dead = 0
        self._delta_ids: dict[int, int] = {}
        self._binom = np.array([[comb(s, r) for r in range(PREFIX_BITS + 1)] for s in range(PREFIX_BITS + 1)],
                               dtype=np.int64)
        self._build_tables(self._delta[:0])

    @property
    def ntotal(self) -> int:
        return self._n - self._dead

    @property
    def tables(self) -> int:
        return len(self._starts)

    def nbytes(self) -> int:
        """Bytes held by the live structures (storage capacity included)."""
        return sum(a.nbytes for a in (self._codes, self._positions, self._offsets, self._big, self._runs, self._delta,
                                      self._ids, self._alive, self._order))

    def _reserve(self, extra: int) -> None:
        """Room for ``extra`` more positions (ids, alive flags and delta codes grow by half at least)."""
        if self._n + extra > len(self._ids):
            cap = max(self._n + extra, len(self._ids) + len(self._ids) // 2)
            for name in ("_ids", "_alive"):
                old = getattr(self, name)
                new = np.zeros(cap, old.dtype)
                new[: self._n] = old[: self._n]
                setattr(self, name, new)
        used = self._n - self._n_main
        if used + extra > len(self._delta):
            new = np.zeros((max(used + extra, len(self._delta) + len(self._delta) // 2), self._width), np.uint64)
            new[:used] = self._delta[:used]
            self._delta = new

    def add(self, packed: np.ndarray, ids: np.ndarray) -> None:
        if self._n + len(ids) >= 1 << 32:
            raise ValueError("a multi-index holds fewer than 2**32 positions")
        self._reserve(len(ids))
        lo, hi = self._n, self._n + len(ids)
        self._delta[lo - self._n_main: hi - self._n_main] = to_words(packed)
        self._ids[lo:hi], self._alive[lo:hi] = ids, True
        self._n = hi
        if hi - self._n_main > min(max(self._n_main // DELTA_SHARE, DELTA_MIN), DELTA_MAX):
            self._build_tables(self._words())
        else:
            self._delta_ids.update(zip(ids.tolist(), range(lo, hi)))

    def locate(self, ids: np.ndarray) -> np.ndarray:
        """The alive position of each id, NO_POSITION where absent."""
        out = np.empty(len(ids), np.int64)
        _lookup(self._ids, self._order, self._n_main, self._alive, ids, out)
        for i, id_ in enumerate(ids.tolist()):
            if out[i] == NO_POSITION:
                out[i] = self._delta_ids.get(id_, NO_POSITION)
        return out

    def remove(self, ids: np.ndarray) -> int:
        where = self.locate(np.unique(ids))
        where = where[where != NO_POSITION]
        self._alive[where] = False
        for id_ in self._ids[where].tolist():
            self._delta_ids.pop(id_, None)
        self._dead += len(where)
        if self._dead > max(self._n // DEAD_SHARE, DELTA_MIN) or (self._dead and self._dead == self._n):
            keep = self._alive[: self._n]
            words, self._ids = self._words()[keep], self._ids[: self._n][keep]
            self._n, self._dead = int(keep.sum()), 0
            self._alive = np.ones(self._n, np.bool_)
            self._build_tables(words)
        return len(where)

    def _words(self) -> np.ndarray:
        """Every stored code (dead ones too) by position: table 0 scattered back, then the delta."""
        words = np.empty((self._n, self._width), np.uint64)
        words[self._positions[0]] = self._codes[0]
        words[self._n_main:] = self._delta[: self._n - self._n_main]
        return words

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """(packed codes, ids) of the live items in insertion order."""
        keep = self._alive[: self._n]
        return from_words(self._words()[keep], self.bits), self._ids[: self._n][keep].copy()

    def _build_tables(self, words: np.ndarray) -> None:
        """(Re)build the tables over ``words``, every stored position's code; the delta becomes empty."""
        n = self._n
        self._codes = self._positions = None  # the old tables and delta go before the new tables are allocated
        self._delta = np.zeros((0, self._width), np.uint64)
        m = self.fixed_tables or table_count(self.bits, n)
        self._starts, self._sizes = layout(self.bits, m)
        self._prefix = np.minimum(self._sizes, PREFIX_BITS)
        self._obase = np.concatenate([[0], np.cumsum((1 << self._prefix) + 1)]).astype(np.int64)
        self._offsets = np.empty(self._obase[-1], np.uint32)
        self._codes = np.empty((m, n, self._width), np.uint64)
        self._positions = np.empty((m, n), np.uint32)
        build_tables(words, n, self._starts, self._sizes, self._prefix, self._obase[:-1], self._offsets,
                     self._codes, self._positions)
        self._big_bucket = BIG_BUCKET
        self._big = np.concatenate([np.flatnonzero(np.diff(self._offsets[a: b].astype(np.int64)) > BIG_BUCKET) + a
                                    for a, b, low in zip(self._obase[:-1], self._obase[1:], self._sizes - self._prefix)
                                    if low] or [np.zeros(0, np.int64)])
        self._runs = np.empty((len(self._big), (1 << int((self._sizes - self._prefix).max())) + 1), np.uint32)
        build_runs(self._codes, self._offsets, self._obase[:-1], self._starts, self._sizes, self._prefix, self._big,
                   self._runs)
        ids = self._ids[:n]
        self._order = (np.arange(n, dtype=np.uint32) if n < 2 or (ids[1:] > ids[:-1]).all()
                       else np.argsort(ids, kind="stable").astype(np.uint32))
        self._n_main = n
        self._delta_ids = {}

    def _args(self) -> tuple:
        return (self._codes, self._positions, self._offsets, self._obase[:-1], self._big_bucket, self._big, self._runs,
                self._delta[: self._n - self._n_main],
                self._alive, self._n_main, self.ntotal, self.bits, self._starts, self._sizes, self._prefix,
                self._binom)

    def search(self, queries: np.ndarray, k: int, stats: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k (k <= ntotal): distances (Q, k) int32 and positions (Q, k) int64.

        ``stats``, if given, an int64 (Q, len(STATS)) array, receives each query's work: substring probes,
        table entries read, entries within the current bound (their position read), accepted, whether it
        fell back to a scan, and the last step (the profile in benchmarks/profile_mih.py)."""
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
