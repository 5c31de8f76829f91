"""The synthetic generator: determinism, shape of the data, knobs, and its difficulty.

The difficulty checks use a small numpy mAP (checked here against a slow reference) and a CCA
baseline written here, so they do not depend on cmhash.metrics or cmhash.methods.
``python tests/test_data_synthetic.py`` measures the defaults at full size (table in docs/data-formats.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.data import make_synthetic

SMALL = dict(n=3000, n_query=300, n_train=1500, image_dim=128, text_dim=96)  # for the difficulty checks
TINY = dict(n=600, n_query=50, n_train=200, image_dim=64, text_dim=48)  # for the cheap checks


def mean_average_precision(q_codes, db_codes, q_labels, db_labels) -> float:
    """mAP over the whole Hamming ranking (ties by database order); queries with no relevant item skipped."""
    ham = 0.5 * (q_codes.shape[1] - q_codes.astype(np.float32) @ db_codes.T.astype(np.float32))
    rel = (q_labels.astype(np.float32) @ db_labels.T.astype(np.float32)) > 0
    hits = np.take_along_axis(rel, np.argsort(ham, axis=1, kind="stable"), axis=1)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    n_rel = hits.sum(axis=1)
    ok = n_rel > 0
    return float(((precision * hits).sum(axis=1)[ok] / n_rel[ok]).mean())


def slow_map(q_codes, db_codes, q_labels, db_labels) -> float:
    aps = []
    for q, ql in zip(q_codes, q_labels):
        dist = [int(np.sum(q != d)) for d in db_codes]
        order = sorted(range(len(db_codes)), key=lambda j: (dist[j], j))
        found, precisions = 0, []
        for rank, j in enumerate(order, start=1):
            if np.any(ql & db_labels[j]):
                found += 1
                precisions.append(found / rank)
        if found:
            aps.append(sum(precisions) / found)
    return float(np.mean(aps))


def sign(x: np.ndarray) -> np.ndarray:
    return np.where(x >= 0, 1, -1).astype(np.int8)


def cca_codes(train, bits: int, reg: float = 1e-3):
    """Linear CCA on the training pairs; returns image and text encoders to ±1 codes."""
    x, y = train.image.astype(np.float64), train.text.astype(np.float64)
    mx, my = x.mean(0), y.mean(0)
    x, y = x - mx, y - my

    def inv_sqrt(cov):
        w, v = np.linalg.eigh(cov + reg * np.trace(cov) / len(cov) * np.eye(len(cov)))
        return v / np.sqrt(w) @ v.T

    wx, wy = inv_sqrt(x.T @ x / len(x)), inv_sqrt(y.T @ y / len(y))
    u, _, vt = np.linalg.svd(wx @ (x.T @ y / len(x)) @ wy)
    px, py = wx @ u[:, :bits], wy @ vt.T[:, :bits]
    return (lambda a: sign((a - mx) @ px)), (lambda b: sign((b - my) @ py))


def ridge_codes(train, bits: int, seed: int = 0):
    """Supervised linear check: ridge regression to the labels, then a shared random projection."""
    proj = np.random.default_rng(seed).standard_normal((train.num_labels, bits))
    target = train.labels - train.labels.mean(0)

    def fit(x):
        m = x.mean(0)
        w = np.linalg.solve((x - m).T @ (x - m) + np.eye(x.shape[1]), (x - m).T @ target)
        return lambda a: sign((a - m) @ w @ proj)
    return fit(train.image.astype(np.float64)), fit(train.text.astype(np.float64))


def cross_modal_map(ds, encoders) -> float:
    enc_image, enc_text = encoders
    q, db = ds.split("query"), ds.split("database")
    i2t = mean_average_precision(enc_image(q.image), enc_text(db.text), q.labels, db.labels)
    t2i = mean_average_precision(enc_text(q.text), enc_image(db.image), q.labels, db.labels)
    return (i2t + t2i) / 2


@pytest.fixture(scope="module")
def default():
    return make_synthetic()


def test_map_helper_matches_slow_reference():
    rng = np.random.default_rng(0)
    qc, dc = sign(rng.standard_normal((7, 6))), sign(rng.standard_normal((40, 6)))
    ql, dl = (rng.random((7, 5)) < 0.3).astype(np.uint8), (rng.random((40, 5)) < 0.3).astype(np.uint8)
    ql[0] = 0  # a query with no relevant item is skipped by both
    assert mean_average_precision(qc, dc, ql, dl) == pytest.approx(slow_map(qc, dc, ql, dl), abs=1e-6)


def test_default_shape_splits_and_unit_norm(default):
    assert default.dims == (512, 512) and default.num_labels == 24 and len(default) == 20015
    assert {k: len(v) for k, v in default.splits.items()} == {"train": 5000, "query": 2000, "database": 18015}
    assert not set(default.splits["query"]) & set(default.splits["database"])
    assert set(default.splits["train"]) <= set(default.splits["database"])
    for x in (default.image, default.text):
        assert x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)


def test_labels_are_skewed_co_occurring_and_never_empty(default):
    y = default.labels.astype(float)
    assert y.sum(1).min() >= 1
    assert 2.0 < y.sum(1).mean() < 3.0
    freq = y.mean(0)
    assert freq.max() / freq.min() > 5  # Zipf-like skew
    joint = y.T @ y / len(y)
    lift = joint / np.outer(freq, freq)
    off = lift[~np.eye(len(freq), dtype=bool)]
    assert off.max() > 2 and off.min() < 0.7  # topics make some labels co-occur and others avoid each other


def test_deterministic_by_seed():
    a, b, c = make_synthetic(seed=5, **TINY), make_synthetic(seed=5, **TINY), make_synthetic(seed=6, **TINY)
    for field in ("image", "text", "labels"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert all(np.array_equal(a.splits[k], b.splits[k]) for k in a.splits)
    assert not np.array_equal(a.image, c.image)


def test_knobs_move_what_they_say():
    def gap(ds):
        return float(np.linalg.norm(ds.image.mean(0) - ds.text.mean(0)))
    same_dims = dict(TINY, text_dim=64)
    assert gap(make_synthetic(modality_gap=3.0, **same_dims)) > gap(make_synthetic(modality_gap=0.0, **same_dims))
    dense = make_synthetic(label_cardinality=5.0, **TINY).labels.sum(1).mean()
    sparse = make_synthetic(label_cardinality=1.0, **TINY).labels.sum(1)
    assert dense > 4 and np.all(sparse == 1)
    with pytest.raises(ValueError, match="label_cardinality"):
        make_synthetic(label_cardinality=0.5, **TINY)


def test_noise_makes_cca_worse():
    clean = make_synthetic(noise=0.1, seed=1, **dict(SMALL, n=2000, n_train=1000, n_query=200))
    noisy = make_synthetic(noise=2.0, seed=1, **dict(SMALL, n=2000, n_train=1000, n_query=200))
    assert cross_modal_map(clean, cca_codes(clean.split("train"), 32)) > \
        cross_modal_map(noisy, cca_codes(noisy.split("train"), 32)) + 0.03


def test_difficulty_cca_is_middling_supervision_helps():
    ds = make_synthetic(seed=2, **SMALL)
    q, db = ds.split("query"), ds.split("database")
    chance = float(((q.labels.astype(float) @ db.labels.T) > 0).mean())
    cca = cross_modal_map(ds, cca_codes(ds.split("train"), 32))
    ridge = cross_modal_map(ds, ridge_codes(ds.split("train"), 32))
    assert chance + 0.05 < cca < 0.8  # measured (seed 2): chance 0.36, CCA 0.45, ridge 0.63
    assert ridge > cca + 0.1


def mlp_codes(train, bits: int, seed: int = 0, epochs: int = 30):
    """Supervised nonlinear check: an MLP per modality predicts the labels, then the shared projection."""
    import torch

    torch.manual_seed(seed)
    proj = torch.tensor(np.random.default_rng(seed).standard_normal((train.num_labels, bits)), dtype=torch.float32)
    y = torch.tensor(train.labels, dtype=torch.float32)

    def fit(x):
        x = torch.tensor(x)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 512), torch.nn.ReLU(), torch.nn.Linear(512, y.shape[1]))
        opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
        for _ in range(epochs):
            for batch in torch.randperm(len(x)).split(128):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[batch]), y[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()

        @torch.no_grad()
        def encode(a):
            return sign(((torch.sigmoid(net(torch.tensor(a))) - y.mean(0)) @ proj).numpy())
        return encode
    return fit(train.image), fit(train.text)


if __name__ == "__main__":
    data = make_synthetic()
    q, db, train = data.split("query"), data.split("database"), data.split("train")
    print(f"chance (share of relevant pairs): {((q.labels.astype(float) @ db.labels.T) > 0).mean():.3f}")
    for name, codes in (("CCA + sign", cca_codes), ("ridge to labels", ridge_codes), ("MLP to labels", mlp_codes)):
        print(f"{name}: mean(I->T, T->I) mAP at 32 bits = {cross_modal_map(data, codes(train, 32)):.3f}")


# ---- presets -------------------------------------------------------------------------------------
def test_mirflickr_preset_is_the_default_generator():
    from cmhash.data.synthetic import make_preset

    a, b = make_preset("mirflickr", seed=2, **TINY), make_synthetic(**TINY, seed=2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels) and a.name == "synthetic"
    assert all(np.array_equal(a.splits[k], b.splits[k]) for k in b.splits)


@pytest.mark.parametrize("preset, labels", [("nuswide", 21), ("coco", 80), ("noisy", 24), ("private", 24)])
def test_presets_have_their_shape(preset, labels):
    from cmhash.data.sources import open_dataset
    from cmhash.data.synthetic import PRESETS

    small = "n=2000,n_query=100,n_train=500,image_dim=32,text_dim=32"
    ds = open_dataset(f"synthetic:preset={preset},{small}")
    assert ds.num_labels == labels and ds.name == f"synthetic:{preset}"
    assert len(ds.splits["query"]) == 100 and len(ds.splits["train"]) == 500
    if preset == "nuswide":
        assert (PRESETS["nuswide"]["n"], PRESETS["nuswide"]["n_query"], PRESETS["nuswide"]["n_train"]) == (
            195834, 2100, 10500)
    if preset == "coco":  # long-tailed: the most frequent label is many times the median one
        freq = np.sort(ds.labels.sum(0))[::-1]
        assert freq[0] > 10 * np.median(freq)


def test_noisy_preset_corrupts_training_labels_only():
    from cmhash.data.synthetic import make_preset

    clean = make_synthetic(**TINY, seed=1)
    noisy = make_preset("noisy", seed=1, **TINY)
    for split in ("query", "database"):  # evaluation sees the clean items and labels
        assert np.array_equal(noisy.labels[noisy.splits[split]], clean.labels[clean.splits[split]])
        assert np.array_equal(noisy.image[noisy.splits[split]], clean.image[clean.splits[split]])
    train_n, train_c = noisy.splits["train"], clean.splits["train"]
    assert np.array_equal(noisy.image[train_n], clean.image[train_c])
    changed = (noisy.labels[train_n] != clean.labels[train_c]).any(axis=1).mean()
    assert 0.15 < changed <= 0.3  # 30% relabelled (some by chance to the same label set)
    assert set(train_n).isdisjoint(noisy.splits["database"])  # noisy copies are not in the database


@pytest.mark.parametrize("spec, field", [("synthetic:foo=1", "foo"), ("synthetic:preset=imagenet", "preset")])
def test_unknown_synthetic_keys_are_named_errors(spec, field):
    from cmhash.data import DataError
    from cmhash.data.sources import open_dataset

    with pytest.raises(DataError, match=field):
        open_dataset(spec)
