"""Slow, obviously-correct ranking metrics: one query at a time, a stable argsort, Python loops.

The fast metrics in cmhash.metrics are checked against these (tests/test_metrics.py) and timed
against them (benchmarks/bench_metrics.py). Nothing here is shared with the fast code: distances
count differing ±1 entries, shared labels count common 1 entries (no bit packing, no popcount).
"""

from __future__ import annotations

import bisect
import math

import numpy as np


def ranked_query(q_code: np.ndarray, db_codes: np.ndarray, q_label: np.ndarray,
                 db_labels: np.ndarray) -> tuple[list[int], list[int]]:
    """(distances, shared-label counts) of the database in ranked order: by distance, then index."""
    distances = np.count_nonzero(db_codes != q_code, axis=1)
    shared = np.count_nonzero((db_labels == 1) & (q_label == 1), axis=1)
    order = np.argsort(distances, kind="stable")
    return distances[order].tolist(), shared[order].tolist()


def query_values(dist: list[int], shared: list[int], ks: list[int], ndcg_ks: list[int], bits: int) -> dict:
    """Every metric of one ranked query; None where a value is undefined."""
    rel = [s > 0 for s in shared]
    total = sum(rel)
    hits, precisions = 0, []
    for rank, r in enumerate(rel, start=1):
        if r:
            hits += 1
            precisions.append(hits / rank)
    out = {"num_relevant": total, "ap": sum(precisions) / total if total else None}
    out["ap_at"], out["precision_at"], out["recall_at"] = [], [], []
    for k in ks:
        found = sum(rel[:k])
        hits, top_precisions = 0, []
        for rank, r in enumerate(rel[:k], start=1):
            if r:
                hits += 1
                top_precisions.append(hits / rank)
        out["ap_at"].append(sum(top_precisions) / found if found else 0.0)
        out["precision_at"].append(found / k)
        out["recall_at"].append(found / total if total else None)
    ideal = sorted(shared, reverse=True)
    out["ndcg_at"] = []
    for k in ndcg_ks:
        dcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(shared[:k]))
        idcg = sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(ideal[:k]))
        out["ndcg_at"].append(dcg / idcg if idcg else None)
    cumulative = [0]                       # cumulative[i]: relevant items among the first i ranked
    for r in rel:
        cumulative.append(cumulative[-1] + r)
    out["radius_precision"], out["radius_recall"] = [], []
    for radius in range(bits + 1):
        retrieved = bisect.bisect_right(dist, radius)  # dist is ascending: within radius = a prefix
        found = cumulative[retrieved]
        out["radius_precision"].append(found / retrieved if retrieved else None)
        out["radius_recall"].append(found / total if total else None)
    return out


def per_query(query_codes, db_codes, query_labels, db_labels, ks=(), ndcg_ks=()) -> list[dict]:
    bits = query_codes.shape[1]
    return [query_values(*ranked_query(query_codes[i], db_codes, query_labels[i], db_labels),
                         list(ks), list(ndcg_ks), bits) for i in range(len(query_codes))]


def values(queries: list[dict], key: str) -> np.ndarray:
    """One per-query field as a (Q, m) float array, None (undefined) as NaN, to compare with fast code."""
    return np.array([[np.nan if v is None else v for v in np.atleast_1d(q[key])] for q in queries], dtype=float)


def _mean(values: list) -> float:
    """Mean of the kept queries' values; an undefined (None) value (only empty queries, kept under
    empty='zero') counts 0."""
    return sum(0.0 if v is None else v for v in values) / len(values)


def summary(queries: list[dict], ks=(), ndcg_ks=(), empty: str = "skip", radius: int = 2) -> dict:
    """Averages under the empty-query rule: 'skip' drops queries without relevant items."""
    kept = [q for q in queries if q["num_relevant"] > 0] if empty == "skip" else queries
    out = {"mAP": _mean([q["ap"] for q in kept]), "queries": len(kept),
           "empty_queries": sum(q["num_relevant"] == 0 for q in queries)}
    for i, k in enumerate(ks):
        out[f"mAP@{k}"] = _mean([q["ap_at"][i] for q in kept])
        out[f"P@{k}"] = _mean([q["precision_at"][i] for q in kept])
        out[f"R@{k}"] = _mean([q["recall_at"][i] for q in kept])
    for i, k in enumerate(ndcg_ks):
        out[f"NDCG@{k}"] = _mean([q["ndcg_at"][i] for q in kept])
    bits = len(kept[0]["radius_precision"]) - 1
    out["pr_precision"], out["pr_recall"] = [], []
    for r in range(bits + 1):
        defined = [q["radius_precision"][r] for q in kept if q["radius_precision"][r] is not None]
        out["pr_precision"].append(sum(defined) / len(defined) if defined else None)
        out["pr_recall"].append(_mean([q["radius_recall"][r] for q in kept]))
    r = min(radius, bits)
    out[f"P@r<={radius}"] = sum(q["radius_precision"][r] or 0.0 for q in kept) / len(kept)
    return out


def mean_average_precision(query_codes, db_codes, query_labels, db_labels, empty: str = "skip") -> float:
    """mAP over the whole ranking, nothing but AP per query (the benchmark's reference timing)."""
    aps = []
    for i in range(len(query_codes)):
        _, shared = ranked_query(query_codes[i], db_codes, query_labels[i], db_labels)
        hits, total = 0, 0.0
        for rank, s in enumerate(shared, start=1):
            if s > 0:
                hits += 1
                total += hits / rank
        if hits or empty == "zero":
            aps.append(total / hits if hits else 0.0)
    return sum(aps) / len(aps)
