"""HashIndex against brute force (cmhash.codes.hamming + stable sort), on codes with many ties."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cmhash.codes import hamming, unpack
from cmhash.data import DataError
from cmhash.index import HashIndex
from cmhash.index import hash_index as hash_index_module

KINDS = ["flat", "mih"]


def random_codes(n: int, bits: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, bits // 8), dtype=np.uint8)


def brute_knn(query: np.ndarray, db: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference (distances, ids): distance ascending, ties in insertion order, min(k, N) columns."""
    d = hamming(query, db)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), ids[order]


def brute_range(query: np.ndarray, db: np.ndarray, ids: np.ndarray, radius: int) -> list:
    d = hamming(query, db)
    result = []
    for row in d:
        hit = np.nonzero(row <= radius)[0]
        hit = hit[np.argsort(row[hit], kind="stable")]
        result.append((row[hit], ids[hit]))
    return result


def assert_same_ranges(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (gd, gi), (wd, wi) in zip(got, want):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_array_equal(gd, wd)


@pytest.fixture
def data():
    """16-bit codes: 4,000 items over 65,536 values, so distances tie heavily."""
    db = random_codes(4000, 16, seed=0)
    ids = np.random.default_rng(1).permutation(100_000)[:4000].astype(np.int64)  # not sorted
    return db, ids, random_codes(40, 16, seed=2)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("k", [1, 17, 300, 5000])
def test_search_equals_brute_force(data, kind, k):
    db, ids, q = data
    index = HashIndex(16, kind)
    index.add_with_ids(db, ids)
    got_d, got_ids = index.search(q, k)
    want_d, want_ids = brute_knn(q, db, ids, k)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(got_ids, want_ids)
    assert got_ids.dtype == np.int64 and got_d.dtype == np.int32


@pytest.mark.parametrize("kind,tables", [("flat", None), ("mih", None), ("mih", 2), ("mih", 4)])
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5])
def test_range_search_equals_brute_force(data, kind, tables, radius):
    db, ids, q = data
    index = HashIndex(16, kind, tables=tables)
    index.add_with_ids(db, ids)
    assert_same_ranges(index.range_search(q, radius), brute_range(q, db, ids, radius))


@pytest.mark.parametrize("kind", KINDS)
def test_64_bit_codes_accept_pm1_and_packed(kind):
    db = random_codes(3000, 64, seed=3)
    q = random_codes(10, 64, seed=4)
    ids = np.arange(3000, dtype=np.int64) * 5
    index = HashIndex(64, kind)
    index.add_with_ids(unpack(db[:1500], 64), ids[:1500])  # ±1 int8
    index.add_with_ids(db[1500:], ids[1500:])  # packed uint8
    want_d, want_ids = brute_knn(q, db, ids, 50)
    for query in (q, unpack(q, 64)):
        got_d, got_ids = index.search(query, 50)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_array_equal(got_d, want_d)
    # Queries near items, so small radii have hits: flip one bit of some stored codes.
    near = db[::300].copy()
    near[:, 0] ^= 1
    for radius in (0, 1, 8, 20):
        assert_same_ranges(index.range_search(near, radius), brute_range(near, db, ids, radius))


@pytest.mark.parametrize("kind", KINDS)
def test_remove_keeps_insertion_order_and_counts(data, kind):
    db, ids, q = data
    index = HashIndex(16, kind)
    index.add_with_ids(db, ids)
    gone = ids[::3]
    assert index.remove_ids(np.concatenate([gone, [10**9]])) == len(gone)  # unknown id ignored
    assert index.remove_ids(gone) == 0
    keep = np.ones(len(ids), bool)
    keep[::3] = False
    assert len(index) == index.ntotal == keep.sum()
    want_d, want_ids = brute_knn(q, db[keep], ids[keep], 40)
    got_d, got_ids = index.search(q, 40)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_d, want_d)
    assert_same_ranges(index.range_search(q, 2), brute_range(q, db[keep], ids[keep], 2))
    index.add_with_ids(db[::3], gone)  # removed ids may come back, now last in insertion order
    order = np.concatenate([np.nonzero(keep)[0], np.nonzero(~keep)[0]])
    np.testing.assert_array_equal(index.search(q, 40)[1], brute_knn(q, db[order], ids[order], 40)[1])


@pytest.mark.parametrize("kind", KINDS)
def test_k_is_capped_at_the_index_size(data, kind):
    """k = 10**9 returns every item once (no (Q, 10**9) padding: that cost 20 GB and 189 s)."""
    db, ids, q = data
    index = HashIndex(16, kind)
    assert [a.shape for a in index.search(q[:3], 4)] == [(3, 0), (3, 0)]
    assert [len(i) for _, i in index.range_search(q[:3], 3)] == [0, 0, 0]
    index.add_with_ids(db[:500], ids[:500])
    got_d, got_ids = index.search(q, 10**9)
    assert got_ids.shape == (len(q), 500)
    want_d, want_ids = brute_knn(q, db[:500], ids[:500], 500)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_d, want_d)


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_ids_are_rejected_whole(data, kind):
    db, ids, _ = data
    index = HashIndex(16, kind)
    index.add_with_ids(db[:10], ids[:10])
    with pytest.raises(ValueError, match=f"id {ids[5]} is already in the index"):
        index.add_with_ids(db[5:20], ids[5:20])
    assert len(index) == 10  # nothing of the failed batch went in
    with pytest.raises(ValueError, match="repeated"):
        index.add_with_ids(db[:2], np.array([7, 7]))


@pytest.mark.parametrize("bad,match", [
    (dict(bits=12), "multiple of 8"),
    (dict(bits=16, kind="ivf"), "kind must be one of"),
    (dict(bits=64, kind="mih", tables=1), "tables must be an integer in \\[2, 64\\]"),
    (dict(bits=16, kind="flat", tables=2), "'mih' kind only"),
    (dict(bits=16, metadata={"x": object()}), "JSON-serialisable"),
])
def test_bad_construction(bad, match):
    with pytest.raises(ValueError, match=match):
        HashIndex(**bad)


def test_bad_codes_ids_and_arguments():
    index = HashIndex(16)
    good = random_codes(2, 16, seed=6)
    cases = [
        (lambda: index.add_with_ids(good[:, :1], [1, 2]), "packed uint8 of shape \\(N, 2\\)"),
        (lambda: index.add_with_ids(np.zeros((2, 16), np.int8), [1, 2]), "only -1 and \\+1"),
        (lambda: index.add_with_ids(good[0], [1, 2]), "must be 2-D"),
        (lambda: index.add_with_ids(good, [1]), "one id per code"),
        (lambda: index.add_with_ids(good, [1.5, 2.5]), "must be integers"),
        (lambda: index.add_with_ids(good, [-1, 2]), ">= 0"),
        (lambda: index.search(good, 0), "k must be an integer >= 1"),
        (lambda: index.search(good.astype(np.int64), 1), "queries"),
        (lambda: index.range_search(good, 17), "radius must be an integer in \\[0, 16\\]"),
        (lambda: index.remove_ids(np.array([[1]])), "must be 1-D"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, data, kind):
    db, ids, q = data
    index = HashIndex(16, kind, {"model": "dcmh@abc", "method": "dcmh"})
    index.add_with_ids(db, ids)
    index.remove_ids(ids[:7])
    path = tmp_path / "codes.idx"
    index.save(path)
    loaded = HashIndex.load(path, expect_bits=16, expect_model="dcmh@abc")
    assert (loaded.kind, loaded.bits, loaded.metadata, len(loaded)) == (kind, 16, index.metadata, len(index))
    for a, b in zip(loaded.search(q, 25), index.search(q, 25)):
        np.testing.assert_array_equal(a, b)
    assert_same_ranges(loaded.range_search(q, 3), index.range_search(q, 3))
    loaded.add_with_ids(db[:1], [10**7])  # the loaded index stays usable
    assert len(loaded) == len(index) + 1


def test_save_is_atomic_under_a_crash(tmp_path, data, monkeypatch):
    db, ids, _ = data
    path = tmp_path / "codes.idx"
    old = HashIndex(16, metadata={"model": "old"})
    old.add_with_ids(db[:5], ids[:5])
    old.save(path)
    new = HashIndex(16, metadata={"model": "new"})
    new.add_with_ids(db, ids)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(hash_index_module.np, "savez", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()
    survivor = HashIndex.load(path, expect_model="old")
    assert len(survivor) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["codes.idx"]  # no temporary left behind


def test_load_mismatches_and_corruption(tmp_path, data):
    db, ids, _ = data
    path = tmp_path / "codes.idx"
    index = HashIndex(16, metadata={"model": "m1"})
    index.add_with_ids(db, ids)
    index.save(path)
    with pytest.raises(DataError, match="16-bit codes, expected 64"):
        HashIndex.load(path, expect_bits=64)
    with pytest.raises(DataError, match="built for model 'm1', expected 'm2'"):
        HashIndex.load(path, expect_model="m2")

    raw = path.read_bytes()
    truncated = tmp_path / "truncated.idx"
    truncated.write_bytes(raw[: len(raw) // 2])
    flipped = tmp_path / "flipped.idx"
    flipped.write_bytes(raw[:-2000] + bytes(b ^ 0xFF for b in raw[-2000:-1000]) + raw[-1000:])
    text = tmp_path / "text.idx"
    text.write_text("hello")
    for bad in (truncated, flipped, text):
        with pytest.raises(DataError, match=str(bad.name)):
            HashIndex.load(bad)
    empty = tmp_path / "empty.idx"
    empty.touch()
    with pytest.raises(DataError, match="index file is empty \\(0 bytes\\)"):
        HashIndex.load(empty)
        with pytest.raises(DataError, match=str(bad.name)):
            HashIndex.load(bad)

    def rewrite(header_patch: dict | None = None, **arrays: np.ndarray) -> None:
        import json
        with np.load(path) as z:
            header, stored = json.loads(str(z["header"])), {"codes": z["codes"], "ids": z["ids"]}
        header.update(header_patch or {})
        with open(tmp_path / "patched.idx", "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **{**stored, **arrays})

    rewrite({"version": 99})
    with pytest.raises(DataError, match="version 99 is not supported"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite({"format": "something-else"})
    with pytest.raises(DataError, match="not a cmhash index file"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite(codes=np.frombuffer(b"garbage!" * 8, np.uint8))
    with pytest.raises(DataError, match="corrupt index contents"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite({"bits": 32})  # header and codes disagree
    with pytest.raises(DataError, match="packed uint8 of shape \\(N, 4\\)"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite(ids=np.zeros(len(ids), np.int64))
    with pytest.raises(DataError, match="repeated"):
        HashIndex.load(tmp_path / "patched.idx")
    assert zipfile.is_zipfile(path)  # the documented container
