"""Exact multi-index hashing: identical to brute force (distance, then insertion order) in every state.

The index goes through the states MIH has: codes in its tables, codes in the unsorted delta, removed
codes (tombstones), compaction, removed ids added again; the tables hold clustered codes (small search
radius, many ties and exact duplicates) or uniform ones (large radius, the scan fallback).
"""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.codes import hamming
from cmhash.index import HashIndex
from cmhash.index import mih


def uniform(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    return rng.integers(0, 256, (n, bits // 8), dtype=np.uint8)


def clustered(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    """Twenty centres, each bit flipped with probability 0.03: learned-code-like clumps with duplicates."""
    centres = rng.integers(0, 2, (20, bits), dtype=np.uint8)
    return np.packbits(centres[rng.integers(0, 20, n)] ^ (rng.random((n, bits)) < 0.03), axis=1)


def assert_matches_brute_force(index: HashIndex, db: np.ndarray, ids: np.ndarray, queries: np.ndarray,
                               ks: tuple[int, ...] = (1, 10, 100, 1000)) -> None:
    d = hamming(queries, db)
    order = np.argsort(d, axis=1, kind="stable")
    for k in ks:
        got_d, got_ids = index.search(queries, k)
        np.testing.assert_array_equal(got_d, np.take_along_axis(d, order[:, :k], axis=1), err_msg=f"k={k}")
        np.testing.assert_array_equal(got_ids, ids[order[:, :k]], err_msg=f"k={k}")
    radius = int(np.median(d.min(1))) + 2
    for (got_d, got_ids), row, row_order in zip(index.range_search(queries, radius), d, order):
        hit = row_order[row[row_order] <= radius]
        np.testing.assert_array_equal(got_ids, ids[hit])
        np.testing.assert_array_equal(got_d, row[hit])


@pytest.mark.parametrize("bits", [32, 64, 128])
@pytest.mark.parametrize("make", [uniform, clustered])
@pytest.mark.parametrize("long_substrings", [False, True])
def test_mih_equals_brute_force_through_adds_and_removals(bits, make, long_substrings):
    """long_substrings: the fewest tables (32-bit substrings: a 24-bit prefix table plus 8-bit suffixes)."""
    rng = np.random.default_rng(bits)
    db = make(rng, 6000, bits)
    ids = rng.permutation(10**6)[:6000].astype(np.int64)
    queries = np.concatenate([make(rng, 12, bits), db[rng.choice(6000, 8)]])  # some exact hits
    index = HashIndex(bits, "mih", tables=bits // 32 if long_substrings else None)
    index.add_with_ids(db[:5000], ids[:5000])  # into the tables
    index.add_with_ids(db[5000:], ids[5000:])  # stays in the delta (1,000 < 5,000 / 16 floor)
    assert index._backend.mih._n_main == 5000
    assert_matches_brute_force(index, db, ids, queries)

    gone = np.concatenate([ids[:4000:7], ids[5000::5]])  # tombstones in tables and delta
    assert index.remove_ids(gone) == len(gone)
    keep = ~np.isin(ids, gone)
    assert len(index) == keep.sum()
    assert_matches_brute_force(index, db[keep], ids[keep], queries)

    index.add_with_ids(db[np.isin(ids, gone)], ids[np.isin(ids, gone)])  # back, last in insertion order
    order = np.concatenate([np.nonzero(keep)[0], np.nonzero(~keep)[0]])
    assert_matches_brute_force(index, db[order], ids[order], queries, ks=(1, 100))


def test_compaction_and_given_table_counts():
    rng = np.random.default_rng(7)
    db, ids = clustered(rng, 8000, 64), np.arange(8000, dtype=np.int64)
    queries = clustered(rng, 10, 64)
    for tables in (2, 3, 4, 8):
        index = HashIndex(64, "mih", tables=tables)
        index.add_with_ids(db, ids)
        assert index.tables == tables
        index.remove_ids(ids[:3000])  # more than 1/8 dead: storage compacted
        assert index._backend.mih._dead == 0 and index._backend.mih._n == 5000
        assert_matches_brute_force(index, db[3000:], ids[3000:], queries, ks=(1, 50))


def test_default_table_count_follows_the_paper():
    """m = bits / log2(N), rounded, with substrings of at most 32 bits."""
    assert mih.table_count(64, 1_000_000) == 3
    assert mih.table_count(64, 100_000_000) == 2
    assert mih.table_count(128, 100_000_000) == 5
    assert mih.table_count(32, 10**9) == 1
    assert mih.table_count(128, 1000) == 13
    starts, sizes = mih.layout(64, 3)
    assert sizes.tolist() == [22, 21, 21] and starts.tolist() == [0, 22, 43]


def test_words_round_trip_for_odd_byte_counts():
    codes = np.random.default_rng(0).integers(0, 256, (5, 9), dtype=np.uint8)  # 72 bits: 2 words
    assert mih.to_words(codes).shape == (5, 2)
    np.testing.assert_array_equal(mih.from_words(mih.to_words(codes), 72), codes)


def test_big_buckets_are_read_run_by_run(monkeypatch):
    """A bucket over BIG_BUCKET entries is read through its index of low-bit runs (32-bit substrings:
    8 bits beyond the 24-bit prefix); the probes must then still find exactly the brute-force answer."""
    monkeypatch.setattr(mih, "BIG_BUCKET", 4)
    rng = np.random.default_rng(5)
    db = clustered(rng, 6000, 64)
    ids = rng.permutation(6000).astype(np.int64)
    queries = np.concatenate([clustered(rng, 12, 64), db[rng.choice(6000, 8)]])
    index = HashIndex(64, "mih", tables=2)
    index.add_with_ids(db, ids)
    backend = index._backend.mih
    assert len(backend._big) > 0
    stats = np.empty((len(queries), len(mih.STATS)), np.int64)
    backend.search(queries, 10, stats)
    assert (stats[:, mih.STATS.index("scanned")] == 0).sum() >= 5  # not all fall back to a scan
    assert_matches_brute_force(index, db, ids, queries)
    gone = ids[::9]
    index.remove_ids(gone)
    keep = ~np.isin(ids, gone)
    assert_matches_brute_force(index, db[keep], ids[keep], queries, ks=(1, 100))


@pytest.mark.parametrize("decision", ["scan", "probe"])
def test_scan_decision_either_way_gives_the_same_answer(decision):
    """The planner's choice (scan or keep probing) changes the cost only: force it each way (the planned work
    of the steps made enormous, or zero) on uniform and clustered codes with a delta and tombstones."""
    rng = np.random.default_rng(11)
    db = np.concatenate([uniform(rng, 3000, 64), clustered(rng, 3000, 64)])
    ids = rng.permutation(10**5)[:6000].astype(np.int64)
    queries = np.concatenate([uniform(rng, 10, 64), clustered(rng, 10, 64)])
    index = HashIndex(64, "mih")
    index.add_with_ids(db[:5500], ids[:5500])
    index.add_with_ids(db[5500:], ids[5500:])  # the delta
    gone = ids[::11]
    index.remove_ids(gone)  # tombstones, no compaction
    backend = index._backend.mih
    assert backend._dead == len(gone) and backend._n_main == 5500
    planned = backend._planned
    backend._planned = np.arange(len(planned)) * 1e15 if decision == "scan" else np.zeros_like(planned)
    stats = np.empty((len(queries), len(mih.STATS)), np.int64)
    backend.search(queries, 100, stats)
    chosen = stats[:, mih.STATS.index("scanned")]
    assert ((chosen == mih.SCANNED.index("predicted")).sum() >= 10) == (decision == "scan")
    keep = ~np.isin(ids, gone)
    assert_matches_brute_force(index, db[keep], ids[keep], queries)


def test_memory_rules():
    """Code copies within COPY_BYTES per item (all tables at 64 bits, table 0 only at 128); offsets within
    OFFSETS_PER_ITEM uint32 per item; at most MAX_LOW bits beyond a prefix."""
    assert mih.copy_count(64, 3) == 3 and mih.copy_count(64, 5) == 3 and mih.copy_count(128, 6) == 1
    assert mih.row_work(1_000_000, 128) == mih.ROW_COST[0] < mih.row_work(10_000_000, 128) == mih.ROW_COST[1]
    sizes = mih.layout(128, 6)[1]
    assert mih.prefix_bits(sizes, 1_000_000).tolist() == [20] * 6
    assert mih.prefix_bits(mih.layout(64, 3)[1], 1_000_000).tolist() == [21, 21, 21]
    assert mih.prefix_bits(mih.layout(64, 2)[1], 100_000_000).tolist() == [24, 24]
    assert mih.prefix_bits(mih.layout(64, 2)[1], 1000).tolist() == [24, 24]  # 32-bit substrings: 8 bits beyond
    rng = np.random.default_rng(3)
    index = mih.MultiIndex(128)
    index.add(uniform(rng, 20_000, 128), np.arange(20_000))
    assert index.tables == 9 and len(index._codes) == 1  # one code copy, 9 tables of row numbers
    # code + id + id order + alive, 4 bytes a table per item, offsets
    assert index.nbytes() / 20_000 < 16 + 8 + 4 + 1 + 9 * 4 + 4 * mih.OFFSETS_PER_ITEM + 1
