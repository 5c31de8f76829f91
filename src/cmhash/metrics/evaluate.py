"""Evaluate a hashing model across modalities: query codes of one modality against database codes
of another, each item encoded alone (``encode_image`` / ``encode_text``, see methods/base.py).
"""

from __future__ import annotations

from typing import Iterable, Protocol

import numpy as np

from cmhash.data.dataset import CrossModalDataset
from cmhash.metrics.ranking import (
    DEFAULT_KS,
    DEFAULT_NDCG_KS,
    DEFAULT_RADIUS,
    EmptyRule,
    PerQueryMetrics,
    RankingMetrics,
    mean_average_precision,
    per_query_metrics,
    summarize,
)

# direction -> (query modality, database modality)
DIRECTIONS: dict[str, tuple[str, str]] = {
    "i2t": ("image", "text"), "t2i": ("text", "image"), "i2i": ("image", "image"), "t2t": ("text", "text"),
}


class Encoder(Protocol):
    """What evaluation needs from a model: per-modality encoders to ±1 codes."""

    def encode_image(self, x: np.ndarray) -> np.ndarray: ...

    def encode_text(self, x: np.ndarray) -> np.ndarray: ...


def evaluate_model(model: Encoder, query: CrossModalDataset, database: CrossModalDataset,
                   directions: Iterable[str] = ("i2t", "t2i"), topk: int | None = None,
                   empty: EmptyRule = "skip", chunk_size: int | None = None) -> dict[str, float]:
    """direction -> mAP over the whole ranking (``topk=None``) or mAP@topk."""
    return {d: mean_average_precision(q, db, query.labels, database.labels, topk=topk, empty=empty,
                                      chunk_size=chunk_size)
            for d, (q, db) in _direction_codes(model, query, database, directions).items()}


def evaluate_model_metrics(model: Encoder, query: CrossModalDataset, database: CrossModalDataset,
                           directions: Iterable[str] = ("i2t", "t2i"), ks: Iterable[int] = DEFAULT_KS,
                           ndcg_ks: Iterable[int] = DEFAULT_NDCG_KS, empty: EmptyRule = "skip",
                           radius: int = DEFAULT_RADIUS, chunk_size: int | None = None) -> dict[str, RankingMetrics]:
    """direction -> every metric (mAP, mAP@K, P@K, R@K, NDCG@K, PR curve, P@r<=radius)."""
    per_query = evaluate_model_per_query(model, query, database, directions, ks, ndcg_ks, chunk_size)
    return {d: summarize(pq, empty=empty, radius=radius) for d, pq in per_query.items()}


def evaluate_model_per_query(model: Encoder, query: CrossModalDataset, database: CrossModalDataset,
                             directions: Iterable[str] = ("i2t", "t2i"), ks: Iterable[int] = DEFAULT_KS,
                             ndcg_ks: Iterable[int] = DEFAULT_NDCG_KS,
                             chunk_size: int | None = None) -> dict[str, PerQueryMetrics]:
    """direction -> each query's values before averaging (paired tests compare methods query by query)."""
    ks, ndcg_ks = tuple(ks), tuple(ndcg_ks)
    return {d: per_query_metrics(q, db, query.labels, database.labels, ks=ks, ndcg_ks=ndcg_ks, radius_curve=True,
                                 chunk_size=chunk_size)
            for d, (q, db) in _direction_codes(model, query, database, directions).items()}


def _direction_codes(model: Encoder, query: CrossModalDataset, database: CrossModalDataset,
                     directions: Iterable[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(query codes, database codes) per direction, encoding each (split, modality) once."""
    directions = tuple(directions)
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be a non-empty subset of {sorted(DIRECTIONS)}, got {list(directions)}")
    cache: dict[tuple[str, str], np.ndarray] = {}

    def codes(split: str, data: CrossModalDataset, modality: str) -> np.ndarray:
        if (split, modality) not in cache:
            cache[split, modality] = getattr(model, f"encode_{modality}")(getattr(data, modality))
        return cache[split, modality]

    return {d: (codes("query", query, DIRECTIONS[d][0]), codes("database", database, DIRECTIONS[d][1]))
            for d in directions}
