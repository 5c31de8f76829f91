"""Is a method better than the strongest baseline? A paired test on per-query AP.

For one table cell (dataset, bit length) the *strongest baseline* is the baseline method with
the highest mean mAP over the runs. Each other row is paired with it query by query: for every
replicate (data seed, model seed) and both directions, the difference of the two methods' AP on
the same query (queries with no relevant database item have no AP and are left out). The
differences of all replicates are pooled and tested with the **Wilcoxon signed-rank test**
(scipy, two-sided): per-query AP is bounded and skewed, so a test on the median of the paired
differences without a normality assumption fits; with thousands of pairs it is exact enough
(normal approximation) and fast, where a paired bootstrap would cost thousands of resamples per
cell. Pooling treats (replicate, query) pairs as units, which overstates independence across
seeds, so a win also has to hold in EVERY replicate (mean difference > 0 in each): a
significant pooled result carried by one lucky seed is not a win.

Verdicts: ``win`` (p < 0.01, mean difference > 0 and > 0 in every replicate), ``loss`` (the
mirror image), otherwise ``no difference``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALPHA = 0.01


@dataclass(frozen=True)
class PairedResult:
    mean_diff: float            # mean of the pooled per-query differences (method - baseline)
    p_value: float              # Wilcoxon signed-rank, two-sided
    pairs: int                  # pooled (replicate, direction, query) pairs
    replicate_diffs: tuple[float, ...]  # mean difference within each replicate

    @property
    def better_in(self) -> int:
        return sum(d > 0 for d in self.replicate_diffs)

    @property
    def verdict(self) -> str:
        if self.p_value < ALPHA and self.mean_diff > 0 and all(d > 0 for d in self.replicate_diffs):
            return "win"
        if self.p_value < ALPHA and self.mean_diff < 0 and all(d < 0 for d in self.replicate_diffs):
            return "loss"
        return "no difference"


def paired_test(method_ap: list[np.ndarray], baseline_ap: list[np.ndarray]) -> PairedResult:
    """Per replicate, the per-query AP of the method and of the baseline on the same queries (NaN = no AP)."""
    from scipy.stats import wilcoxon

    if len(method_ap) != len(baseline_ap) or not method_ap:
        raise ValueError(f"need the same non-zero number of replicates, got {len(method_ap)} and {len(baseline_ap)}")
    diffs = []
    for a, b in zip(method_ap, baseline_ap):
        a, b = np.asarray(a, float), np.asarray(b, float)
        if a.shape != b.shape:
            raise ValueError(f"per-query AP of different queries: shapes {a.shape} and {b.shape}")
        keep = ~(np.isnan(a) | np.isnan(b))
        diffs.append(a[keep] - b[keep])
    pooled = np.concatenate(diffs)
    if not pooled.size:
        raise ValueError("no query has an AP in both runs")
    p = 1.0 if not np.any(pooled) else float(wilcoxon(pooled, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedResult(float(pooled.mean()), p, int(pooled.size), tuple(float(d.mean()) if d.size else 0.0 for d in diffs))
