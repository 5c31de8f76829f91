"""The paired test behind the bench's win/loss marks, against a hand-computed t statistic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from cmhash.bench.report import significance_table
from cmhash.bench.runner import RunResult
from cmhash.bench.significance import paired_test


def _reference_p(d: np.ndarray) -> float:
    """Two-sided one-sample t-test of mean(d) = 0, written out: t = mean / (s / sqrt(n)), n - 1 dof."""
    n = d.size
    s = math.sqrt(sum((x - d.mean()) ** 2 for x in d) / (n - 1))
    return 2 * student_t.sf(abs(d.mean() / (s / math.sqrt(n))), n - 1)


def test_all_positive_differences_match_the_written_out_t_test():
    base = [np.full(4, 0.5), np.full(4, 0.5)]
    d = np.array([0.1, 0.2, 0.3, 0.4, 0.05, 0.15, 0.25, 0.35])
    method = [0.5 + d[:4], 0.5 + d[4:]]
    res = paired_test(method, base)
    assert res.p_value == pytest.approx(_reference_p(d)) and res.p_value < 0.01
    assert res.mean_diff == pytest.approx(d.mean())
    assert res.pairs == 8 and res.better_in == 2 and res.verdict == "win"
    assert paired_test(base, method).verdict == "loss"


def test_few_noisy_pairs_cannot_reach_one_percent():
    d = np.array([0.3, -0.1, 0.2, 0.05, -0.05])
    res = paired_test([d], [np.zeros(5)])
    assert res.p_value == pytest.approx(_reference_p(d)) and res.verdict == "no difference"


def test_the_p_value_follows_the_mean_not_the_median():
    # 40 queries a little better, 10 much worse: the median difference is positive (a signed-rank
    # test calls it significantly better), the mean is negative, and the mean is what mAP reports.
    d = np.concatenate([np.full(40, 0.01), np.full(10, -0.2)]) + np.linspace(0, 1e-3, 50)
    res = paired_test([d], [np.zeros(50)])
    assert np.median(d) > 0 > res.mean_diff
    assert res.p_value == pytest.approx(_reference_p(d)) and res.verdict in ("loss", "no difference")


def test_significant_pooled_but_not_in_every_seed_is_no_win():
    # Seed 1: ten clearly positive differences; seed 2: -0.01, -0.02, +0.001 (mean < 0).
    d1 = np.linspace(0.5, 1.4, 10)
    d2 = np.array([-0.01, -0.02, 0.001])
    res = paired_test([d1, d2], [np.zeros(10), np.zeros(3)])
    assert res.p_value == pytest.approx(_reference_p(np.concatenate([d1, d2]))) and res.p_value < 0.01
    assert res.better_in == 1 and res.verdict == "no difference"


def test_queries_without_ap_are_left_out():
    res = paired_test([np.array([0.9, np.nan, 0.8])], [np.array([0.1, 0.5, np.nan])])
    assert res.pairs == 1 and res.mean_diff == pytest.approx(0.8)


def test_table_pairs_rows_with_the_strongest_baseline():
    def run(method, seed, ap):
        ap = np.asarray(ap, float)
        return RunResult("d", method, method, 8, seed, float(np.mean(ap)), float(np.mean(ap)), 0.0, None, None,
                         per_query_ap={"i2t": ap, "t2i": ap})

    q = np.linspace(0.1, 0.6, 6)
    results = [run("cca_itq", s, q) for s in (0, 1)] + [run("dcmh", s, q + 0.01) for s in (0, 1)] + \
              [run("ddss", s, q + 0.2) for s in (0, 1)]
    table = significance_table(results, ["cca_itq", "dcmh", "ddss"], [8])
    assert "vs dcmh (8 bits)" in table  # the stronger of the two baselines
    ddss = next(line for line in table.splitlines() if line.startswith("| ddss"))
    assert "+0.1900" in ddss and "better in 2/2" in ddss and "**win**" in ddss  # 24 pairs, all +0.19
    chosen = significance_table(results, ["cca_itq", "dcmh", "ddss"], [8], reference="cca_itq")
    assert "vs cca_itq (8 bits)" in chosen and "chosen with --reference" in chosen
    assert "+0.2000" in next(line for line in chosen.splitlines() if line.startswith("| ddss"))
    with pytest.raises(ValueError, match="--reference 'alech' is not a row"):
        significance_table(results, ["cca_itq", "dcmh", "ddss"], [8], reference="alech")
