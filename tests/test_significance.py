"""The paired test behind the bench's win/loss marks, against hand-computed Wilcoxon cases."""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.bench.report import significance_table
from cmhash.bench.runner import RunResult
from cmhash.bench.significance import paired_test


def test_all_positive_differences_exact_p():
    # n = 8 differences, all positive: W- = 0, exact two-sided p = 2 / 2**8 = 0.0078125 < 0.01.
    base = [np.full(4, 0.5), np.full(4, 0.5)]
    method = [0.5 + np.array([0.1, 0.2, 0.3, 0.4]), 0.5 + np.array([0.05, 0.15, 0.25, 0.35])]
    res = paired_test(method, base)
    assert res.p_value == pytest.approx(2 / 256)
    assert res.mean_diff == pytest.approx(np.mean([0.1, 0.2, 0.3, 0.4, 0.05, 0.15, 0.25, 0.35]))
    assert res.pairs == 8 and res.better_in == 2 and res.verdict == "win"
    assert paired_test(base, method).verdict == "loss"


def test_five_pairs_cannot_reach_one_percent():
    # n = 5 all positive: p = 2 / 2**5 = 0.0625.
    res = paired_test([np.array([0.1, 0.2, 0.3, 0.4, 0.5])], [np.zeros(5)])
    assert res.p_value == pytest.approx(0.0625) and res.verdict == "no difference"


def test_significant_pooled_but_not_in_every_seed_is_no_win():
    # Seed 1: ten clearly positive differences; seed 2: -0.01, -0.02, +0.001 (mean < 0).
    # Ranks of |d|: 0.001 -> 1 (+), 0.01 -> 2 (-), 0.02 -> 3 (-), the rest 4..13 (+); W- = 5.
    # Exact P(W <= 5) for n = 13 = #{subsets of 1..13 with sum <= 5} / 2**13 = 10 / 8192; two-sided 20 / 8192.
    d1 = np.linspace(0.5, 1.4, 10)
    d2 = np.array([-0.01, -0.02, 0.001])
    res = paired_test([d1, d2], [np.zeros(10), np.zeros(3)])
    assert res.p_value == pytest.approx(20 / 8192)
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
