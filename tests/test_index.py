"""HashIndex against brute force (cmhash.codes.hamming + stable sort), on codes with many ties."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from cmhash.codes import hamming, unpack
from cmhash.data import DataError
from cmhash.index import MISSING_DISTANCE, MISSING_ID, HashIndex
from cmhash.index import hash_index as hash_index_module

KINDS = ["flat", "mih"]


def random_codes(n: int, bits: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, bits // 8), dtype=np.uint8)


def brute_knn(query: np.ndarray, db: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference: distance ascending, ties in insertion order, padded with -1 / MISSING_DISTANCE."""
    d = hamming(query, db)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    out_ids = np.full((len(query), k), MISSING_ID)
    out_d = np.full((len(query), k), MISSING_DISTANCE, dtype=np.int32)
    out_ids[:, :order.shape[1]] = ids[order]
    out_d[:, :order.shape[1]] = np.take_along_axis(d, order, axis=1)
    return out_ids, out_d


def brute_range(query: np.ndarray, db: np.ndarray, ids: np.ndarray, radius: int) -> list:
    d = hamming(query, db)
    result = []
    for row in d:
        hit = np.nonzero(row <= radius)[0]
        hit = hit[np.argsort(row[hit], kind="stable")]
        result.append((ids[hit], row[hit]))
    return result


def assert_same_ranges(got: list, want: list) -> None:
    assert len(got) == len(want)
    for (gi, gd), (wi, wd) in zip(got, want):
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
    index.add(ids, db)
    got_ids, got_d = index.search(q, k)
    want_ids, want_d = brute_knn(q, db, ids, k)
    np.testing.assert_array_equal(got_d, want_d)
    np.testing.assert_array_equal(got_ids, want_ids)
    assert got_ids.dtype == np.int64 and got_d.dtype == np.int32


@pytest.mark.parametrize("kind,mih_bits", [("flat", None), ("mih", None), ("mih", 8), ("mih", 4)])
@pytest.mark.parametrize("radius", [0, 1, 2, 3, 5])
def test_range_search_equals_brute_force(data, kind, mih_bits, radius):
    db, ids, q = data
    index = HashIndex(16, kind, mih_bits=mih_bits)
    index.add(ids, db)
    assert_same_ranges(index.range_search(q, radius), brute_range(q, db, ids, radius))


@pytest.mark.parametrize("kind", KINDS)
def test_64_bit_codes_accept_pm1_and_packed(kind):
    db = random_codes(3000, 64, seed=3)
    q = random_codes(10, 64, seed=4)
    ids = np.arange(3000, dtype=np.int64) * 5
    index = HashIndex(64, kind)
    index.add(ids[:1500], unpack(db[:1500], 64))  # ±1 int8
    index.add(ids[1500:], db[1500:])  # packed uint8
    want_ids, want_d = brute_knn(q, db, ids, 50)
    for query in (q, unpack(q, 64)):
        got_ids, got_d = index.search(query, 50)
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
    index.add(ids, db)
    gone = ids[::3]
    assert index.remove(np.concatenate([gone, [10**9]])) == len(gone)  # unknown id ignored
    assert index.remove(gone) == 0
    keep = np.ones(len(ids), bool)
    keep[::3] = False
    assert len(index) == index.ntotal == keep.sum()
    want_ids, want_d = brute_knn(q, db[keep], ids[keep], 40)
    got_ids, got_d = index.search(q, 40)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_d, want_d)
    assert_same_ranges(index.range_search(q, 2), brute_range(q, db[keep], ids[keep], 2))
    index.add(gone, db[::3])  # removed ids may come back, now last in insertion order
    order = np.concatenate([np.nonzero(keep)[0], np.nonzero(~keep)[0]])
    np.testing.assert_array_equal(index.search(q, 40)[0], brute_knn(q, db[order], ids[order], 40)[0])


def test_empty_index_pads_results():
    index = HashIndex(32, "mih")
    got_ids, got_d = index.search(random_codes(3, 32, seed=5), 4)
    assert (got_ids == MISSING_ID).all() and (got_d == MISSING_DISTANCE).all()
    assert [len(i) for i, _ in index.range_search(random_codes(3, 32, seed=5), 3)] == [0, 0, 0]


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_ids_are_rejected_whole(data, kind):
    db, ids, _ = data
    index = HashIndex(16, kind)
    index.add(ids[:10], db[:10])
    with pytest.raises(ValueError, match=f"id {ids[5]} is already in the index"):
        index.add(ids[5:20], db[5:20])
    assert len(index) == 10  # nothing of the failed batch went in
    with pytest.raises(ValueError, match="repeated"):
        index.add(np.array([7, 7]), db[:2])


@pytest.mark.parametrize("bad,match", [
    (dict(bits=12), "multiple of 8"),
    (dict(bits=16, kind="ivf"), "kind must be one of"),
    (dict(bits=16, kind="mih", mih_bits=5), "mih_bits must divide"),
    (dict(bits=16, metadata={"x": object()}), "JSON-serialisable"),
])
def test_bad_construction(bad, match):
    with pytest.raises(ValueError, match=match):
        HashIndex(**bad)


def test_bad_codes_ids_and_arguments():
    index = HashIndex(16)
    good = random_codes(2, 16, seed=6)
    cases = [
        (lambda: index.add([1, 2], good[:, :1]), "packed uint8 of shape \\(N, 2\\)"),
        (lambda: index.add([1, 2], np.zeros((2, 16), np.int8)), "only -1 and \\+1"),
        (lambda: index.add([1, 2], good[0]), "must be 2-D"),
        (lambda: index.add([1], good), "one id per code"),
        (lambda: index.add([1.5, 2.5], good), "must be integers"),
        (lambda: index.add([-1, 2], good), ">= 0"),
        (lambda: index.search(good, 0), "k must be an integer >= 1"),
        (lambda: index.search(good.astype(np.int64), 1), "queries"),
        (lambda: index.range_search(good, 17), "radius must be an integer in \\[0, 16\\]"),
        (lambda: index.remove(np.array([[1]])), "must be 1-D"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(tmp_path, data, kind):
    db, ids, q = data
    index = HashIndex(16, kind, {"model": "dcmh@abc", "method": "dcmh"})
    index.add(ids, db)
    index.remove(ids[:7])
    path = tmp_path / "codes.idx"
    index.save(path)
    loaded = HashIndex.load(path, expect_bits=16, expect_model="dcmh@abc")
    assert (loaded.kind, loaded.bits, loaded.metadata, len(loaded)) == (kind, 16, index.metadata, len(index))
    for a, b in zip(loaded.search(q, 25), index.search(q, 25)):
        np.testing.assert_array_equal(a, b)
    assert_same_ranges(loaded.range_search(q, 3), index.range_search(q, 3))
    loaded.add([10**7], db[:1])  # the loaded index stays usable
    assert len(loaded) == len(index) + 1


def test_save_is_atomic_under_a_crash(tmp_path, data, monkeypatch):
    db, ids, _ = data
    path = tmp_path / "codes.idx"
    old = HashIndex(16, metadata={"model": "old"})
    old.add(ids[:5], db[:5])
    old.save(path)
    new = HashIndex(16, metadata={"model": "new"})
    new.add(ids, db)

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
    index.add(ids, db)
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

    def rewrite(header_patch: dict | None = None, payload: np.ndarray | None = None) -> None:
        import json
        with np.load(path) as z:
            header, stored = json.loads(str(z["header"])), z["payload"]
        header.update(header_patch or {})
        with open(tmp_path / "patched.idx", "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)),
                     payload=stored if payload is None else payload)

    rewrite({"version": 99})
    with pytest.raises(DataError, match="version 99 is not supported"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite({"format": "something-else"})
    with pytest.raises(DataError, match="not a cmhash index file"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite(payload=np.frombuffer(b"garbage!" * 8, np.uint8))
    with pytest.raises(DataError, match="payload"):
        HashIndex.load(tmp_path / "patched.idx")
    rewrite({"bits": 32})  # header and payload disagree
    with pytest.raises(DataError, match="expected an id-mapped 32-bit index"):
        HashIndex.load(tmp_path / "patched.idx")
    assert zipfile.is_zipfile(path)  # the documented container
