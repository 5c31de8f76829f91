"""ALECH: its closed-form steps against slow references built from the explicit n x n similarity,
the constraint set of the latent features, and that its codes follow the labels."""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.data import make_synthetic
from cmhash.methods import get_method
from cmhash.methods.alech import ALECH, centred_procrustes, similarity_times
from cmhash.methods.linear import normalised_labels, regularised_cov


def toy_labels(n: int = 30, c: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(np.float64)
    y[np.arange(n), rng.integers(0, c, n)] = 1
    return y


def explicit_similarity(y: np.ndarray) -> np.ndarray:
    g = normalised_labels(y)
    return 2 * g @ g.T - 1


def test_similarity_products_match_the_explicit_matrix() -> None:
    y = toy_labels()
    m = np.random.default_rng(1).normal(size=(30, 5))
    np.testing.assert_allclose(similarity_times(normalised_labels(y), m), explicit_similarity(y) @ m, atol=1e-10)


@pytest.mark.parametrize("rank", [5, 3])
def test_centred_procrustes_is_feasible_and_optimal(rank: int) -> None:
    rng = np.random.default_rng(0)
    n, r = 40, 5
    z = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, r))  # rank-deficient when rank < r
    v = centred_procrustes(z, rng)
    np.testing.assert_allclose(v.T @ v, n * np.eye(r), atol=1e-8)
    np.testing.assert_allclose(v.sum(axis=0), 0, atol=1e-8)
    best = np.trace(z.T @ v)
    for _ in range(20):  # no other feasible point scores higher
        other = centred_procrustes(rng.normal(size=(n, r)), rng)
        assert np.trace(z.T @ other) <= best + 1e-8


def test_hash_function_matches_slow_closed_form() -> None:
    rng = np.random.default_rng(2)
    y = toy_labels(n=50)
    x = rng.normal(size=(50, 6))
    x -= x.mean(axis=0)
    b = np.where(rng.normal(size=(50, 8)) >= 0, 1.0, -1.0)
    m = ALECH(bits=8, seed=0, anchors=0, reg=1e-6)
    lam = m.config["lambda"]
    s = explicit_similarity(y)
    # d/dF [lam ||xF - b||^2 + ||x F b^T - 8 s||^2] = 0
    xtx = regularised_cov(x, 1e-6) * len(x)
    slow = np.linalg.solve(xtx, 8 * x.T @ s @ b + lam * x.T @ b) @ np.linalg.inv(b.T @ b + lam * np.eye(8))
    np.testing.assert_allclose(m.hash_function(x, b, normalised_labels(y)), slow, rtol=1e-6, atol=1e-9)


def test_training_codes_follow_the_labels() -> None:
    """Items with the same labels get closer codes than items with none in common."""
    y = toy_labels(n=200, c=5, seed=3)
    feats = np.random.default_rng(3).normal(size=(200, 20))
    b = ALECH(bits=16, seed=0, anchors=0).train_codes(y, feats - feats.mean(axis=0), np.random.default_rng(0))
    assert set(np.unique(b)) == {-1.0, 1.0}
    sim = b @ b.T / 16
    share = y @ y.T > 0
    assert sim[share].mean() > sim[~share].mean() + 0.3


def test_beats_unsupervised_cca_itq_on_synthetic() -> None:
    data = make_synthetic(n=1200, image_dim=48, text_dim=32, num_labels=6, n_query=200, n_train=800, seed=4)
    q, db = data.split("query"), data.split("database")

    def score(name: str, **kw) -> float:
        m = get_method(name)(bits=16, seed=0, **kw).fit(data)
        from cmhash.metrics import mean_average_precision
        return mean_average_precision(m.encode_image(q.image), m.encode_text(db.text), q.labels, db.labels)

    assert score("alech", anchors=200) > score("cca_itq") + 0.05
