"""Shallow baselines (cca_itq, cmfh, scm, dlfh): invariants, slow references, quality on toy data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.linalg

from cmhash.data import CrossModalDataset, DataError, one_hot
from cmhash.methods import HashMethod, get_method
from cmhash.methods.dlfh import latent_factor_codes, update_bits
from cmhash.methods.linear import itq_rotation, rbf_features, top_singular_pairs

WIKI = Path("/work/shared/data/wiki/wiki.mat")
METHODS = ("cca_itq", "cmfh", "scm", "dlfh")
SUPERVISED = ("scm", "dlfh")
TOY_ANCHORS = 40  # the supervised defaults use more anchors than the toy set has items


def mean_ap(q_codes: np.ndarray, db_codes: np.ndarray, q_labels: np.ndarray, db_labels: np.ndarray) -> float:
    """Hamming-ranking mAP over the whole database; relevant = shares a label; ties in database order."""
    dist = (q_codes.shape[1] - q_codes.astype(np.int64) @ db_codes.astype(np.int64).T) // 2
    rel = np.take_along_axis(q_labels @ db_labels.T > 0, np.argsort(dist, axis=1, kind="stable"), axis=1)
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    n_rel = rel.sum(axis=1)
    keep = n_rel > 0
    return float(((precision * rel).sum(axis=1)[keep] / n_rel[keep]).mean())


def test_mean_ap_hand_checked() -> None:
    q = np.array([[1, 1]]); db = np.array([[1, 1], [-1, -1], [1, -1]])
    # ranking: db0 (d=0, relevant), db2 (d=1, not), db1 (d=2, relevant): AP = (1/1 + 2/3) / 2
    ql, dl = np.array([[1, 0]]), np.array([[1, 0], [1, 0], [0, 1]])
    assert mean_ap(q, db, ql, dl) == pytest.approx((1 + 2 / 3) / 2)


def toy(n: int = 160, classes: int = 4, dims: tuple[int, int] = (24, 6), noise: float = 0.6,
        seed: int = 0) -> CrossModalDataset:
    """Class-clustered paired features; first 3/4 train (= database), the rest queries."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    image = rng.standard_normal((classes, dims[0]))[y] + noise * rng.standard_normal((n, dims[0]))
    text = rng.standard_normal((classes, dims[1]))[y] + noise * rng.standard_normal((n, dims[1]))
    cut = 3 * n // 4
    return CrossModalDataset(image, text, one_hot(y, classes),
                             splits={"train": np.arange(cut), "query": np.arange(cut, n)})


def make(name: str, bits: int = 16, seed: int = 0, **config) -> HashMethod:
    if name in SUPERVISED:
        config.setdefault("anchors", TOY_ANCHORS)
    return get_method(name)(bits=bits, seed=seed, **config)


def cross_map(model: HashMethod, data: CrossModalDataset) -> tuple[float, float]:
    train, query = data.split("train"), data.split("query")
    qi, qt = model.encode_image(query.image), model.encode_text(query.text)
    di, dt = model.encode_image(train.image), model.encode_text(train.text)
    return (mean_ap(qi, dt, query.labels, train.labels), mean_ap(qt, di, query.labels, train.labels))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("bits", [16, 128])
def test_codes_shape_and_values(name: str, bits: int) -> None:
    data = toy()
    model = make(name, bits).fit(data)
    for codes in (model.encode_image(data.image), model.encode_text(data.text)):
        assert codes.shape == (len(data), bits) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}


@pytest.mark.parametrize("name", METHODS)
def test_deterministic_by_seed(name: str) -> None:
    data = toy()
    a, b, c = make(name, seed=3).fit(data), make(name, seed=3).fit(data), make(name, seed=4).fit(data)
    assert np.array_equal(a.encode_image(data.image), b.encode_image(data.image))
    assert np.array_equal(a.encode_text(data.text), b.encode_text(data.text))
    if name != "scm":  # SCM-Seq has no random step: the seed only moves anchors when it uses them
        assert not np.array_equal(a.encode_image(data.image), c.encode_image(data.image))


@pytest.mark.parametrize("name", METHODS)
def test_save_load_round_trip(name: str, tmp_path: Path) -> None:
    data = toy()
    model = make(name).fit(data)
    model.save(tmp_path / "m.pt")
    loaded = HashMethod.load(tmp_path / "m.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    assert np.array_equal(loaded.encode_image(data.image), model.encode_image(data.image))
    assert np.array_equal(loaded.text_outputs(data.text), model.text_outputs(data.text))


@pytest.mark.parametrize("name", METHODS)
def test_items_encoded_independently(name: str) -> None:
    data = toy()
    model = make(name).fit(data)
    other = toy(seed=9)
    for modality, x, y in (("image", data.image, other.image), ("text", data.text, other.text)):
        encode = getattr(model, f"encode_{modality}")
        batch = encode(x)
        alone = np.stack([encode(x[i])[0] for i in range(0, len(x), 7)])
        mixed = encode(np.vstack([y[:5], x[:10]]))[5:]
        assert np.array_equal(alone, batch[::7]) and np.array_equal(mixed, batch[:10])


@pytest.mark.parametrize("name", METHODS)
def test_quality_on_toy(name: str) -> None:
    data = toy()
    i2t, t2i = cross_map(make(name).fit(data), data)
    chance = mean_ap(np.ones((40, 16), np.int8), np.ones((120, 16), np.int8),
                     data.split("query").labels, data.split("train").labels)
    assert chance < 0.35
    assert min(i2t, t2i) > (0.9 if name in SUPERVISED else 0.6), (i2t, t2i)


@pytest.mark.parametrize("name", SUPERVISED)
def test_supervised_methods_use_labels(name: str) -> None:
    """Labels that contradict the feature clusters must change the codes (they are not ignored)."""
    data = toy()
    shuffled = CrossModalDataset(data.image, data.text, data.labels[np.random.default_rng(1).permutation(len(data))],
                                 splits=data.splits)
    a, b = make(name).fit(data), make(name).fit(shuffled)
    assert not np.array_equal(a.encode_image(data.image), b.encode_image(data.image))


def test_top_singular_pairs_match_svd() -> None:
    m = np.random.default_rng(0).standard_normal((7, 11))
    u, s, v = top_singular_pairs(m, 3)
    u_ref, s_ref, vt_ref = np.linalg.svd(m)
    assert np.allclose(s, s_ref[:3])
    assert np.allclose(np.abs(u.T @ u_ref[:, :3]), np.eye(3), atol=1e-8)
    assert np.allclose(u * s @ v.T, u_ref[:, :3] * s_ref[:3] @ vt_ref[:3], atol=1e-8)
    u2, s2, v2 = top_singular_pairs(m.T, 3)  # the tall case goes through the other Gram matrix
    assert np.allclose(s2, s) and np.allclose(u2 * s2 @ v2.T, (u * s @ v.T).T, atol=1e-8)


@pytest.mark.parametrize("d,bits", [(8, 8), (4, 16)])
def test_itq_rotation_orthonormal_and_lowers_quantization_loss(d: int, bits: int) -> None:
    v = np.random.default_rng(0).standard_normal((200, d)) * np.linspace(2, 0.5, d)
    loss = lambda r: np.sum((np.where(v @ r >= 0, 1.0, -1.0) - v @ r) ** 2)  # noqa: E731
    r0 = itq_rotation(v, bits, 0, np.random.default_rng(1))
    r = itq_rotation(v, bits, 30, np.random.default_rng(1))
    assert np.allclose(r @ r.T, np.eye(d), atol=1e-10) and r.shape == (d, bits)
    assert loss(r) < loss(r0)
    with pytest.raises(ValueError):
        itq_rotation(v, d - 1, 1, np.random.default_rng(0))


def test_cca_directions_are_canonical() -> None:
    """With a tiny ridge, the first projected pair correlates by the top canonical correlation (slow reference)."""
    data = toy(n=400)
    train = data.split("train")
    model = make("cca_itq", bits=6, reg=1e-9, eigen_power=0.0, n_iter=0).fit(data)
    x = train.image - train.image.mean(0); y = train.text - train.text.mean(0)
    cxx, cyy, cxy = x.T @ x, y.T @ y, x.T @ y
    # reference: generalised symmetric eigenproblem [[0, Cxy], [Cxy^T, 0]] w = rho blockdiag(Cxx, Cyy) w
    a = np.block([[np.zeros_like(cxx), cxy], [cxy.T, np.zeros_like(cyy)]])
    rho = scipy.linalg.eigh(a, scipy.linalg.block_diag(cxx, cyy), eigvals_only=True)[::-1][:6]
    # the ITQ matrix is orthogonal, so it leaves the summed canonical correlations unchanged
    pi, pt = model.image_outputs(train.image), model.text_outputs(train.text)
    assert np.trace(pi.T @ pt) / np.sqrt(np.trace(pi.T @ pi) * np.trace(pt.T @ pt)) == pytest.approx(
        rho.mean(), rel=1e-4)


def test_scm_first_bit_matches_slow_reference() -> None:
    """Bit 1 of SCM-Seq = top generalised eigenvector with the explicit n x n similarity c S."""
    data = toy(n=200)
    train = data.split("train")
    model = make("scm", bits=8, anchors=0, reg=1e-6).fit(data)
    x = train.image - train.image.mean(0); y = train.text - train.text.mean(0)
    yn = train.labels / np.linalg.norm(train.labels, axis=1, keepdims=True)
    s = 8 * (2 * yn @ yn.T - 1)
    n = len(x)
    cxx = x.T @ x / n + 1e-6 * np.mean(np.diag(x.T @ x / n)) * np.eye(x.shape[1])
    cyy = y.T @ y / n + 1e-6 * np.mean(np.diag(y.T @ y / n)) * np.eye(y.shape[1])
    cxy = x.T @ s @ y / n
    a = np.block([[np.zeros_like(cxx), cxy], [cxy.T, np.zeros_like(cyy)]])
    _, w = scipy.linalg.eigh(a, scipy.linalg.block_diag(cxx, cyy), subset_by_index=[len(a) - 1, len(a) - 1])
    wx = w[: x.shape[1], 0]
    got = model._params["image_proj"][:, 0]
    cos = wx @ got / np.linalg.norm(wx) / np.linalg.norm(got)
    assert abs(cos) == pytest.approx(1.0, abs=1e-6)


def reference_update_bits(codes: np.ndarray, partner: np.ndarray, sim: np.ndarray, lam: float) -> np.ndarray:
    """DLFH bit-wise update, recomputing Theta from scratch for every column (slow reference)."""
    codes = codes.astype(np.float64).copy()
    c, m = codes.shape[1], len(partner)
    for k in range(c):
        prob = 1.0 / (1.0 + np.exp(-lam / c * codes @ partner.T))
        p = lam / c * (sim - prob) @ partner[:, k] + m * lam**2 / (4 * c**2) * codes[:, k]
        codes[:, k] = np.where(p >= 0, 1.0, -1.0)
    return codes


def test_dlfh_update_matches_slow_reference() -> None:
    rng = np.random.default_rng(0)
    labels = one_hot(rng.integers(0, 3, 50), 3).astype(np.float32)
    cols = rng.choice(50, 12, replace=False)
    sim = (labels @ labels[cols].T > 0).astype(np.float32)
    codes = np.where(rng.standard_normal((50, 8)) < 0, -1.0, 1.0).astype(np.float32)
    partner = np.where(rng.standard_normal((12, 8)) < 0, -1.0, 1.0).astype(np.float32)
    expected = reference_update_bits(codes, partner, sim, 8.0)
    update_bits(codes, partner, sim, 8.0)
    assert np.array_equal(codes, expected)


def test_dlfh_codes_fit_the_labels() -> None:
    labels = one_hot(np.random.default_rng(0).integers(0, 4, 120), 4)
    u, v = latent_factor_codes(labels, 16, 8.0, 30, 16, np.random.default_rng(0))
    assert mean_ap(u, v, labels, labels) > 0.95


def test_rbf_features_per_row() -> None:
    rng = np.random.default_rng(0)
    x, anchors = rng.standard_normal((5, 3)), rng.standard_normal((4, 3))
    f = rbf_features(x, anchors, 1.5)
    assert f[2, 1] == pytest.approx(np.exp(-np.sum((x[2] - anchors[1]) ** 2) / (2 * 1.5**2)))


def test_bad_config_and_state_are_rejected() -> None:
    data = toy()
    with pytest.raises(KeyError, match="unknown config key"):
        get_method("scm")(bits=8, nonsense=1)
    with pytest.raises(ValueError, match="anchors"):
        make("dlfh", anchors=10_000).fit(data)
    with pytest.raises(ValueError, match="lambda"):
        make("cmfh", **{"lambda": 1.5}).fit(data)
    model = make("scm").fit(data)
    state = model.get_state()
    with pytest.raises(DataError, match="state"):
        model.set_state({k: v for k, v in state.items() if k != "text_proj"})
    state["text_proj"] = state["text_proj"][:, :3]
    with pytest.raises(DataError, match="text_proj"):
        model.set_state(state)


@pytest.mark.skipif(not WIKI.exists(), reason="Wiki features not available")
def test_wiki_supervised_beat_unsupervised() -> None:
    m = scipy.io.loadmat(WIKI)
    n = len(m["I_tr"])
    data = CrossModalDataset(np.vstack([m["I_tr"], m["I_te"]]), np.vstack([m["T_tr"], m["T_te"]]),
                             np.vstack([m["L_tr"], m["L_te"]]),
                             splits={"train": np.arange(n), "query": np.arange(n, n + len(m["I_te"]))})
    scores = {name: np.mean(cross_map(get_method(name)(bits=16, seed=0).fit(data), data))
              for name in ("cca_itq", "scm", "dlfh")}
    assert 0.18 < scores["cca_itq"] < 0.3
    assert scores["scm"] > scores["cca_itq"] + 0.01 and scores["dlfh"] > scores["cca_itq"] + 0.05, scores
