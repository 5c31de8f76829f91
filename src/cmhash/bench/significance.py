"""Is a method better than the strongest baseline? A paired test on per-query AP.

For one table cell (dataset, bit length) the *strongest baseline* is the baseline method with
the highest mean mAP over the runs. Each other row is paired with it query by query: for every
replicate (data seed, model seed) and both directions, the difference of the two methods' AP on
the same query (queries with no relevant database item have no AP and are left out). The
differences of all replicates are pooled and tested with a **paired t-test on their mean**
(scipy ``ttest_1samp`` against 0, two-sided). The table reports mAP, a mean, so the test is on the
mean too: a test on the median (Wilcoxon signed-rank, used before 2026-12-01) could call a
difference significant in the direction opposite to the mean's when many queries shift a little
one way and a few a lot the other. Per-query AP is bounded in [0, 1], so with the hundreds to
thousands of pairs of a cell the mean's sampling distribution is close to normal (central limit
theorem) without a normality assumption on AP itself. Pooling treats (replicate, query) pairs as
units, which overstates independence across seeds, so a win also has to hold in EVERY replicate
(mean difference > 0 in each): a significant pooled result carried by one lucky seed is not a win.

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
    p_value: float              # paired t-test on the mean difference, two-sided
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
    from scipy.stats import ttest_1samp

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
    if pooled.size < 2 or not np.any(pooled):  # nothing to test
        p = 1.0
    elif np.ptp(pooled) <= 1e-9 * np.abs(pooled).max():  # the same shift on every query (up to rounding): no spread
        p = 0.0
    else:
        p = float(ttest_1samp(pooled, 0.0).pvalue)
    return PairedResult(float(pooled.mean()), p, int(pooled.size), tuple(float(d.mean()) if d.size else 0.0 for d in diffs))
