"""DHSL: feature selector, relation network, loss terms, per-item codes, persistence, training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cmhash.data import CrossModalDataset
from cmhash.methods.dhsl import DHSL, FeatureSelector, RelationNetwork, fisher_scores, relation_loss, select_dimensions

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


def test_feature_selector_gates_the_chosen_dimensions_and_counts_what_it_keeps():
    rng = np.random.default_rng(1)
    labels = np.eye(3, dtype=np.uint8)[rng.integers(0, 3, 60)]
    x = rng.normal(size=(60, 10)).astype(np.float32)
    x[:, [2, 7]] += 4 * labels[:, :2]
    sel = FeatureSelector(2)
    sel.set_selection(x, labels)
    assert sel.index.tolist() == [2, 7]
    with torch.no_grad():
        sel.gate.copy_(torch.tensor([0.5, -2.0]))
    out = sel(torch.from_numpy(x))
    np.testing.assert_allclose(out.detach().numpy(), x[:, [2, 7]] * np.array([0.5, -2.0]), rtol=1e-6)
    assert sel.sparsity().item() == pytest.approx(1.25)
    assert sel.kept() == 2
    with torch.no_grad():
        sel.gate.copy_(torch.tensor([0.01, -2.0]))
    assert sel.kept() == 1


def test_sparsity_penalty_silences_gates_of_useless_dimensions():
    """Trained on the sparsity term alone plus a task that needs dimension 0 only, the other gates go to 0."""
    torch.manual_seed(0)
    sel = FeatureSelector(4)
    x = torch.randn(256, 4)
    target = 3 * x[:, :1]
    opt = torch.optim.Adam(sel.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        loss = (sel(x).sum(dim=1, keepdim=True) - target).pow(2).mean() + 0.5 * sel.sparsity()
        loss.backward()
        opt.step()
    assert sel.kept(tol=0.05) == 1 and sel.gate[0].abs() > 1


# ---- relation network ------------------------------------------------------------------------------
def test_relation_network_hand_checked_value_and_symmetry():
    rel = RelationNetwork(bits=2, hidden=1)
    with torch.no_grad():
        rel.first.weight.copy_(torch.tensor([[1.0, 1.0]]))
        rel.first.bias.zero_()
        rel.second.weight.fill_(2.0)
        rel.second.bias.fill_(-1.0)
    a = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    b = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.5, 0.5]])
    # score = sigmoid(2 * relu(a_i . b_j) - 1)
    expect = torch.sigmoid(2 * F.relu(a @ b.T) - 1)
    torch.testing.assert_close(rel(a, b), expect)
    torch.testing.assert_close(rel(b, a), rel(a, b).T)


def test_monotone_relation_score_rises_with_every_agreeing_bit():
    torch.manual_seed(0)
    rel = RelationNetwork(bits=8, hidden=6, monotone=True)
    a = torch.ones(1, 8)
    scores = []
    for m in range(9):  # codes agreeing with a on the first m bits
        b = torch.cat([torch.ones(m), -torch.ones(8 - m)])[None]
        scores.append(rel(a, b).item())
    assert all(x <= y for x, y in zip(scores, scores[1:])) and scores[-1] > scores[0]


def test_relation_loss_kinds_and_unlabelled_items():
    torch.manual_seed(0)
    rel = RelationNetwork(bits=4, hidden=3)
    a, b = torch.tanh(torch.randn(3, 4)), torch.tanh(torch.randn(3, 4))
    y = torch.tensor([[1.0, 0], [1, 1], [0, 0]])  # the third item has no label
    s = torch.tensor([[1.0, 1], [1, 1]])
    torch.testing.assert_close(relation_loss(rel, a, b, y, y, "mse"), ((rel(a[:2], b[:2]) - s) ** 2).mean())
    torch.testing.assert_close(relation_loss(rel, a, b, y, y, "bce"),
                               F.binary_cross_entropy(rel(a[:2], b[:2]), s), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="mse or bce"):
        relation_loss(rel, a, b, y, y, "hinge")


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
    known = y.sum(dim=1) > 0
    for i, p, n in itertools.product(range(len(u)), repeat=3):
        if grade[i, p] > 0 and grade[i, n] == 0 and known[i] and known[n]:
            total += float(grade[i, p] * F.relu(margin - cos[i, p] + cos[i, n]))
            weight += float(grade[i, p])
    return total / max(weight, 1.0)


def test_loss_terms_match_their_definitions():
    data = tiny_data(n=6, dims=(12, 5))
    method, net = built(data, losses={"selector_sparsity": 0.1})
    net.eval()  # no dropout, so the codes recomputed below are the ones the terms saw
    batch = batch_of(data)
    terms = method.loss_terms(net, batch)
    assert set(terms) == {"relation_inter", "relation_intra", "triplet", "selector_sparsity", "quantization"}
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
    torch.testing.assert_close(terms["selector_sparsity"], (net.image.selector.gate.abs().mean()
                                                            + net.text.selector.gate.abs().mean()) / 2)


def test_unlabelled_items_are_no_triplet_negatives():
    from cmhash.methods import losses
    torch.manual_seed(0)
    u, v = torch.randn(3, 6), torch.randn(3, 6)
    y = torch.tensor([[1.0, 0], [1, 0], [0, 0]])
    # the only candidate negative has no label: no triplet at all
    assert losses.weighted_cosine_triplet(u, v, y, y, 0.3).item() == 0.0


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
# ---- selector width -----------------------------------------------------------------------------
def test_selector_width_is_capped_at_the_input_dim():
    data = tiny_data(n=20, dims=(128, 10))
    _, net = built(data, selected_dims=64)
    assert len(net.image.selector.index) == 64 and len(net.text.selector.index) == 10
