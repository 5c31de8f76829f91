"""FJSPH: class affinity and cluster-wise similarity against slow references and hand values, the
joint target's mixing and switches, each loss term's values and gradients, per-item codes,
save/load, and short training runs on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmhash.methods import losses
from cmhash.methods.fjsph import FJSPH, Refinement, class_affinity, cluster_similarity, inner_product_regression
from method_kit import batch, prepared_net, sized, tiny_data

FAST = {"hidden": 32, "embed_dim": 16}
TERMS = ("contrastive", "joint_similarity", "quantization")




def method(bits: int = 16, **overrides) -> FJSPH:
    return sized(FJSPH, bits, **{**FAST, **overrides})






# ---- class affinity -------------------------------------------------------------------------------------

def slow_affinity(features: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    c = labels.shape[1]
    out = np.zeros((c, c))
    for x in features:
        x = np.array([r / np.linalg.norm(r) for r in x])
        x = x - x.mean(axis=0)
        centres = []
        for k in range(c):
            rows = [x[i] for i in range(len(x)) if labels[i, k]]
            centres.append(np.mean(rows, axis=0) if rows else np.zeros(x.shape[1]))
        for a in range(c):
            for b in range(c):
                na, nb = np.linalg.norm(centres[a]), np.linalg.norm(centres[b])
                cos = centres[a] @ centres[b] / (na * nb) if na > 0 and nb > 0 else 0.0
                out[a, b] += max(cos, 0.0) / len(features)
    np.fill_diagonal(out, 1.0)
    return out


def test_class_affinity_matches_slow_reference():
    data = tiny_data(n=30, dims=(7, 4))
    labels = data.labels.copy()
    labels[:, 4] = 0  # a class without training items relates to nothing but itself
    got = class_affinity([data.image, data.text], labels)
    assert np.allclose(got, slow_affinity([data.image, data.text], labels), atol=1e-10)
    assert np.allclose(got, got.T) and got.min() >= 0 and got.max() <= 1 + 1e-12
    assert np.array_equal(got[4], np.eye(5)[4])


def test_class_affinity_hand_value():
    """Centres [1, 0], [0.5, 0.5], [-1, 0] (features already of mean 0): cosines 1/sqrt(2), -1 and
    -1/sqrt(2), the negative ones clipped to 0."""
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]])
    k = class_affinity([x], y)
    assert k[0, 1] == pytest.approx(1 / math.sqrt(2)) and k[0, 2] == 0 and k[1, 2] == 0
    assert np.array_equal(np.diag(k), np.ones(3))


# ---- cluster-wise similarity ---------------------------------------------------------------------------

def test_cluster_similarity_with_identity_kernel_is_label_cosine():
    y = (torch.rand(9, 5, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    y[0] = 1.0
    assert torch.allclose(cluster_similarity(y, y, torch.eye(5)), losses.label_cosine(y, y), atol=1e-6)


def test_cluster_similarity_hand_values():
    k = torch.tensor([[1.0, 0.5], [0.5, 1.0]])
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    s = cluster_similarity(a, b, k)
    # [1,0] vs [0,1]: K01 / (1 * 1); [1,1] vs [0,1]: (0.5 + 1) / (sqrt(3) * 1); no labels: 0
    assert s[:, 0].tolist() == pytest.approx([0.5, 1.5 / math.sqrt(3), 0.0], rel=1e-6)


# ---- joint similarity and losses ------------------------------------------------------------------------

def test_inner_product_regression_hand_values():
    u = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    # inner products / k: [[1, 0], [0, 1]]
    assert inner_product_regression(u, u, torch.eye(2)).item() == pytest.approx(0.0)
    assert inner_product_regression(u, u, -torch.ones(2, 2)).item() == pytest.approx((4 + 1 + 1 + 4) / 4)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_joint_similarity_mixes_sample_and_cluster(alpha):
    m = method(alpha=alpha)
    net = prepared_net(m)
    y = (torch.rand(7, 5, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    want = alpha * losses.label_cosine(y, y) + (1 - alpha) * cluster_similarity(y, y, net.class_affinity)
    assert torch.allclose(m.joint_similarity(net, y, y), want, atol=1e-6)


def test_similarity_switches_select_one_part_and_not_both_off():
    y = (torch.rand(7, 5, generator=torch.Generator().manual_seed(3)) < 0.5).float()
    m = method(components={"cluster_similarity": False})
    assert torch.allclose(m.joint_similarity(prepared_net(m), y, y), losses.label_cosine(y, y))
    m = method(components={"sample_similarity": False})
    net = prepared_net(m)
    assert torch.allclose(m.joint_similarity(net, y, y), cluster_similarity(y, y, net.class_affinity))
    with pytest.raises(ValueError, match="sample_similarity and cluster_similarity"):
        method(components={"sample_similarity": False, "cluster_similarity": False})
    with pytest.raises(ValueError, match="alpha"):
        method(alpha=1.5)


def test_joint_similarity_term_matches_its_formula():
    m = method()
    net = prepared_net(m).eval()
    b = batch()
    terms = m.loss_terms(net, b)
    with torch.no_grad():
        h = torch.cat([net.encode("image", b["image"]), net.encode("text", b["text"])])
    y = torch.cat([b["labels"], b["labels"]])
    keep = y.sum(1) > 0
    h, y = h[keep], y[keep]
    target = m.joint_similarity(net, y, y)
    want = ((h @ h.T / 16 - target) ** 2).mean()
    assert terms["joint_similarity"].item() == pytest.approx(want.item(), rel=1e-5)


def test_every_term_is_present_finite_and_has_gradients():
    m = method()
    net = prepared_net(m)
    terms = m.loss_terms(net, batch())
    assert set(terms) == set(TERMS)
    for name, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), name
        grads = torch.autograd.grad(value, list(net.parameters()), allow_unused=True, retain_graph=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


@pytest.mark.parametrize("case", ["saturated", "identical_labels", "single_label", "no_labels"])
def test_no_nan_at_extremes(case):
    m = method()
    net = prepared_net(m)
    n = 8
    labels = {"saturated": torch.eye(5)[torch.arange(n) % 5], "identical_labels": torch.ones(n, 5),
              "single_label": torch.eye(5)[torch.zeros(n, dtype=torch.long)], "no_labels": torch.zeros(n, 5)}[case]
    b = batch(n, labels=labels)
    if case == "saturated":
        b["image"], b["text"] = b["image"] * 1e4, b["text"] * 1e4
    terms = m.loss_terms(net, b)
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)




# ---- blocks: per-item codes ------------------------------------------------------------------------------

def test_refinement_is_residual_and_per_item():
    torch.manual_seed(0)
    block = Refinement(8, 16, dropout=0.1).eval()
    z = torch.randn(5, 8)
    with torch.no_grad():
        out = block(z)
        alone = torch.cat([block(z[i:i + 1]) for i in range(5)])
    assert out.shape == (5, 8) and torch.allclose(alone, out, atol=1e-6)
    with torch.no_grad():
        block.block[1][-1].weight.zero_()
        block.block[1][-1].bias.zero_()
        assert torch.equal(block(z), z)  # a zero residual branch leaves the embedding as it is


# ---- multimodal contrast -----------------------------------------------------------------------------------

def test_contrast_with_label_positives_matches_its_definition():
    torch.manual_seed(0)
    a, b = torch.randn(4, 6), torch.randn(4, 6)
    y = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 0]])  # items 0 and 1 share a label; item 3 has none
    m = method(contrastive_positives="labels")
    pos = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    t = m.config["temperature"]
    expect = (losses.multi_positive_contrastive(a, b, pos, t) + losses.multi_positive_contrastive(b, a, pos, t)) / 2
    torch.testing.assert_close(m.contrastive(a, b, y), expect)
    torch.testing.assert_close(method().contrastive(a, b, y), losses.info_nce(a, b, t))  # default: paired InfoNCE
    with pytest.raises(ValueError, match="pairs or labels"):
        method(contrastive_positives="both").contrastive(a, b, y)
