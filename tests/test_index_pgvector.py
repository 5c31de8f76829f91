"""PgVectorStore against a real embedded PostgreSQL + pgvector server (no mocks)."""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.codes import hamming, unpack
from cmhash.index import MISSING_DISTANCE, MISSING_ID, HashIndex, PgVectorStore

pytestmark = pytest.mark.postgres

BITS = 32


@pytest.fixture
def store(pg_server, request):
    table = "t_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
    with PgVectorStore(pg_server.get_uri(), table, bits=BITS) as s:
        yield s
        s._conn.execute(f"DROP TABLE {table}")


@pytest.fixture
def data():
    """32-bit codes made from few distinct bytes so Hamming distances tie a lot."""
    rng = np.random.default_rng(0)
    db = rng.choice(np.array([0, 1, 3, 255], np.uint8), size=(600, BITS // 8))
    ids = rng.permutation(10_000)[:600].astype(np.int64)
    return db, ids, rng.choice(np.array([0, 1, 7, 255], np.uint8), size=(12, BITS // 8))


def reference(db, ids) -> HashIndex:
    index = HashIndex(BITS)
    index.add_with_ids(db, ids)
    return index


def test_exact_search_and_range_equal_hash_index(store, data):
    db, ids, q = data
    store.add_with_ids(db[:300], ids[:300], modality="image")
    store.add_with_ids(unpack(db[300:], BITS), ids[300:], modality="image")  # ±1 codes too
    store.add_with_ids(db[::-1], ids, modality="text")  # another modality must not leak in
    want = reference(db, ids)
    for k in (1, 25, 700):
        got_d, got_ids = store.search(q, k, modality="image")
        want_d, want_ids = want.search(q, k)  # HashIndex caps k at its size; the store pads
        np.testing.assert_array_equal(got_d[:, :600], want_d)
        np.testing.assert_array_equal(got_ids[:, :600], want_ids)
        assert (got_ids[:, 600:] == MISSING_ID).all() and (got_d[:, 600:] == MISSING_DISTANCE).all()
    for radius in (0, 4, 9):
        for (gd, gi), (wd, wi) in zip(store.range_search(q, radius, modality="image"), want.range_search(q, radius)):
            np.testing.assert_array_equal(gi, wi)
            np.testing.assert_array_equal(gd, wd)
    assert (store.count("image"), store.count("text"), len(store)) == (600, 600, 1200)


def test_delete_and_duplicates(store, data):
    db, ids, q = data
    store.add_with_ids(db, ids, modality="image", metadata=[{"row": i} for i in range(len(ids))])
    assert store.remove_ids(ids[:100], modality="text") == 0
    assert store.remove_ids(np.concatenate([ids[:100], [10**9]]), modality="image") == 100
    got = store.search(q, 50, modality="image")
    want = reference(db[100:], ids[100:]).search(q, 50)
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match=rf"\(image, {ids[150]}\) already exists"):
        store.add_with_ids(db[150:160], ids[150:160], modality="image")
    assert store.count("image") == 500  # the failed batch added nothing
    (meta,) = store._conn.execute(f"SELECT metadata FROM {store.table} WHERE id = %s", (int(ids[200]),)).fetchone()
    assert meta == {"row": 200}
    with pytest.raises(ValueError, match="one entry per code"):
        store.add_with_ids(db[:1], [1], modality="x", metadata=[])


def test_table_bit_length_is_checked(store, pg_server):
    with pytest.raises(ValueError, match=rf"bit\({BITS}\), not bit\(64\)"):
        PgVectorStore(pg_server.get_uri(), store.table, bits=64)
    with pytest.raises(ValueError, match="lower-case SQL identifier"):
        PgVectorStore(pg_server.get_uri(), "Codes; DROP", bits=BITS)


def test_hnsw_search_is_plausible(store):
    rng = np.random.default_rng(1)
    db = rng.integers(0, 256, (2000, BITS // 8), dtype=np.uint8)
    store.add_with_ids(db, np.arange(2000), modality="image")
    store.add_with_ids(db[:50], np.arange(50), modality="text")
    store.build_hnsw()
    q = db[:20].copy()
    q[:, 0] ^= 0b101  # two bits away from stored item i
    dist, ids = store.search(q, 10, modality="image", exact=False, ef_search=64)
    true_d = hamming(q, db)
    assert (ids >= 0).all() and (np.diff(dist, axis=1) >= 0).all()
    np.testing.assert_array_equal(dist, np.take_along_axis(true_d, ids, axis=1))  # distances are real
    assert (ids[:, 0] == np.arange(20)).mean() >= 0.9  # the planted neighbour is found first
    exact_kth = np.sort(true_d, axis=1)[:, 9]
    assert (dist <= exact_kth[:, None]).mean() >= 0.8  # recall@10, tie-aware


def test_data_survive_a_server_restart(pg_server, data):
    db, ids, q = data
    with PgVectorStore(pg_server.get_uri(), "t_restart", bits=BITS) as s:
        s.add_with_ids(db, ids, modality="image")
        before = s.search(q, 30, modality="image")
    pg_server.stop()
    pg_server.start()
    with PgVectorStore(pg_server.get_uri(), "t_restart", bits=BITS) as s:
        after = s.search(q, 30, modality="image")
        assert s.count("image") == len(ids)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)
