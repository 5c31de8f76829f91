"""Retrieval metrics for Hamming ranking (rules and definitions: docs/metrics.md).

Plots live in :mod:`cmhash.metrics.plots` (imported on demand, so evaluation never loads matplotlib).
"""

from cmhash.metrics.evaluate import DIRECTIONS, evaluate_model, evaluate_model_metrics
from cmhash.metrics.ranking import (
    DEFAULT_KS,
    DEFAULT_NDCG_KS,
    EMPTY_RULES,
    PerQueryMetrics,
    RankingMetrics,
    mean_average_precision,
    per_query_metrics,
    ranking_metrics,
    summarize,
)

__all__ = [
    "DEFAULT_KS", "DEFAULT_NDCG_KS", "DIRECTIONS", "EMPTY_RULES", "PerQueryMetrics", "RankingMetrics",
    "evaluate_model", "evaluate_model_metrics", "mean_average_precision", "per_query_metrics",
    "ranking_metrics", "summarize",
]
