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

Layout: table ``j`` is a CSR over the first bits of substring ``j`` (``offsets``; about log2 N bits, so
the offsets cost a few bytes per item, at most 24, leaving at most 8 low bits whose runs are indexed in big
buckets), and holds, in that bucket order, every item's position and, within COPY_BYTES per item, a copy
of its full code: all tables at 64 bits, table 0 only at 128 bits, whose other tables hold rows of table 0
instead of positions (6 copies of 16-byte codes were 200 B/item at 1M; now 78). Verifying a bucket of a
table with a copy is a sequential read (learned codes cluster, so a probe meets thousands of far items per
item it keeps: reading their codes by position was one cache miss each, and 90% of the time); the position
(for the answer and the tombstone check) is read only for items within the current bound. Codes by
position are kept only for the delta; export and rebuilds scatter table 0 back.

Each item is accepted once: only at the first step that can reach it, ``min_j(d_j * m + j)``,
computed from its full code (after its full distance, which already rules out most candidates once
k items are known). No visited set is needed.

Incremental: the tables cover positions ``[0, n_main)``; later adds sit in a delta that every query
scans linearly, merged into the tables when it grows past a fraction of the index. Removal marks a
tombstone (skipped by search); the storage is compacted when a large share is dead.

Compiled with numba (``nogil``; queries are split over Python threads): FAISS has no exact MIH
top-k (``IndexBinaryMultiHash.search`` only looks inside the probed buckets), and the probe loop is
branchy per-item work that numpy cannot vectorise.

Scan or probe: on codes without structure (uniform random) the k-th neighbour is far, and probing out to
it costs more than a scan. A range search knows its radius, so it compares the expected work of its steps
with a scan's before probing. A top-k search, once it has spent 1/WATCH of a scan, predicts at the end of
every round of m steps where it will stop (the k-th distance, from the items verified so far, each counted
by the inverse of the chance that an item at its distance has been reached yet) and scans if the rest of
the probing is expected to cost more than PLAN_MARGIN scans; whatever the prediction, it scans once
probing has cost a scan. The scan is one pass over table 0 and the delta (distances a block at a time,
vectorised; every item within the shrinking bound kept, so ties at the cut-off are complete).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from math import ceil, comb, log2

import faiss
import numpy as np
from numba import njit

from cmhash.popcount import popcount as _popcount

MAX_SUBSTRING_BITS = 32  # substrings are uint32 keys
PREFIX_BITS = 24  # tables address at most a substring's first 24 bits directly (2^24 uint32 offsets: 64 MB)
OFFSETS_PER_ITEM = 8  # offsets of all tables together: at most this many uint32 per item (beyond the bounds below)
MAX_LOW = 8  # substring bits beyond the prefix (a big bucket's run index has 2^MAX_LOW + 1 entries)
COPY_BYTES = 24  # code copies in bucket order per item: all tables at 64 bits (3 x 8 B), table 0 only at 128
PROBE_COST = 16  # one bucket probe (a random read of offsets) costs about this many sequential code reads
ROW_COST = 4.0, 48.0  # an entry read through a row number (a random read of table 0) costs this many: codes
CACHE_BYTES = 32 << 20  # of table 0 within this size (cache hits; 1M 128-bit codes: 16 MB), beyond it (misses)
SCAN_COST = 0.5  # an item of a scan (block-wise distances, no branch per item) costs this many
PLAN_MARGIN = 2.0  # ... and scans if the predicted rest of the probing costs more than this many scans
WATCH = 64  # a top-k search first asks whether a scan would be cheaper once it has spent 1/WATCH of a scan
SCAN_BLOCK = 256  # scan distances computed this many at a time
BIG_BUCKET = 2048  # a bucket with more entries gets its runs indexed (<= 257 uint32 per 2,048 items: 0.5 B/item)
DELTA_MIN, DELTA_MAX, DELTA_SHARE = 1024, 1 << 18, 16  # merge the delta past clamp(n_main / SHARE)
DEAD_SHARE = 8  # compact when more than n / DEAD_SHARE positions are tombstones
NO_POSITION = -1
STATS = ("probes", "met", "near", "accepted", "scanned", "steps")  # per-query counters, see search()
SCANNED = ("probed", "probing cost a scan", "predicted", "range planned")  # the values of "scanned"


def table_count(bits: int, n: int) -> int:
    """The paper's m = bits / log2(N), rounded, with substrings of at most 32 bits."""
    m = round(bits / max(log2(max(n, 2)), 1.0))
    return int(min(bits, max(m, ceil(bits / MAX_SUBSTRING_BITS), 1)))


def copy_count(bits: int, m: int) -> int:
    """How many tables keep a copy of the codes in bucket order: within COPY_BYTES per item, at least one
    (table 0 is where the codes live)."""
    return max(1, min(m, COPY_BYTES // (8 * -(-bits // 64))))


def prefix_bits(sizes: np.ndarray, n: int) -> np.ndarray:
    """Bits of each substring addressed by its offsets: as many as keep all tables' offsets within
    OFFSETS_PER_ITEM uint32 per item (at 1M: 21 bits with 3 tables, 20 with 6), at most PREFIX_BITS, and
    leaving at most MAX_LOW bits beyond."""
    fit = int(log2(max(OFFSETS_PER_ITEM * max(n, 2) / len(sizes), 2)))
    return np.minimum(np.minimum(sizes, PREFIX_BITS), np.maximum(sizes - MAX_LOW, fit)).astype(np.int64)


def row_work(n: int, bits: int) -> float:
    """The cost of reading an entry of a table without a code copy: a random read of table 0, a cache hit
    or a miss (~100 ns, against ~2 ns per entry read in sequence) depending on its size."""
    return ROW_COST[0] if n * 8 * -(-bits // 64) <= CACHE_BYTES else ROW_COST[1]


def planned_work(n: int, bits: int, sizes: np.ndarray, prefix: np.ndarray, copies: int) -> np.ndarray:
    """Expected work of search steps 0..t (cumulative, for t up to the last step bits + m) if the N codes
    were spread evenly over the buckets: each probe of a prefix at distance h reads N / 2^prefix entries."""
    m = len(sizes)
    step = np.zeros(bits + m + 1)
    for t in range(bits + m + 1):
        j, rho = t % m, t // m
        low, entry = int(sizes[j] - prefix[j]), 1.0 if j < copies else row_work(n, bits)
        for h in range(max(0, rho - low), min(rho, int(prefix[j])) + 1):
            step[t] += comb(int(prefix[j]), h) * (PROBE_COST + entry * n / 2.0 ** int(prefix[j]))
    return np.cumsum(step)


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
    """Per table, the ``positions`` sorted by substring (then position): an LSD radix sort, by the low bits
    beyond the prefix, then by the prefix, whose counts are the CSR ``offsets``. The first ``len(codes)`` tables
    also get the full codes in that order; the others hold, instead of positions, rows of table 0."""
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
            if j < len(codes):
                for w in range(words.shape[1]):
                    codes[j, fill[head], w] = words[p, w]
            fill[head] += 1
    if len(starts) > len(codes):
        row = np.empty(n, np.uint32)  # position -> row of table 0
        for i in range(n):
            row[positions[0, i]] = i
        for j in range(len(codes), len(starts)):
            for i in range(n):
                positions[j, i] = row[positions[j, i]]


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


@njit(inline="always")
def _block_distances(codes, words, lo, q, qrep, counts, dist):
    """Distances of rows ``lo .. lo + SCAN_BLOCK`` (``words``: the codes as one flat array) into ``dist``;
    returns the smallest. Full blocks of one- and two-word codes run fixed-length loops (popcounts of all the
    block's words, then per-row sums): loops the compiler vectorises."""
    nearest = np.int64(1) << 62
    width = codes.shape[1]
    if lo + SCAN_BLOCK > len(codes):  # the last, short block
        for i in range(len(codes) - lo):
            dist[i] = _distance(codes, lo + i, q)
            nearest = min(nearest, dist[i])
        return nearest
    if width == 1:
        block, q0 = words[lo: lo + SCAN_BLOCK], qrep[0]
        for i in range(SCAN_BLOCK):
            d = np.int64(_popcount(block[i] ^ q0))
            dist[i] = d
            nearest = min(nearest, d)
    elif width == 2:
        block = words[2 * lo: 2 * (lo + SCAN_BLOCK)]
        for x in range(2 * SCAN_BLOCK):
            counts[x] = np.int64(_popcount(block[x] ^ qrep[x]))
        for i in range(SCAN_BLOCK):
            d = counts[2 * i] + counts[2 * i + 1]
            dist[i] = d
            nearest = min(nearest, d)
    else:
        for i in range(SCAN_BLOCK):
            dist[i] = _distance(codes, lo + i, q)
            nearest = min(nearest, dist[i])
    return nearest


@njit(cache=True, nogil=True)
def _scan_pass(q, k, codes, positions, base, alive, hist, bound, buf, nbuf):
    """Alive items within ``bound`` into ``buf`` (keys) and ``hist``; for top-k (``k > 0``) the bound shrinks to
    the k-th distance seen so far. Distances come a block at a time; a block with none within the bound (the
    usual case once the bound is tight) costs no per-item branch."""
    width = codes.shape[1]
    words = codes.reshape(-1)
    qrep = np.empty(SCAN_BLOCK * width, np.uint64)  # the query repeated, word for word with a block
    for x in range(len(qrep)):
        qrep[x] = q[0, x % width]
    counts = np.empty(SCAN_BLOCK * width, np.int64)
    dist = np.empty(SCAN_BLOCK, np.int64)
    within = hist[: bound + 1].sum()  # items within the bound so far
    for lo in range(0, len(codes), SCAN_BLOCK):
        if _block_distances(codes, words, lo, q, qrep, counts, dist) > bound:
            continue
        for i in range(min(SCAN_BLOCK, len(codes) - lo)):
            d = dist[i]
            if d > bound:
                continue
            p = _position(positions, base, lo + i)
            if not alive[p]:
                continue
            hist[d] += 1
            within += 1
            if k > 0:
                while within - hist[bound] >= k:  # the k-th distance moved below the bound
                    within -= hist[bound]
                    bound -= 1
                if nbuf == len(buf):  # drop what can no longer make the top k before growing
                    nbuf = _drop_beyond(buf, nbuf, bound)
            buf, nbuf = _push(buf, nbuf, (d << 32) | p)
    return bound, buf, nbuf


@njit(inline="always")
def _drop_beyond(buf, nbuf, bound):
    kept = 0
    for c in range(nbuf):
        if buf[c] >> 32 <= bound:
            buf[kept] = buf[c]
            kept += 1
    return kept


@njit(cache=True, nogil=True)
def _scan(q, k, radius, bits, codes0, positions0, delta, n_main, alive):
    """Sorted keys of the top k (``radius < 0``) or of all items within ``radius``, by one scan of table 0 and
    the delta: every alive item within the (shrinking) bound is kept, so ties at the cut-off are complete."""
    hist = np.zeros(bits + 1, np.int64)
    top_k = radius < 0
    buf = np.empty(max(64, 2 * k), np.int64)
    bound, buf, nbuf = _scan_pass(q, k if top_k else 0, codes0, positions0, 0, alive, hist,
                                  bits if top_k else radius, buf, 0)
    bound, buf, nbuf = _scan_pass(q, k if top_k else 0, delta, positions0[:0], n_main, alive, hist, bound, buf, nbuf)
    keys = np.sort(buf[:nbuf])
    return keys[:k] if top_k else keys


@njit(cache=True, nogil=True)
def build_runs(codes, positions, offsets, obase, starts, sizes, prefix, big, runs):
    """For each big bucket (global bucket numbers ``big``, sorted), where each low-bit value's run starts
    in its table: ``runs[r, v]`` (``v = 0 .. 2**low``; the last is the bucket's end)."""
    for r in range(len(big)):
        j = np.searchsorted(obase, big[r], side="right") - 1
        lo, hi, low = np.int64(offsets[big[r]]), np.int64(offsets[big[r] + 1]), sizes[j] - prefix[j]
        runs[r, :] = 0
        for i in range(lo, hi):
            table, row = (codes[j], i) if j < len(codes) else (codes[0], np.int64(positions[j, i]))
            runs[r, 1 + np.int64(_substring(table, row, starts[j], sizes[j]) & np.uint64((1 << low) - 1))] += 1
        runs[r, 0] = lo
        for v in range(1, (1 << low) + 1):
            runs[r, v] += runs[r, v - 1]


@njit(inline="always")
def _next_mask(mask):
    """The next larger integer with as many set bits (Gosper's hack); after 0 (no bits set), none: 2**62."""
    lowest = mask & -mask
    if lowest == 0:
        return np.int64(1) << 62
    ripple = mask + lowest
    return (((ripple ^ mask) >> 2) // lowest) | ripple


@njit(cache=True, nogil=True)
def _predicted_last_step(hist, k, bound, t, sizes, cbin, bits):
    """After steps 0..t-1 (``t`` a multiple of m: every table probed up to ``reach = t/m - 1``), the step at
    which the search is expected to stop: the estimated k-th distance. Items at distance d are counted by
    ``hist[d]`` divided by the chance that an item at distance d has been reached by now (its d differing bits
    spread at random over the substrings, at least one substring with at most ``reach`` of them): exact (1)
    below t, smaller beyond. ``bits + len(sizes)`` (the last step) where fewer than k items are expected."""
    reach = t // len(sizes) - 1
    ways = np.zeros(bits + 1)  # ways to place e differing bits so that every substring so far has > reach
    ways[0] = 1.0
    for j in range(len(sizes)):
        grown = np.zeros(bits + 1)
        for e in range(bits + 1):
            if ways[e] != 0.0:
                for x in range(reach + 1, min(sizes[j], bits - e) + 1):
                    grown[e + x] += ways[e] * cbin[sizes[j], x]
        ways = grown
    expected = 0.0
    for d in range(min(bound, bits) + 1):
        reached = 1.0 - ways[d] / cbin[bits, d]
        if hist[d] and reached > 0.0:
            expected += hist[d] / reached
        if expected >= k:
            return max(d, t - 1)
    return bits + len(sizes)


@njit(cache=True, nogil=True)
def _search_one(q, k, radius, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive, n_main,
                scan_work, row_cost, planned, cbin, bits, starts, sizes, prefix, binom, stats):
    """Sorted keys (distance << 32 | position): the top k (``radius < 0``) or all within ``radius``;
    ``stats`` receives the counters named in ``STATS``.

    Scan or probe: ``planned[t]`` is the expected work (in ``PROBE_COST`` units) of steps 0..t, ``scan_work``
    that of a scan. A range search knows its last step, so it decides before probing; a top-k search decides
    once per round of m steps, when it has spent ``scan_work / WATCH``, from the predicted last step (see
    ``_predicted_last_step``); and scans if probing has cost as much as a scan anyway (a misprediction)."""
    m = len(starts)
    top_k = radius < 0
    bound = bits if top_k else radius  # candidates farther than this cannot be in the answer
    last = bits + m if top_k else radius  # the last step
    stats[:] = 0
    if not top_k and planned[last] > scan_work:
        stats[4] = 3
        return _scan(q, k, radius, bits, codes[0], positions[0], delta, n_main, alive)
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
    work, found, accepted = float(len(delta)), 0, 0
    codes0, positions0 = codes[0], positions[0]
    for t in range(last + 1):
        stats[5] = t
        if top_k and t > 0:
            found += hist[t - 1]
            if found >= k:  # every item within t - 1 is verified, and there are k of them
                break
            if t % m == 0 and work * WATCH >= scan_work and \
                    planned[_predicted_last_step(hist, k, bound, t, sizes, cbin, bits)] - planned[t - 1] > \
                    PLAN_MARGIN * scan_work:
                stats[4] = 2
                return _scan(q, k, radius, bits, codes0, positions0, delta, n_main, alive)
        j, rho = t % m, t // m
        if rho > sizes[j]:
            continue
        copy = j < len(codes)  # entries hold the code (sequential reads) or its row in table 0 (random reads)
        table, where, entry_work = (codes[j], positions[j], 1.0) if copy else (codes0, positions[j], row_cost)
        base, head_bits, low = obase[j], prefix[j], sizes[j] - prefix[j]
        qhead, qlow = np.int64(qkeys[j] >> np.uint64(low)), np.int64(qkeys[j]) & ((np.int64(1) << low) - 1)
        # substring distance exactly rho, split between the prefix (rho_head) and the low bits (rho_low)
        for rho_head in range(max(0, rho - low), min(rho, head_bits) + 1):
            rho_low = rho - rho_head
            wanted = binom[low, rho_low]  # low-bit values at distance rho_low: runs of a big bucket
            stats[0] += binom[head_bits, rho_head]
            mask = (np.int64(1) << rho_head) - 1
            while mask < np.int64(1) << head_bits:
                head = qhead ^ mask
                lo, hi = np.int64(offsets[base + head]), np.int64(offsets[base + head + 1])
                indexed = low > 0 and hi - lo > big_bucket
                work += PROBE_COST + (PROBE_COST * wanted if indexed else (hi - lo) * entry_work)
                if work > scan_work:  # probing has cost a scan already: scan instead
                    stats[4] = 1
                    return _scan(q, k, radius, bits, codes0, positions0, delta, n_main, alive)
                if hi == lo:
                    mask = _next_mask(mask)
                    continue
                r = np.searchsorted(big, base + head) if indexed else 0
                tail = (np.int64(1) << rho_low) - 1
                for _ in range(wanted if indexed else 1):
                    if indexed:  # read only the run of each low-bit value at distance rho_low
                        a, b = np.int64(runs[r, qlow ^ tail]), np.int64(runs[r, (qlow ^ tail) + 1])
                        work += (b - a) * entry_work
                        stats[0] += 1
                        tail = _next_mask(tail)
                    else:  # read it all: _first_step drops the entries at other distances
                        a, b = lo, hi
                    stats[1] += b - a
                    for i in range(a, b):
                        row = i if copy else np.int64(where[i])
                        d = _distance(table, row, q)
                        if d > bound:
                            continue
                        stats[2] += 1
                        p = np.int64(where[i]) if copy else np.int64(positions0[row])
                        if _first_step(table, row, qkeys, starts, sizes) != t or not alive[p]:
                            continue
                        hist[d] += 1
                        accepted += 1
                        stats[3] += 1
                        if top_k and accepted % 32 == 0:  # a tighter bound skips more candidates early
                            bound = min(bound, _kth_bound(hist, k))
                        if nbuf == len(buf) and top_k:  # drop what can no longer make the top k before growing
                            bound = _kth_bound(hist, k)
                            nbuf = _drop_beyond(buf, nbuf, bound)
                        if d <= bound:
                            buf, nbuf = _push(buf, nbuf, (d << 32) | p)
                mask = _next_mask(mask)
    keys = np.sort(buf[:nbuf])
    return keys[:k] if top_k else keys


@njit(cache=True, nogil=True)
def _knn_batch(qs, lo, hi, k, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive, n_main,
               scan_work, row_cost, planned, cbin, bits, starts, sizes, prefix, binom, out_d, out_p, stats):
    for i in range(lo, hi):
        keys = _search_one(qs[i: i + 1], k, -1, codes, positions, offsets, obase, big_bucket, big, runs, delta, alive,
                           n_main, scan_work, row_cost, planned, cbin, bits, starts, sizes, prefix, binom,
                           stats[i])
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
        self._cbin = np.array([[float(comb(s, r)) for r in range(bits + 1)] for s in range(bits + 1)])
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
        self._prefix = prefix_bits(self._sizes, n)
        self._obase = np.concatenate([[0], np.cumsum((1 << self._prefix) + 1)]).astype(np.int64)
        self._offsets = np.empty(self._obase[-1], np.uint32)
        copies = copy_count(self.bits, m)
        self._planned = planned_work(n, self.bits, self._sizes, self._prefix, copies)
        self._codes = np.empty((copies, n, self._width), np.uint64)
        self._positions = np.empty((m, n), np.uint32)
        build_tables(words, n, self._starts, self._sizes, self._prefix, self._obase[:-1], self._offsets,
                     self._codes, self._positions)
        self._big_bucket = BIG_BUCKET
        self._big = np.concatenate([np.flatnonzero(np.diff(self._offsets[a: b].astype(np.int64)) > BIG_BUCKET) + a
                                    for a, b, low in zip(self._obase[:-1], self._obase[1:], self._sizes - self._prefix)
                                    if low] or [np.zeros(0, np.int64)])
        self._runs = np.empty((len(self._big), (1 << int((self._sizes - self._prefix).max())) + 1), np.uint32)
        build_runs(self._codes, self._positions, self._offsets, self._obase[:-1], self._starts, self._sizes,
                   self._prefix, self._big, self._runs)
        ids = self._ids[:n]
        self._order = (np.arange(n, dtype=np.uint32) if n < 2 or (ids[1:] > ids[:-1]).all()
                       else np.argsort(ids, kind="stable").astype(np.uint32))
        self._n_main = n
        self._delta_ids = {}

    def _args(self) -> tuple:
        return (self._codes, self._positions, self._offsets, self._obase[:-1], self._big_bucket, self._big, self._runs,
                self._delta[: self._n - self._n_main],
                self._alive, self._n_main, self.ntotal * SCAN_COST, row_work(self._n_main, self.bits), self._planned,
                self._cbin, self.bits, self._starts, self._sizes, self._prefix, self._binom)

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
