"""DHSL: feature selector, relation network, loss terms, per-item codes, persistence, training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhash.data import CrossModalDataset
from cmhash.methods.dhsl import DHSL, FeatureSelector, RelationNetwork, fisher_scores, select_dimensions

SMALL = {"hidden": 32, "feature_dim": 16, "selected_dims": 8, "relation_hidden": 8,
         "train": {"epochs": 2, "val_fraction": 0, "progress": False, "batch_size": 16}}


def tiny_data(n: int = 48, dims: tuple[int, int] = (128, 10), classes: int = 4, multi: bool = True,
              seed: int = 0) -> CrossModalDataset:
    rng = np.random.default_rng(seed)
    labels = np.eye(classes, dtype=np.uint8)[rng.integers(0, classes, n)]
    if multi:
        labels |= (rng.random((n, classes)) < 0.2).astype(np.uint8)
    image = labels @ rng.normal(size=(classes, dims[0])) + 0.5 * rng.normal(size=(n, dims[0]))
    text = labels @ rng.normal(size=(classes, dims[1])) + 0.5 * rng.normal(size=(n, dims[1]))
    return CrossModalDataset(image, text, labels)


def built(data: CrossModalDataset, bits: int = 16, **config) -> tuple[DHSL, torch.nn.Module]:
    """A method with its network built and prepared, without training."""
    method = DHSL(bits=bits, seed=0, **{**SMALL, **config})
    method.dims, method.num_labels = data.dims, data.num_labels
    torch.manual_seed(0)
    net = method.build_network()
    method.prepare(net, data)
    return method, net


def batch_of(data: CrossModalDataset) -> dict[str, torch.Tensor]:
    return {"image": torch.from_numpy(data.image), "text": torch.from_numpy(data.text),
            "labels": torch.from_numpy(data.labels).float(), "index": torch.arange(len(data))}


# ---- feature selector ------------------------------------------------------------------------------
def slow_fisher(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    per_class = []
    for c in range(labels.shape[1]):
        on = labels[:, c] == 1
        if on.all() or not on.any():
            continue
        row = []
        for d in range(x.shape[1]):
            gap = (x[on, d].mean() - x[~on, d].mean()) ** 2
            var = x[on, d].var() + x[~on, d].var()
            row.append(gap / var if gap > 0 else 0.0)
        per_class.append(row)
    return np.mean(per_class, axis=0) if per_class else np.zeros(x.shape[1])


def test_fisher_scores_match_slow_reference():
    data = tiny_data(n=40, dims=(12, 5))
    np.testing.assert_allclose(fisher_scores(data.image, data.labels), slow_fisher(data.image, data.labels), rtol=1e-9)


def test_fisher_scores_degenerate_labels_are_zero():
    x = np.random.default_rng(0).normal(size=(10, 4))
    assert np.array_equal(fisher_scores(x, np.ones((10, 3))), np.zeros(4))  # every class on for every item


def test_selection_prefers_discriminative_then_high_variance_dimensions():
    rng = np.random.default_rng(0)
    labels = np.eye(2, dtype=np.uint8)[rng.integers(0, 2, 200)]
    x = rng.normal(size=(200, 6)) * np.array([1, 1, 1, 5, 1, 1])
    x[:, 4] += 3 * labels[:, 0]  # the only dimension that tells the classes apart
    assert list(select_dimensions(x, labels, 1)) == [4]
    const = np.ones((200, 4)) * np.array([0.0, 2.0, 0.0, 0.0])
    const[:, 2] = rng.normal(size=200)  # no dimension is discriminative: highest variance wins
    assert list(select_dimensions(const, np.ones((200, 1)), 1)) == [2]


def test_feature_selector_standardises_kept_dimensions_and_gates_them():
    rng = np.random.default_rng(1)
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 60)]
    x = rng.normal(size=(60, 10)).astype(np.float32)
    x[:, [2, 7]] += 4 * labels[:, :2]
    sel = FeatureSelector(2)
    sel.set_selection(x, labels)
    assert sel.index.tolist() == [2, 7]
    out = sel(torch.from_numpy(x))
    np.testing.assert_allclose(out.detach().numpy(), (x[:, [2, 7]] - x[:, [2, 7]].mean(0)) / x[:, [2, 7]].std(0), atol=1e-4)
    out.sum().backward()
    assert sel.gate.grad is not None and torch.isfinite(sel.gate.grad).all()


# ---- relation network ------------------------------------------------------------------------------
def test_relation_network_hand_checked_value_and_symmetry():
    rel = RelationNetwork(bits=2, hidden=1)
    with torch.no_grad():
        rel.net[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        rel.net[0].bias.zero_()
        rel.net[2].weight.fill_(2.0)
        rel.net[2].bias.fill_(-1.0)
    a = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    b = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.5, 0.5]])
    # score = sigmoid(2 * relu(a_i . b_j) - 1)
    expect = torch.sigmoid(2 * F.relu(a @ b.T) - 1)
    torch.testing.assert_close(rel(a, b), expect)
    torch.testing.assert_close(rel(b, a), rel(a, b).T)


def test_relation_scores_of_a_pair_ignore_other_items():
    rel = RelationNetwork(bits=8, hidden=4)
    a, b = torch.randn(5, 8), torch.randn(3, 8)
    full = rel(a, b)
    torch.testing.assert_close(rel(a[2:3], b[1:2])[0, 0], full[2, 1])


# ---- loss terms ------------------------------------------------------------------------------------
@torch.no_grad()
def slow_weighted_triplet(u: torch.Tensor, v: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    total = weight = 0.0
    cos = F.normalize(u, dim=1) @ F.normalize(v, dim=1).T
    grade = F.normalize(y, dim=1) @ F.normalize(y, dim=1).T
    for i, p, n in itertools.product(range(len(u)), repeat=3):
        if grade[i, p] > 0 and grade[i, n] == 0:
            total += float(grade[i, p] * F.relu(margin - cos[i, p] + cos[i, n]))
            weight += float(grade[i, p])
    return total / max(weight, 1.0)


def test_loss_terms_match_their_definitions():
    data = tiny_data(n=6, dims=(12, 5))
    method, net = built(data)
    net.eval()  # no dropout, so the codes recomputed below are the ones the terms saw
    batch = batch_of(data)
    terms = method.loss_terms(net, batch)
    assert set(terms) == {"relation_inter", "relation_intra", "triplet", "quantization"}
    f, g, y = net.encode("image", batch["image"]), net.encode("text", batch["text"]), batch["labels"]
    s = (y @ y.T > 0).float()
    torch.testing.assert_close(terms["relation_inter"], ((net.relation(f, g) - s) ** 2).mean())
    intra = (((net.relation(f, f) - s) ** 2).mean() + ((net.relation(g, g) - s) ** 2).mean()) / 2
    torch.testing.assert_close(terms["relation_intra"], intra)
    m = method.config["margin"]
    expect = (slow_weighted_triplet(f, g, y, m) + slow_weighted_triplet(g, f, y, m)) / 2
    assert terms["triplet"].item() == pytest.approx(expect, rel=1e-5)
    both = torch.cat([f, g])
    torch.testing.assert_close(terms["quantization"], ((both - both.sign()) ** 2).mean())


def test_disabled_terms_are_not_computed():
    data = tiny_data(n=8)
    method, net = built(data, losses={"relation_intra": 0.0, "triplet": 0.0})
    assert set(method.loss_terms(net, batch_of(data))) == {"relation_inter", "quantization"}


def test_every_parameter_gets_gradient():
    data = tiny_data(n=16)
    method, net = built(data)
    sum(method.loss_terms(net, batch_of(data)).values()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


@pytest.mark.parametrize("case", ["saturated", "identical_labels", "single_label"])
def test_no_nan_at_extremes(case):
    data = tiny_data(n=12, multi=case != "single_label")
    if case == "identical_labels":
        data = CrossModalDataset(data.image, data.text, np.ones_like(data.labels))
    method, net = built(data)
    if case == "saturated":
        with torch.no_grad():
            for branch in (net.image, net.text):
                branch.hash.proj.weight.mul_(1e4)
    terms = method.loss_terms(net, batch_of(data))
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# ---- per-item codes, persistence, training ---------------------------------------------------------
@pytest.mark.parametrize("selector", [True, False])
def test_codes_depend_on_the_item_alone(selector):
    data = tiny_data(n=10)
    _, net = built(data, components={"feature_selector": selector})
    assert (net.image.selector is not None) == selector
    net.eval()
    for modality in ("image", "text"):
        x = torch.from_numpy(getattr(data, modality))
        full = net.encode(modality, x)
        alone = net.encode(modality, x[3:4])
        others = x.clone()
        others[[0, 1, 2, 4]] = torch.randn_like(others[[0, 1, 2, 4]]) * 10
        torch.testing.assert_close(alone[0], full[3])
        torch.testing.assert_close(net.encode(modality, others)[3], full[3])


def test_selector_width_is_capped_at_the_input_dim():
    data = tiny_data(n=20, dims=(128, 10))
    _, net = built(data, selected_dims=64)
    assert len(net.image.selector.index) == 64 and len(net.text.selector.index) == 10
