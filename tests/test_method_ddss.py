"""DDSS: the anchor bank, the dual-branch module's per-item independence and switches, the learned
graph weights, the private-feature split, each loss term's values and gradients (the semantic term
against a slow reference). Per-item codes, save/load and ±1 codes are the contract tests'."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmhash.methods import losses
from cmhash.methods.ddss import DDSS, DualBranch, kmeans_bank
from method_kit import batch, prepared_net, sized

FAST = {"hidden": 32, "feature_dim": 16, "anchors": 16, "neighbours": 4, "tokens": 4, "token_width": 8, "heads": 2}
TERMS = ("intra_contrastive", "inter_contrastive", "instance_hash", "semantic_hash", "quantization", "private_separation")


def method(bits: int = 16, **overrides) -> DDSS:
    return sized(DDSS, bits, **{**FAST, **overrides})


# ---- anchor bank ----------------------------------------------------------------------------------

def test_kmeans_bank_gives_seeded_centres_not_training_rows():
    x = np.random.default_rng(0).normal(size=(200, 12)).astype(np.float32)
    bank = kmeans_bank(x, 8, seed=3)
    assert bank.shape == (8, 12) and bank.dtype == torch.float32
    assert torch.equal(bank, kmeans_bank(x, 8, seed=3))
    # every centre is the mean of the rows nearest to it (a k-means fixed point, up to the last step)
    nearest = ((x[:, None, :] - bank.numpy()[None]) ** 2).sum(-1).argmin(1)
    means = np.stack([x[nearest == c].mean(0) for c in range(8)])
    assert np.allclose(means, bank.numpy(), atol=0.05)
    assert ((x[:, None, :] - bank.numpy()[None]) ** 2).sum(-1).min() > 1e-3  # no centre is a training row


def test_kmeans_bank_with_few_rows_repeats_them():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    bank = kmeans_bank(x, 5, seed=0)
    assert bank.shape == (5, 4)
    assert {tuple(r) for r in bank.tolist()} == {tuple(r) for r in x.tolist()}


def test_prepare_sets_each_modality_bank_and_save_keeps_it():
    m = method()
    net = prepared_net(m)
    for modality, dim in (("image", 128), ("text", 10)):
        bank = net.branches[modality].graph.bank
        assert bank.shape == (16, dim) and bank.abs().sum() > 0
        assert torch.equal(net.state_dict()[f"branches.{modality}.graph.bank"], bank)


# ---- dual branch module -----------------------------------------------------------------------------

@pytest.mark.parametrize("graph,attention", [(True, True), (True, False), (False, True)])
def test_dual_branch_shapes_and_per_item_independence(graph, attention):
    torch.manual_seed(0)
    block = DualBranch(20, 16, anchors=10, neighbours=3, tokens=4, width=8, depth=1, heads=2, dropout=0.1,
                       graph=graph, attention=attention).eval()
    if graph:
        block.graph.set_bank(torch.randn(10, 20))
    x = torch.randn(6, 20)
    with torch.no_grad():
        g, a, f = block(x)
        assert f.shape == (6, 16)
        assert (g is not None) == graph and (a is not None) == attention
        alone = torch.cat([block(x[i:i + 1])[2] for i in range(6)])
        other = x.clone()
        other[1:] = torch.randn(5, 20)
        changed = block(other)[2]
    assert torch.allclose(alone, f, atol=1e-5)
    assert torch.allclose(changed[0], f[0], atol=1e-5)


def test_both_branches_off_is_a_clear_error():
    with pytest.raises(ValueError, match="graph_branch and attention_branch"):
        method(components={"graph_branch": False, "attention_branch": False}).build_network()


# ---- loss terms ----------------------------------------------------------------------------------------

def slow_semantic(hi: torch.Tensor, ht: torch.Tensor, y: torch.Tensor, protos: torch.Tensor | None, t: float) -> float:
    """Reference: loops over anchors; target = positive weights normalised, cross-entropy with softmax of cos / t."""
    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    def contrast(anchors, others, weights):
        out = []
        for i, a in enumerate(anchors):
            w = [float(weights[i][j]) for j in range(len(others))]
            if sum(w) == 0:
                continue
            logits = [cos(a, o) / t for o in others]
            lse = math.log(sum(math.exp(v) for v in logits))
            out.append(-sum(wj / sum(w) * (lj - lse) for wj, lj in zip(w, logits)))
        return sum(out) / len(out)

    s = [[cos(y[i], y[j]) if y[i].sum() and y[j].sum() else 0.0 for j in range(len(y))] for i in range(len(y))]
    st = [list(r) for r in zip(*s)]
    paths = [(contrast(hi, ht, s) + contrast(ht, hi, st)) / 2]
    if protos is not None:
        paths.append(contrast(list(hi) + list(ht), protos, list(y) + list(y)))
    return sum(paths) / len(paths)


@pytest.mark.parametrize("prototypes", [True, False])
def test_semantic_hash_matches_slow_reference(prototypes):
    m = method(components={"class_prototypes": prototypes})
    net = prepared_net(m)
    g = torch.Generator().manual_seed(5)
    hi, ht = torch.tanh(torch.randn(6, 16, generator=g)), torch.tanh(torch.randn(6, 16, generator=g))
    y = (torch.rand(6, 5, generator=g) < 0.5).float()
    y[0] = 0  # an item without labels is left out as an anchor
    got = m.semantic_hash(net, hi, ht, y).item()
    want = slow_semantic(hi, ht, y, net.prototypes.detach() if prototypes else None, m.config["hash_temperature"])
    assert got == pytest.approx(want, rel=1e-5)


def test_semantic_hash_hand_value():
    """Orthogonal one-hot codes, labels and prototypes: every path is log(1 + e^(-1/t))."""
    m = method(bits=2, components={"class_prototypes": True})
    m.num_labels = 2
    net = m.build_network()
    with torch.no_grad():
        net.prototypes.copy_(torch.eye(2))
    eye = torch.eye(2)
    t = m.config["hash_temperature"]
    assert m.semantic_hash(net, eye, eye, eye).item() == pytest.approx(math.log(1 + math.exp(-1 / t)), rel=1e-6)


def test_every_term_is_present_finite_and_has_gradients():
    m = method()
    net = prepared_net(m)
    terms = m.loss_terms(net, batch())
    assert set(terms) == set(TERMS)
    for name, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), name
        grads = torch.autograd.grad(value, list(net.parameters()), allow_unused=True, retain_graph=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_intra_term_needs_both_branches_and_zero_weight_skips_a_term():
    m = method(components={"graph_branch": False}, losses={"quantization": 0.0})
    terms = m.loss_terms(prepared_net(m), batch())
    assert set(terms) == set(TERMS) - {"intra_contrastive", "quantization"}


@pytest.mark.parametrize("case", ["saturated", "identical_labels", "single_label", "no_labels"])
def test_no_nan_at_extremes(case):
    m = method()
    net = prepared_net(m)
    n = 8
    labels = {"saturated": torch.eye(5)[torch.arange(n) % 5], "identical_labels": torch.ones(n, 5),
              "single_label": torch.eye(5)[torch.zeros(n, dtype=torch.long)], "no_labels": torch.zeros(n, 5)}[case]
    b = batch(n, labels=labels)
    if case == "saturated":  # inputs scaled so the tanh heads saturate at ±1
        b["image"], b["text"] = b["image"] * 1e4, b["text"] * 1e4
    terms = m.loss_terms(net, b)
    total = sum(terms.values())
    total.backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


# ---- learned graph and private-feature elimination ------------------------------------------------

def test_learned_graph_weights_come_from_trained_query_and_key_maps():
    torch.manual_seed(0)
    graph = DualBranch(20, 16, anchors=10, neighbours=3, tokens=4, width=8, depth=1, heads=2, dropout=0.0,
                       graph=True, attention=False, learned_graph=True).graph
    graph.set_bank(torch.randn(10, 20))
    x = torch.randn(5, 20)
    w, idx = graph.edge_weights(x)
    assert torch.allclose(w.sum(1), torch.ones(5)) and idx.shape == (5, 3)
    # the same neighbours as the fixed graph, different weights, and the weights carry gradient to W_q, W_k
    fixed = DualBranch(20, 16, anchors=10, neighbours=3, tokens=4, width=8, depth=1, heads=2, dropout=0.0,
                       graph=True, attention=False, learned_graph=False).graph
    fixed.set_bank(graph.bank)
    w_fixed, idx_fixed = fixed.edge_weights(x)
    assert torch.equal(idx, idx_fixed) and not torch.allclose(w, w_fixed)
    (w * torch.randn_like(w)).sum().backward()
    assert graph.query.weight.grad.abs().sum() > 0 and graph.key.weight.grad.abs().sum() > 0


def test_private_part_is_kept_out_of_the_code():
    net = prepared_net(method()).eval()
    x = batch(6)["image"]
    with torch.no_grad():
        enc = net.parts("image", x)
        assert enc.private.shape == (6, 64) and enc.common.shape == enc.feature.shape
        torch.testing.assert_close(enc.code, net.hash["image"](enc.common))
        # the private map can change arbitrarily without changing any code
        for p in net.split["image"].private.parameters():
            p.add_(torch.randn_like(p))
        torch.testing.assert_close(net.encode("image", x), enc.code)


def test_private_separation_is_reconstruction_plus_excess_correlation():
    m = method()
    net = prepared_net(m)
    b = batch(12)
    enc = net.parts("text", b["text"])
    rebuilt = net.split["text"].decoder(torch.cat([enc.common, enc.private], 1))
    expect = ((rebuilt - b["text"]) ** 2).mean() + losses.excess_cross_correlation(enc.common, enc.private)
    torch.testing.assert_close(m.private_separation(net, "text", enc, b["text"]), expect)


def test_without_private_elimination_the_code_reads_the_fused_feature():
    m = method(components={"private_elimination": False})
    net = prepared_net(m).eval()
    assert net.split is None
    x = batch(4)["text"]
    with torch.no_grad():
        enc = net.parts("text", x)
        assert enc.common is None and enc.private is None
        torch.testing.assert_close(enc.code, net.hash["text"](enc.feature))
    assert "private_separation" not in m.loss_terms(net, batch())
