"""cmhash.metrics against the slow reference (tests/reference_metrics.py) and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

import reference_metrics as ref
from cmhash.data import CrossModalDataset
from cmhash.metrics import (
    evaluate_model,
    evaluate_model_metrics,
    mean_average_precision,
    per_query_metrics,
    ranking_metrics,
    summarize,
)
from cmhash.metrics.plots import plot_precision_at_k, plot_pr_curves


def random_case(seed: int, q: int, n: int, bits: int, classes: int, density: float = 0.25):
    """Codes with many ties (few bits) and labels where some queries and items have no label at all."""
    rng = np.random.default_rng(seed)
    q_codes = rng.choice(np.array([-1, 1], dtype=np.int8), size=(q, bits))
    d_codes = rng.choice(np.array([-1, 1], dtype=np.int8), size=(n, bits))
    q_labels = (rng.random((q, classes)) < density).astype(np.uint8)
    d_labels = (rng.random((n, classes)) < density).astype(np.uint8)
    q_labels[: max(1, q // 6)] = 0
    d_labels[rng.random(n) < 0.1] = 0
    return q_codes, d_codes, q_labels, d_labels


def assert_matches_reference(pq, reference: list[dict]) -> None:
    """Every per-query value equal to the reference's; None there is NaN here."""
    assert np.array_equal(pq.num_relevant, [r["num_relevant"] for r in reference])
    for key in ("ap", "ap_at", "precision_at", "recall_at", "ndcg_at", "radius_precision", "radius_recall"):
        ours = np.asarray(getattr(pq, key), dtype=float).reshape(len(reference), -1)
        np.testing.assert_allclose(ours, ref.values(reference, key), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=key)


CASES = [  # seed, queries, items, bits, classes, chunk_size
    (0, 37, 101, 8, 5, 5),      # 9 distances for 101 items: ties everywhere; chunks of 5 do not divide 37
    (1, 23, 77, 13, 3, None),   # bits not a multiple of 8
    (2, 19, 64, 16, 7, 1),      # one query per chunk
    (3, 11, 90, 70, 70, 4),     # two 64-bit words of codes and of labels
    (4, 5, 40, 300, 260, 2),    # counts above 255: uint16 distances and label counts
]


@pytest.mark.parametrize("seed,q,n,bits,classes,chunk", CASES)
def test_every_metric_matches_reference(seed, q, n, bits, classes, chunk):
    q_codes, d_codes, q_labels, d_labels = random_case(seed, q, n, bits, classes)
    ks, ndcg_ks = (1, 3, 10, n), (1, 5, n)
    pq = per_query_metrics(q_codes, d_codes, q_labels, d_labels, ks=ks, ndcg_ks=ndcg_ks, chunk_size=chunk)
    reference = ref.per_query(q_codes, d_codes, q_labels, d_labels, ks, ndcg_ks)
    assert_matches_reference(pq, reference)
    for empty in ("skip", "zero"):
        ours = summarize(pq, empty=empty)
        want = ref.summary(reference, ks, ndcg_ks, empty=empty)
        row = ours.row()
        for key, value in want.items():
            if key.startswith("pr_"):
                got = ours.pr_precision if key == "pr_precision" else ours.pr_recall
                np.testing.assert_allclose(got, np.array(value, dtype=float), rtol=1e-12, equal_nan=True)
            else:
                assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-12), (empty, key)


def test_map_shortcut_and_topk_match_reference():
    q_codes, d_codes, q_labels, d_labels = random_case(7, 29, 83, 12, 4)
    reference = ref.per_query(q_codes, d_codes, q_labels, d_labels, ks=(20,))
    for empty in ("skip", "zero"):
        want = ref.summary(reference, ks=(20,), empty=empty)
        assert mean_average_precision(q_codes, d_codes, q_labels, d_labels, empty=empty) == \
            pytest.approx(want["mAP"], rel=1e-12)
        assert mean_average_precision(q_codes, d_codes, q_labels, d_labels, topk=20, empty=empty) == \
            pytest.approx(want["mAP@20"], rel=1e-12)
        assert ref.mean_average_precision(q_codes, d_codes, q_labels, d_labels, empty=empty) == \
            pytest.approx(want["mAP"], rel=1e-12)


# ---- hand-computed --------------------------------------------------------------------------
def codes_at_distances(distances: list[int], bits: int) -> tuple[np.ndarray, np.ndarray]:
    """A query of all +1 and database codes with the first ``d`` bits flipped."""
    query = np.ones((1, bits), dtype=np.int8)
    db = np.ones((len(distances), bits), dtype=np.int8)
    for row, d in enumerate(distances):
        db[row, :d] = -1
    return query, db


def test_hand_computed_case():
    # distances 1,0,1,2,0 -> ranked items 1,4,0,2,3; shared labels 1,0,2,1,0 -> ranked grades 0,0,1,2,1
    query, db = codes_at_distances([1, 0, 1, 2, 0], bits=4)
    q_labels = np.array([[1, 1, 0]], dtype=np.uint8)
    d_labels = np.array([[1, 0, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0], [0, 0, 1]], dtype=np.uint8)
    m = ranking_metrics(query, db, q_labels, d_labels, ks=(2, 4), ndcg_ks=(3,))
    assert m.map == pytest.approx((1 / 3 + 2 / 4 + 3 / 5) / 3)
    assert m.map_at == pytest.approx({2: 0.0, 4: (1 / 3 + 2 / 4) / 2})
    assert m.precision_at == pytest.approx({2: 0.0, 4: 0.5})
    assert m.recall_at == pytest.approx({2: 0.0, 4: 2 / 3})
    ideal = 3 + 1 / math.log2(3) + 1 / 2           # grades 2, 1, 1
    assert m.ndcg_at[3] == pytest.approx((1 / 2) / ideal)  # grade 1 at rank 3
    np.testing.assert_allclose(m.pr_precision, [0, 2 / 4, 3 / 5, 3 / 5, 3 / 5])
    np.testing.assert_allclose(m.pr_recall, [0, 2 / 3, 1, 1, 1])
    assert m.precision_within_radius == pytest.approx(3 / 5)


def test_ties_are_broken_by_database_order():
    query, db = codes_at_distances([0, 0, 0, 0], bits=6)   # all tied
    d_labels = np.array([[0], [1], [0], [1]], dtype=np.uint8)
    ap = mean_average_precision(query, db, np.array([[1]], dtype=np.uint8), d_labels)
    assert ap == pytest.approx((1 / 2 + 2 / 4) / 2)         # index order; reversed order would give 5/6


def test_empty_queries_rule_and_radius_with_nothing_retrieved():
    query = np.array([[1, 1, 1], [1, 1, 1]], dtype=np.int8)
    _, db = codes_at_distances([0, 3, 3], bits=3)
    q_labels = np.array([[1, 0], [0, 0]], dtype=np.uint8)  # second query has no label: nothing relevant
    d_labels = np.array([[0, 1], [1, 0], [1, 1]], dtype=np.uint8)
    ap = (1 / 2 + 2 / 3) / 2
    skip = ranking_metrics(query, db, q_labels, d_labels, ks=(1,), ndcg_ks=(3,), empty="skip")
    zero = ranking_metrics(query, db, q_labels, d_labels, ks=(1,), ndcg_ks=(3,), empty="zero")
    assert (skip.num_queries, skip.num_empty_queries, zero.num_queries) == (1, 1, 2)
    assert skip.map == pytest.approx(ap) and zero.map == pytest.approx(ap / 2)
    # radius 0 retrieves the irrelevant item 0 only; radii 1 and 2 retrieve the same; radius 3 all
    np.testing.assert_allclose(skip.pr_precision, [0, 0, 0, 2 / 3])
    with pytest.raises(ValueError, match="no query has a relevant"):
        mean_average_precision(query[1:], db, q_labels[1:], d_labels)


def test_radius_retrieving_nothing_is_skipped_for_the_curve_and_zero_for_p_at_r2():
    query = np.ones((2, 4), dtype=np.int8)
    _, db = codes_at_distances([4, 4], bits=4)               # nothing within radius 0..3
    query[1, 0] = -1                                         # second query: items at distance 3
    labels = np.ones((2, 1), dtype=np.uint8)
    m = ranking_metrics(query, db, labels, labels, ks=(1,), ndcg_ks=(1,))
    np.testing.assert_allclose(m.pr_precision, [np.nan, np.nan, np.nan, 1.0, 1.0])
    assert m.precision_within_radius == 0.0


def test_every_query_is_covered_whatever_the_chunk_size():
    q_codes, d_codes, q_labels, d_labels = random_case(11, 10, 31, 8, 3)
    q_labels[:] = 0
    q_labels[-1, 0] = 1                                       # only the very last query counts under "skip"
    d_labels[0, 0] = 1
    results = [per_query_metrics(q_codes, d_codes, q_labels, d_labels, ks=(5,), ndcg_ks=(5,), chunk_size=c)
               for c in (1, 3, 4, 10, 64)]
    for pq in results[1:]:
        for name in ("num_relevant", "ap", "ap_at", "ndcg_at", "radius_precision"):
            np.testing.assert_array_equal(getattr(pq, name), getattr(results[0], name))
    only = results[0]
    assert len(only.ap) == 10 and summarize(only).num_queries == 1
    assert summarize(only).map == pytest.approx(only.ap[-1])


def test_invariants_at_full_depth():
    q_codes, d_codes, q_labels, d_labels = random_case(5, 15, 50, 10, 4)
    m = ranking_metrics(q_codes, d_codes, q_labels, d_labels, ks=(50,), ndcg_ks=(50,))
    assert m.map_at[50] == pytest.approx(m.map)               # mAP@N is mAP
    assert m.recall_at[50] == pytest.approx(1.0)
    assert m.pr_recall[-1] == pytest.approx(1.0)
    assert m.pr_precision[-1] == pytest.approx(m.precision_at[50])
    assert np.all(np.diff(m.pr_recall) >= 0)


@pytest.mark.parametrize("change,match", [
    (lambda a: (a[0] * 0, *a[1:]), "only -1/\\+1"),
    (lambda a: (a[0][:, :-1], *a[1:]), "code lengths differ"),
    (lambda a: (*a[:3], a[3][:, :-1]), "label counts differ"),
    (lambda a: (*a[:3], a[3] * 2), "only 0/1"),
    (lambda a: (a[0], a[1][:0], a[2], a[3][:0]), "non-empty"),
])
def test_bad_input_is_rejected(change, match):
    args = random_case(0, 4, 9, 8, 3)
    with pytest.raises(ValueError, match=match):
        mean_average_precision(*change(args))


def test_bad_options_are_rejected():
    args = random_case(0, 4, 9, 8, 3)
    with pytest.raises(ValueError, match="outside 1..9"):
        ranking_metrics(*args, ks=(10,))
    with pytest.raises(ValueError, match="empty must be"):
        mean_average_precision(*args, empty="drop")
    with pytest.raises(ValueError, match="chunk_size"):
        mean_average_precision(*args, chunk_size=0)


# ---- model evaluation and plots ---------------------------------------------------------------
class SignProjection:
    """A fixed model: each modality projects its features with its own matrix and takes the sign."""

    def __init__(self, dims: tuple[int, int], bits: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = {"image": rng.standard_normal((dims[0], bits)), "text": rng.standard_normal((dims[1], bits))}

    def encode_image(self, x: np.ndarray) -> np.ndarray:
        return np.where(x @ self.w["image"] >= 0, 1, -1).astype(np.int8)

    def encode_text(self, x: np.ndarray) -> np.ndarray:
        return np.where(x @ self.w["text"] >= 0, 1, -1).astype(np.int8)


def tiny_split(seed: int, n: int) -> CrossModalDataset:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 4)) < 0.4).astype(np.uint8)
    return CrossModalDataset(rng.standard_normal((n, 6)) + labels @ rng.standard_normal((4, 6)),
                             rng.standard_normal((n, 5)), labels)


def test_evaluate_model_pairs_the_right_modalities():
    model, query, database = SignProjection((6, 5), bits=12), tiny_split(1, 9), tiny_split(2, 40)
    scores = evaluate_model(model, query, database, directions=("i2t", "t2i", "i2i", "t2t"))
    codes = {"image": (model.encode_image(query.image), model.encode_image(database.image)),
             "text": (model.encode_text(query.text), model.encode_text(database.text))}
    for direction, (qm, dm) in {"i2t": ("image", "text"), "t2i": ("text", "image"),
                                "i2i": ("image", "image"), "t2t": ("text", "text")}.items():
        want = mean_average_precision(codes[qm][0], codes[dm][1], query.labels, database.labels)
        assert scores[direction] == want
    assert len(set(scores.values())) == 4                     # the pairings really differ
    full = evaluate_model_metrics(model, query, database, ks=(5, 40), ndcg_ks=(5,))
    assert set(full) == {"i2t", "t2i"} and full["i2t"].map == scores["i2t"]
    assert evaluate_model(model, query, database, topk=5)["t2i"] == full["t2i"].map_at[5]
    with pytest.raises(ValueError, match="directions"):
        evaluate_model(model, query, database, directions=("i2x",))


def test_plots_write_png_files(tmp_path):
    model = SignProjection((6, 5), bits=8)
    results = evaluate_model_metrics(model, tiny_split(1, 9), tiny_split(2, 40), ks=(1, 5, 20), ndcg_ks=(5,))
    for plot, name in ((plot_pr_curves, "pr.png"), (plot_precision_at_k, "p_at_k.png")):
        out = plot(results, tmp_path / "figs" / name)
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["p_at_k.png", "pr.png"]
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_pr_curves({}, tmp_path / "empty.png")


@pytest.mark.parametrize("seed,q,n,bits,classes", [(0, 37, 101, 8, 5), (1, 20, 300, 128, 70), (2, 9, 64, 16, 3),
                                                  (3, 6, 50, 300, 3)])  # distances above 255: uint16
def test_counting_path_matches_reference(seed, q, n, bits, classes):
    """Without NDCG, metrics come from per-distance counts (no sort): same values as the reference,
    also for codes and label sets longer than one 64-bit word."""
    case = random_case(seed, q, n, bits, classes)
    ks = (1, 5, n)
    pq = per_query_metrics(*case, ks=ks)
    reference = ref.per_query(*case, ks=ks)
    assert pq.ndcg_at.shape == (q, 0)
    assert np.array_equal(pq.num_relevant, [r["num_relevant"] for r in reference])
    for key in ("ap", "ap_at", "precision_at", "recall_at", "radius_precision", "radius_recall"):
        np.testing.assert_allclose(np.asarray(getattr(pq, key), dtype=float).reshape(q, -1),
                                   ref.values(reference, key), rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=key)


def test_counting_top_k_cut_inside_a_tie_group():
    # distances 1,0,1,1,0,1 -> ranked items 1,4 (d=0) then 0,2,3,5 (d=1); K=3 and K=4 cut the d=1 group
    query, db = codes_at_distances([1, 0, 1, 1, 0, 1], bits=3)
    d_labels = np.array([[1], [0], [0], [1], [1], [1]], dtype=np.uint8)   # relevant: items 0, 3, 4, 5
    pq = per_query_metrics(query, db, np.array([[1]], dtype=np.uint8), d_labels, ks=(1, 2, 3, 4, 5))
    # ranked relevance 0,1,1,0,1,1: hits at ranks 2, 3, 5, 6
    np.testing.assert_allclose(pq.ap, [(1 / 2 + 2 / 3 + 3 / 5 + 4 / 6) / 4])
    np.testing.assert_allclose(pq.ap_at[0], [0, 1 / 2, (1 / 2 + 2 / 3) / 2, (1 / 2 + 2 / 3) / 2,
                                             (1 / 2 + 2 / 3 + 3 / 5) / 3])
    np.testing.assert_allclose(pq.precision_at[0], [0, 1 / 2, 2 / 3, 2 / 4, 3 / 5])
    np.testing.assert_allclose(pq.radius_precision[0], [1 / 2, 4 / 6, 4 / 6, 4 / 6])


def test_inputs_are_checked_and_packed_block_by_block(monkeypatch):
    """Work space must not grow with whole-matrix temporaries: blocks of a few rows give the same
    values, and a bad entry in a later block is still found."""
    import cmhash.metrics.ranking as ranking

    case = random_case(3, 9, 70, 70, 5)
    whole = per_query_metrics(*case, ks=(5,))
    monkeypatch.setattr(ranking, "PACK_BLOCK_ENTRIES", 3 * 70)   # 3 rows of codes per block
    blocked = per_query_metrics(*case, ks=(5,))
    for name in ("num_relevant", "ap", "ap_at", "radius_precision"):
        np.testing.assert_array_equal(getattr(blocked, name), getattr(whole, name))
    q_codes, d_codes, q_labels, d_labels = case
    d_codes = d_codes.copy()
    d_codes[-1, -1] = 0
    with pytest.raises(ValueError, match="db_codes must hold only -1/\\+1"):
        per_query_metrics(q_codes, d_codes, q_labels, d_labels)
    d_labels = d_labels.copy()
    d_labels[-1, 0] = 2
    with pytest.raises(ValueError, match="db_labels must hold only 0/1"):
        per_query_metrics(q_codes, case[1], q_labels, d_labels)
