"""Hamming-ranking retrieval metrics, exact and chunked over queries (definitions: docs/metrics.md).

Rules, the same in every function here:

- Relevant: a database item sharing at least one label with the query. NDCG's graded relevance
  is the number of shared labels (gain ``2**rel - 1``, discount ``log2(rank + 1)``).
- Ranking: ascending Hamming distance, ties broken by database index (a stable sort).
- AP of a query: mean, over its relevant items, of the precision at that item's rank.
- AP@K: the same sum restricted to the top K, divided by the number of relevant items *in the
  top K* (the DCMH / UCMFH / DeepHash evaluation code); a query with none there scores 0.
  mAP and mAP@K are different metrics and are never comparable.
- Queries with no relevant item in the whole database (``empty``): ``"skip"`` (default) leaves
  them out of every mean, ``"zero"`` scores their undefined values (AP, recall, NDCG) as 0,
  which is what the public code's ``continue`` + ``/ num_query`` amounts to. Their number is
  always reported.
- Precision–recall over Hamming radii r = 0..bits (items within r retrieved): a query retrieving
  nothing within r is left out of the precision mean at that r. Precision within radius 2
  (``P@r<=2``) instead counts such a query as 0.

Why the speed: Hamming distances take only bits + 1 values, so without NDCG no sort is needed
(:func:`_counting_metrics`, compiled): one pass over the database counts, per distance, the items
and the relevant items, and notes for each relevant item its distance and the counts of its distance
before it (database order); prefix sums over distances then give each relevant item its rank,
``items before its distance + items at its distance before it + 1`` (exactly the stable order), and
its hit count the same way. AP, AP@K, P@K, R@K and the radius curve follow from those counts. NDCG
needs each rank's graded gain: per chunk of queries, distances and shared-label counts come from
popcounts in uint8, the stable ranking from numpy's radix sort of those small integers, and every
metric from cumulative hit counts along the ranked list (row dot products), with no per-query Python.

Memory is bounded whatever the number of queries: inputs are checked and packed in row blocks
(:data:`PACK_BLOCK_ENTRIES`), the counting path needs :data:`COUNTING_BYTES_PER_ITEM` bytes per
database item of work space, and the NDCG path about 32 bytes per pair of a chunk
(:data:`CHUNK_PAIRS` pairs, at least one query's row).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Iterable, Literal

import numpy as np

from numba import njit

from cmhash.codes import bit_words, count_dtype, pairwise_popcount
from cmhash.popcount import popcount

EmptyRule = Literal["skip", "zero"]
EMPTY_RULES: tuple[str, ...] = ("skip", "zero")
DEFAULT_KS = (10, 50, 100, 500, 1000)
DEFAULT_NDCG_KS = (10, 100, 1000)
DEFAULT_RADIUS = 2
# Queries per chunk: about this many (query, item) pairs, ~32 bytes each of work space (sort
# indices, hit counts, float64 precisions, uint8 counts). Small enough for the arrays to stay in
# cache and be reused by the allocator: at MIRFlickr size, 8 to 29 queries per chunk were fastest
# (2 and 64 were 15-100% slower).
CHUNK_PAIRS = 2**18
# Input matrices are checked and packed this many entries at a time (a few MiB of temporaries).
PACK_BLOCK_ENTRIES = 2**20


@dataclass(frozen=True)
class PerQueryMetrics:
    """Each query's values before averaging; NaN marks a value undefined for that query."""

    num_relevant: np.ndarray          # (Q,) relevant items in the whole database
    ap: np.ndarray                    # (Q,) AP over the whole ranking; NaN when num_relevant == 0
    ks: tuple[int, ...]
    ap_at: np.ndarray                 # (Q, len(ks)) AP@K; 0 when no relevant item in the top K
    precision_at: np.ndarray          # (Q, len(ks))
    recall_at: np.ndarray             # (Q, len(ks)); NaN when num_relevant == 0
    ndcg_ks: tuple[int, ...]
    ndcg_at: np.ndarray               # (Q, len(ndcg_ks)); NaN when num_relevant == 0
    radius_precision: np.ndarray      # (Q, bits + 1) or (Q, 0); NaN when nothing is within radius r
    radius_recall: np.ndarray         # (Q, bits + 1) or (Q, 0); NaN when num_relevant == 0


@dataclass(frozen=True)
class RankingMetrics:
    """Query-averaged metrics of one retrieval direction; the names in :meth:`row` say which is which."""

    map: float
    map_at: dict[int, float]
    precision_at: dict[int, float]
    recall_at: dict[int, float]
    ndcg_at: dict[int, float]
    radius: int
    precision_within_radius: float    # P@r<=radius; a query retrieving nothing counts 0 (NaN if no curve)
    pr_precision: np.ndarray = field(repr=False)  # (bits + 1,) mean precision within radius r
    pr_recall: np.ndarray = field(repr=False)     # (bits + 1,) mean recall within radius r
    num_queries: int                  # queries in the means
    num_empty_queries: int            # queries with no relevant database item
    empty: str

    def row(self) -> dict[str, float | int | str]:
        """Flat, explicitly named values for a results table (``mAP`` vs ``mAP@K`` never mixed up)."""
        out: dict[str, float | int | str] = {"mAP": self.map}
        for prefix, values in (("mAP", self.map_at), ("P", self.precision_at), ("R", self.recall_at),
                               ("NDCG", self.ndcg_at)):
            out.update({f"{prefix}@{k}": v for k, v in values.items()})
        if self.pr_precision.size:
            out[f"P@r<={self.radius}"] = self.precision_within_radius
        out.update(queries=self.num_queries, empty_queries=self.num_empty_queries, empty_rule=self.empty)
        return out


def mean_average_precision(query_codes: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray,
                           db_labels: np.ndarray, *, topk: int | None = None, empty: EmptyRule = "skip",
                           chunk_size: int | None = None) -> float:
    """mAP over the whole ranking (``topk=None``) or mAP@topk, for ±1 codes and 0/1 labels."""
    per_query = per_query_metrics(query_codes, db_codes, query_labels, db_labels,
                                  ks=() if topk is None else (topk,), radius_curve=False, chunk_size=chunk_size)
    result = summarize(per_query, empty=empty)
    return result.map if topk is None else result.map_at[topk]


def ranking_metrics(query_codes: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray,
                    db_labels: np.ndarray, *, ks: Iterable[int] = DEFAULT_KS,
                    ndcg_ks: Iterable[int] = DEFAULT_NDCG_KS, empty: EmptyRule = "skip",
                    radius: int = DEFAULT_RADIUS, chunk_size: int | None = None) -> RankingMetrics:
    """Every metric of one direction: mAP, mAP@K, P@K, R@K, NDCG@K, the PR curve and P@r<=radius."""
    per_query = per_query_metrics(query_codes, db_codes, query_labels, db_labels, ks=ks, ndcg_ks=ndcg_ks,
                                  radius_curve=True, chunk_size=chunk_size)
    return summarize(per_query, empty=empty, radius=radius)


def per_query_metrics(query_codes: np.ndarray, db_codes: np.ndarray, query_labels: np.ndarray,
                      db_labels: np.ndarray, *, ks: Iterable[int] = (), ndcg_ks: Iterable[int] = (),
                      radius_curve: bool = True, chunk_size: int | None = None) -> PerQueryMetrics:
    """Per-query metric values, computed ``chunk_size`` queries at a time (default: ~2**18 pairs)."""
    q_codes = _codes(query_codes, "query_codes")
    d_codes = _codes(db_codes, "db_codes")
    q_labels = _labels(query_labels, "query_labels", len(q_codes))
    d_labels = _labels(db_labels, "db_labels", len(d_codes))
    if q_codes.shape[1] != d_codes.shape[1]:
        raise ValueError(f"code lengths differ: query_codes has {q_codes.shape[1]} bits, "
                         f"db_codes has {d_codes.shape[1]}")
    if q_labels.shape[1] != d_labels.shape[1]:
        raise ValueError(f"label counts differ: query_labels has {q_labels.shape[1]} classes, "
                         f"db_labels has {d_labels.shape[1]}")
    n = len(d_codes)
    ks, ndcg_ks = _cutoffs(ks, "ks", n), _cutoffs(ndcg_ks, "ndcg_ks", n)
    if chunk_size is None:
        chunk_size = max(1, CHUNK_PAIRS // n)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    q_words, d_words = _code_words(q_codes, "query_codes"), _code_words(d_codes, "db_codes")
    q_label_words, d_label_words = _label_words(q_labels, "query_labels"), _label_words(d_labels, "db_labels")
    if not ndcg_ks:
        return _counted(q_words, d_words, q_label_words, d_label_words, q_codes.shape[1], ks, radius_curve)
    ranker = _ChunkRanker(d_words, d_label_words, q_codes.shape[1], q_labels.shape[1], ks, ndcg_ks, radius_curve)
    parts = [ranker(q_words[s:s + chunk_size], q_label_words[s:s + chunk_size])
             for s in range(0, len(q_codes), chunk_size)]
    return PerQueryMetrics(ks=ks, ndcg_ks=ndcg_ks, **{
        f.name: np.concatenate([p[f.name] for p in parts]) for f in fields(PerQueryMetrics)
        if f.name not in ("ks", "ndcg_ks")})


def _counted(q_words: np.ndarray, d_words: np.ndarray, q_label_words: np.ndarray, d_label_words: np.ndarray,
             bits: int, ks: tuple[int, ...], radius_curve: bool) -> PerQueryMetrics:
    """Every metric but NDCG by counting (see the module docstring).

    Work space besides the packed inputs and the (Q, ...) outputs: :data:`COUNTING_BYTES_PER_ITEM`
    bytes per database item, whatever the number of queries.
    """
    nq, n = len(q_words), len(d_words)
    if n >= 2**32:  # the per-distance counters hold item counts in 32 bits
        raise ValueError(f"db_codes: {n} items; counting supports fewer than 2**32")
    num_relevant = np.empty(nq, np.int64)
    ap_sum = np.empty(nq)
    top_hits, top_sums = np.zeros((nq, len(ks)), np.int64), np.zeros((nq, len(ks)))
    within, relevant_within = np.empty((nq, bits + 1), np.int64), np.empty((nq, bits + 1), np.int64)
    # work space: n + 1 slots, as the branch-free scan writes one past the last relevant item
    rel_before, rel_dist = np.empty(n + 1, np.int64), np.empty(n + 1, count_dtype(bits))
    _counting_metrics(q_words, d_words, q_label_words, d_label_words, bits, np.asarray(ks, np.int64),
                      1.0 / np.arange(1, n + 1), rel_before, rel_dist,
                      num_relevant, ap_sum, top_hits, top_sums, within, relevant_within)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 -> NaN marks "undefined"
        ks_ = np.asarray(ks, dtype=np.float64)
        curve = {"radius_precision": relevant_within / within, "radius_recall": relevant_within / num_relevant[:, None]}
        if not radius_curve:
            curve = {name: np.zeros((nq, 0)) for name in curve}
        return PerQueryMetrics(
            num_relevant=num_relevant, ap=ap_sum / num_relevant, ks=ks,
            ap_at=np.where(top_hits > 0, top_sums / np.maximum(top_hits, 1), 0.0),
            precision_at=top_hits / ks_, recall_at=top_hits / num_relevant[:, None],
            ndcg_ks=(), ndcg_at=np.zeros((nq, 0)), **curve)


# Counting work space per database item: 1/rank (float64), and per relevant item its packed counts
# (int64) and its distance (uint8 up to 255 bits).
COUNTING_BYTES_PER_ITEM = 8 + 8 + 1
_ITEMS = np.int64(0xFFFFFFFF)  # low half of a packed counter: items; high half: relevant items


@njit(cache=True, nogil=True)
def _counting_metrics(q_words, d_words, q_label_words, d_label_words, bits, ks, inv_rank, rel_before, rel_dist,
                      num_relevant, ap_sum, top_hits, top_sums, within, relevant_within):
    """Per query: one pass over the database (:func:`_scan_word` / :func:`_scan_words`) counts items
    and relevant items per distance and notes, per relevant item, its distance and the count of its
    distance before it; per-distance prefix sums then turn that note into the item's 0-based rank
    (low half) and the relevant items ranked before it (high half). The loops over relevant items
    read only, with nothing else in them: the AP sum, then (only when asked) the top-K sums."""
    width = bits + 1
    single = d_words.shape[1] == 1 and d_label_words.shape[1] == 1
    codes, labels = d_words.reshape(d_words.size), d_label_words.reshape(d_label_words.size)
    k_max = ks.max() if len(ks) else 0
    for i in range(len(q_words)):
        counts = np.zeros(width, np.int64)
        if single:
            found = _scan_word(q_words[i, 0], q_label_words[i, 0], codes, labels, counts, rel_before, rel_dist)
        else:
            found = _scan_words(q_words[i], q_label_words[i], d_words, d_label_words, counts, rel_before, rel_dist)
        before = np.empty(width, np.int64)  # packed counts ranked before each distance
        running = np.int64(0)
        for t in range(width):
            before[t] = running
            running += counts[t]
            within[i, t], relevant_within[i, t] = running & _ITEMS, running >> 32
        num_relevant[i] = found
        total = 0.0
        for r in range(found):
            packed = before[rel_dist[r]] + rel_before[r]
            total += ((packed >> 32) + 1) * inv_rank[packed & _ITEMS]
        ap_sum[i] = total
        if k_max > 0:
            for r in range(found):
                packed = before[rel_dist[r]] + rel_before[r]
                rank0 = packed & _ITEMS
                if rank0 < k_max:
                    precision = ((packed >> 32) + 1) * inv_rank[rank0]
                    for c in range(len(ks)):
                        if rank0 < ks[c]:
                            top_hits[i, c] += 1
                            top_sums[i, c] += precision


@njit(cache=True, nogil=True)
def _scan_word(code, label, codes, labels, counts, rel_before, rel_dist):
    """:func:`_scan_words` for one-word codes and label sets (<= 64 bits, <= 64 labels), the common case.

    Branch-free: relevance decides only how far ``found`` advances (the slot past the last relevant
    item is written and ignored), and one packed int64 per distance counts ``relevant << 32 | items``.
    """
    found = 0
    for j in range(len(codes)):
        d = popcount(code ^ codes[j])
        is_relevant = np.int64((label & labels[j]) != 0)
        c = counts[d]
        rel_before[found], rel_dist[found] = c, d
        found += is_relevant
        counts[d] = c + 1 + (is_relevant << 32)
    return found


@njit(cache=True, nogil=True)
def _scan_words(q_code, q_label, d_words, d_label_words, counts, rel_before, rel_dist):
    """Fill ``counts`` (per distance, ``relevant << 32 | items``) and, per relevant item in database
    order, its distance and its distance's count before it; return the number of relevant items."""
    found = 0
    for j in range(len(d_words)):
        d = np.int64(0)
        for w in range(d_words.shape[1]):
            d += popcount(q_code[w] ^ d_words[j, w])
        shared = np.uint64(0)
        for w in range(d_label_words.shape[1]):
            shared |= q_label[w] & d_label_words[j, w]
        is_relevant = np.int64(shared != 0)
        c = counts[d]
        rel_before[found], rel_dist[found] = c, d
        found += is_relevant
        counts[d] = c + 1 + (is_relevant << 32)
    return found


def summarize(per_query: PerQueryMetrics, empty: EmptyRule = "skip",
              radius: int = DEFAULT_RADIUS) -> RankingMetrics:
    """Average per-query values under the empty-query rule (see the module docstring)."""
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty must be one of {EMPTY_RULES}, got {empty!r}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    has_relevant = per_query.num_relevant > 0
    rows = has_relevant if empty == "skip" else np.ones_like(has_relevant)
    if not rows.any():
        raise ValueError("no query has a relevant database item (shared label): every metric is undefined "
                         "under empty='skip'")

    def mean(values: np.ndarray) -> np.ndarray:
        """Mean over the kept queries; NaN there comes only from empty queries, scored 0 under 'zero'."""
        return np.nan_to_num(values[rows], nan=0.0).mean(axis=0)

    curve = per_query.radius_precision[rows]
    with np.errstate(invalid="ignore"):  # a radius where no kept query retrieves anything stays NaN
        pr_precision = np.nansum(curve, axis=0) / (~np.isnan(curve)).sum(axis=0)
    # P@r<=radius: nothing retrieved counts 0; a radius beyond the code length retrieves everything
    within = np.nan_to_num(curve[:, min(radius, curve.shape[1] - 1)], nan=0.0).mean() if curve.shape[1] else np.nan
    return RankingMetrics(
        map=float(mean(per_query.ap)),
        map_at=dict(zip(per_query.ks, mean(per_query.ap_at).tolist())),
        precision_at=dict(zip(per_query.ks, mean(per_query.precision_at).tolist())),
        recall_at=dict(zip(per_query.ks, mean(per_query.recall_at).tolist())),
        ndcg_at=dict(zip(per_query.ndcg_ks, mean(per_query.ndcg_at).tolist())),
        radius=radius,
        precision_within_radius=float(within),
        pr_precision=pr_precision, pr_recall=mean(per_query.radius_recall),
        num_queries=int(rows.sum()), num_empty_queries=int((~has_relevant).sum()), empty=empty,
    )


class _ChunkRanker:
    """Metrics for one chunk of queries against the whole (pre-packed) database."""

    def __init__(self, db_words: np.ndarray, db_label_words: np.ndarray, bits: int, num_labels: int,
                 ks: tuple[int, ...], ndcg_ks: tuple[int, ...], radius_curve: bool):
        self.db_words, self.db_label_words = db_words, db_label_words
        self.bits, self.num_labels = bits, num_labels
        self.ks, self.ndcg_ks, self.radius_curve = ks, ndcg_ks, radius_curve
        n = len(db_words)
        self.inv_rank = 1.0 / np.arange(1, n + 1)
        top = max(ndcg_ks, default=0)
        self.discount = 1.0 / np.log2(np.arange(2, top + 2))

    def __call__(self, q_words: np.ndarray, q_label_words: np.ndarray) -> dict[str, np.ndarray]:
        dist = pairwise_popcount(q_words, self.db_words, np.bitwise_xor, self.bits)
        shared = pairwise_popcount(q_label_words, self.db_label_words, np.bitwise_and, self.num_labels)
        within = self._within_radius(dist) if self.radius_curve else None
        ranked = self._rank(shared, dist)
        del dist
        ideal = self._ideal_dcg(shared)
        del shared
        relevant = ranked > 0
        hits = np.cumsum(relevant.view(np.uint8), axis=1, dtype=np.int32)  # relevant items up to each rank
        hit_precision = np.multiply(hits, relevant, dtype=np.float64)  # rank * precision at relevant ranks
        num_relevant = hits[:, -1].copy()  # a copy: a view would keep the whole chunk's hits alive
        out = {"num_relevant": num_relevant}
        with np.errstate(invalid="ignore", divide="ignore"):          # 0/0 -> NaN marks "undefined"
            out["ap"] = _prefix_dots(hit_precision, self.inv_rank, (len(self.inv_rank),))[:, 0] / num_relevant
            top_hits = hits[:, np.asarray(self.ks, dtype=np.int64) - 1] if self.ks else hits[:, :0]
            top_sums = _prefix_dots(hit_precision, self.inv_rank, self.ks)
            out["ap_at"] = np.where(top_hits > 0, top_sums / np.maximum(top_hits, 1), 0.0)
            out["precision_at"] = top_hits / np.asarray(self.ks, dtype=np.float64)
            out["recall_at"] = top_hits / num_relevant[:, None]
            out["ndcg_at"] = self._dcg(ranked) / ideal
            out.update(self._radius_curve(within, hits, num_relevant))
        return out

    @staticmethod
    def _rank(values: np.ndarray, dist: np.ndarray) -> np.ndarray:
        """``values`` of each row reordered by ascending distance, ties in index order.

        A stable argsort of uint8/uint16 is a radix sort; gathering through flat indices with
        ``np.take`` is several times faster than ``np.take_along_axis``.
        """
        order = np.argsort(dist, axis=1, kind="stable")
        order += np.arange(0, order.size, dist.shape[1])[:, None]
        return np.take(values.ravel(), order)

    def _within_radius(self, dist: np.ndarray) -> np.ndarray:
        """(B, bits + 1) number of database items within Hamming radius r, for r = 0..bits."""
        width = self.bits + 1
        offsets = (np.arange(len(dist), dtype=np.int64) * width)[:, None]
        counts = np.bincount((dist + offsets).ravel(), minlength=len(dist) * width)
        return np.cumsum(counts.reshape(len(dist), width), axis=1)

    def _radius_curve(self, within: np.ndarray | None, hits: np.ndarray,
                      num_relevant: np.ndarray) -> dict[str, np.ndarray]:
        if within is None:
            empty = np.zeros((len(hits), 0))
            return {"radius_precision": empty, "radius_recall": empty}
        relevant_within = np.where(within > 0, np.take_along_axis(hits, np.maximum(within - 1, 0), axis=1), 0)
        return {"radius_precision": relevant_within / within,
                "radius_recall": relevant_within / num_relevant[:, None]}

    def _dcg(self, grades: np.ndarray) -> np.ndarray:
        """(B, len(ndcg_ks)) DCG@K of the leading columns of ``grades`` (already in rank order)."""
        top = max(self.ndcg_ks, default=0)
        gains = np.exp2(grades[:, :top].astype(np.float64)) - 1.0
        return _prefix_dots(gains, self.discount, self.ndcg_ks)

    def _ideal_dcg(self, shared: np.ndarray) -> np.ndarray:
        """DCG@K of the query's own grades sorted best first."""
        if not self.ndcg_ks:
            return np.ones((len(shared), 0))
        return self._dcg(np.sort(shared, axis=1, kind="stable")[:, ::-1])  # stable: radix sort on uint8


def _prefix_dots(rows: np.ndarray, weights: np.ndarray, ks: tuple[int, ...]) -> np.ndarray:
    """(B, len(ks)): for each K, every row's first K values dotted with the first K weights.

    ``np.einsum`` rather than BLAS: single-threaded, so results do not depend on the thread count
    and OpenBLAS threads do not spin on a shared machine (a (1, N) product took ~30x longer).
    """
    out = np.empty((len(rows), len(ks)))
    for j, k in enumerate(ks):
        out[:, j] = np.einsum("ij,j->i", rows[:, :k], weights[:k])
    return out


def _codes(codes: np.ndarray, name: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] == 0 or codes.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (items x bits) matrix, got shape {codes.shape}")
    return codes


def _labels(labels: np.ndarray, name: str, rows: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != rows:
        raise ValueError(f"{name} must be a ({rows}, classes) 0/1 matrix, got shape {labels.shape}")
    return labels


def _code_words(codes: np.ndarray, name: str) -> np.ndarray:
    return _words(codes, -1, f"{name} must hold only -1/+1 (use cmhash.codes.sign on real outputs)")


def _label_words(labels: np.ndarray, name: str) -> np.ndarray:
    return _words(labels, 0, f"{name} must hold only 0/1")


def _words(matrix: np.ndarray, other: int, error: str) -> np.ndarray:
    """``matrix == 1`` as uint64 words, after checking every entry is 1 or ``other``.

    Row block by row block, so the temporaries (comparisons, packed bytes) stay under
    :data:`PACK_BLOCK_ENTRIES` entries whatever the number of rows; only the words (1 bit per
    entry, rounded up to 64 per row) are kept.
    """
    rows = max(1, PACK_BLOCK_ENTRIES // max(1, matrix.shape[1]))
    words = np.empty((len(matrix), max(1, -(-matrix.shape[1] // 64))), np.uint64)
    for start in range(0, len(matrix), rows):
        block = matrix[start:start + rows]
        ones = block == 1
        if not (ones | (block == other)).all():
            raise ValueError(error)
        words[start:start + rows] = bit_words(ones)
    return words


def _cutoffs(ks: Iterable[int], name: str, n: int) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise ValueError(f"{name}: cut-offs {bad} outside 1..{n} (the database size)")
    if len(set(ks)) != len(ks):
        raise ValueError(f"{name}: repeated cut-offs in {ks}")
    return ks
