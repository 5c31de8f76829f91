"""SDEH: the MMD loss against a slow reference, the blocks' per-item independence, each loss term's
values and gradients, save/load, and short training runs on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cmhash.methods import losses
from cmhash.methods.sdeh import (SDEH, FeatureSubnetwork, SemanticDecomposition, code_consistency, graded_target,
                                 multilevel_similarity, slot_alignment)
from method_kit import batch, sized

FAST = {"hidden": 32, "feature_dim": 16, "tokens": 4, "token_width": 8, "heads": 2, "label_hidden": 16,
        "losses": {"slot_alignment": 1.0}, "components": {"label_slots": True}}
TERMS = ("multilevel_similarity", "slot_alignment", "cross_modal_consistency", "label_prediction",
         "distribution_consistency", "quantization")




def method(bits: int = 16, **overrides) -> SDEH:
    config = {**FAST, **overrides}
    for key in ("losses", "components"):
        config[key] = {**FAST[key], **overrides.get(key, {})}
    return sized(SDEH, bits, **config)




# ---- gaussian_mmd (shared loss) -------------------------------------------------------------------

def slow_mmd(a: np.ndarray, b: np.ndarray, scales: tuple[float, ...]) -> float:
    x = np.concatenate([a, b])
    d2 = np.array([[np.sum((p - q) ** 2) for q in x] for p in x])
    m = d2.mean()

    def k(p: np.ndarray, q: np.ndarray) -> float:
        return sum(math.exp(-np.sum((p - q) ** 2) / (s * m)) for s in scales)

    kaa = np.mean([[k(p, q) for q in a] for p in a])
    kbb = np.mean([[k(p, q) for q in b] for p in b])
    kab = np.mean([[k(p, q) for q in b] for p in a])
    return kaa + kbb - 2 * kab


def test_mmd_matches_slow_reference() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(7, 3)) + 1.0
    got = losses.gaussian_mmd(torch.tensor(a), torch.tensor(b), (0.5, 2.0)).item()
    assert got == pytest.approx(slow_mmd(a, b, (0.5, 2.0)), rel=1e-9, abs=1e-12)


def test_mmd_hand_value_and_invariants() -> None:
    # two single points at squared distance 1: pooled mean d2 = 2 * 1 / 4 = 0.5; one scale s = 1
    a, b = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    assert losses.gaussian_mmd(a, b, (1.0,)).item() == pytest.approx(2 - 2 * math.exp(-2.0))
    x = torch.randn(8, 4)
    assert losses.gaussian_mmd(x, x[torch.randperm(8)]).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.gaussian_mmd(x, x + 3).item() > 0.1
    # scale-free: shrinking both batches does not lower it
    y = torch.randn(8, 4) + 1
    assert losses.gaussian_mmd(x, y).item() == pytest.approx(losses.gaussian_mmd(x / 100, y / 100).item(), rel=1e-4)


def test_mmd_gradients_finite_for_identical_points() -> None:
    a = torch.ones(4, 3, requires_grad=True)
    b = torch.ones(4, 3, requires_grad=True)
    out = losses.gaussian_mmd(a, b)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    a2 = torch.randn(6, 3, requires_grad=True)
    losses.gaussian_mmd(a2, torch.randn(5, 3) + 2).backward()
    assert a2.grad.abs().sum() > 0


# ---- blocks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("local,global_view", [(True, True), (True, False), (False, True)])
def test_feature_subnetwork_shapes_and_per_item(local: bool, global_view: bool) -> None:
    torch.manual_seed(0)
    net = FeatureSubnetwork(128, 16, 32, 4, 8, 1, 2, 0.1, local, global_view).eval()
    x = torch.randn(6, 128)
    out = net(x)
    assert out.shape == (6, 16)
    alone = torch.cat([net(x[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)
    other = torch.cat([x[:1], torch.randn(5, 128)])
    torch.testing.assert_close(net(other)[0], out[0], atol=1e-5, rtol=1e-5)


def test_feature_subnetwork_needs_a_view() -> None:
    with pytest.raises(ValueError, match="cannot both be off"):
        FeatureSubnetwork(128, 16, 32, 4, 8, 1, 2, 0.1, False, False)


def test_semantic_decomposition_attends_per_item_over_classes() -> None:
    torch.manual_seed(0)
    dec = SemanticDecomposition(num_labels=5, dim=16)
    f = torch.randn(7, 16)
    a = dec.attention(f)
    assert a.shape == (7, 5)
    torch.testing.assert_close(a.sum(dim=1), torch.ones(7))
    out, used = dec(f)
    assert out.shape == (7, 16)
    torch.testing.assert_close(used, a)
    # by hand: LayerNorm(f + softmax(q(f) k(E)^T / sqrt(d)) v(E)) for item 3 alone
    q, k, v = dec.query(f[3]), dec.key(dec.classes), dec.value(dec.classes)
    ref = dec.norm(f[3] + torch.softmax(k @ q / 4.0, dim=0) @ v)
    torch.testing.assert_close(out[3], ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dec(f[3:4])[0][0], out[3], atol=1e-5, rtol=1e-5)
    # given attention (the teacher's own classes) replaces the learned one
    given = torch.eye(5)[[0, 1, 2, 3, 4, 0, 1]]
    out2, used2 = dec(f, given)
    torch.testing.assert_close(used2, given)
    torch.testing.assert_close(out2[0], dec.norm(f[0] + v[0]), atol=1e-5, rtol=1e-5)


def test_components_switch_parts_off() -> None:
    net = method(components={"semantic_decomposition": False, "label_teacher": False,
                             "local_attention": False}).build_network()
    assert net.decomposition is None and net.label_net is None
    assert net.branches["image"].local is None and net.branches["image"].global_view is not None
    with pytest.raises(RuntimeError, match="teacher"):
        net.parts("labels", torch.zeros(2, 5))


# ---- loss terms -----------------------------------------------------------------------------------

def test_every_term_present_finite_and_gradients_reach_the_encoders() -> None:
    torch.manual_seed(0)
    m = method()
    net = m.build_network()
    terms = m.loss_terms(net, batch())
    assert set(terms) == set(TERMS)
    for name, value in terms.items():
        assert value.ndim == 0 and torch.isfinite(value), name
        net.zero_grad()
        value.backward(retain_graph=True)
        grad = sum(p.grad.abs().sum() for p in net.branches["image"].parameters() if p.grad is not None)
        assert grad > 0, f"{name} does not reach the image subnetwork"


def test_disabled_terms_are_not_computed() -> None:
    m = method(losses={"distribution_consistency": 0.0, "label_prediction": 0.0})
    terms = m.loss_terms(m.build_network(), batch())
    assert set(terms) == set(TERMS) - {"distribution_consistency", "label_prediction"}


def test_consistency_hand_values() -> None:
    image, text, teacher = torch.zeros(2, 4), torch.ones(2, 4), torch.full((2, 4), 0.5)
    # without teacher: mean (0 - 1)^2 = 1; with: mean of 1, 0.25, 0.25
    assert code_consistency(image, text, None).item() == pytest.approx(1.0)
    assert code_consistency(image, text, teacher).item() == pytest.approx(1.5 / 3)
    image.requires_grad_(True)
    teacher.requires_grad_(True)
    code_consistency(image, text, teacher).backward()
    assert image.grad is not None and teacher.grad is None  # the teacher learns from the labels only


def test_multilevel_similarity_hand_values() -> None:
    y = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 1]])
    # zero codes: theta = 0 everywhere, loss = log 2 whatever the labels
    assert multilevel_similarity(torch.zeros(3, 4), y, 8.0, 0.5).item() == pytest.approx(math.log(2))
    # slow reference: -mean(t log sigma(theta) + (1 - t) log(1 - sigma(theta))), theta = scale <h_i, h_j> / k,
    # t = floor [shared label] + (1 - floor) cosine
    h = torch.tensor([[0.9, -0.5], [0.3, 0.8], [-0.7, -0.2]])
    c = 1 / math.sqrt(2)
    for scale, floor in ((1.0, 0.0), (6.0, 0.5)):
        t = [[1, floor + (1 - floor) * c, 0], [floor + (1 - floor) * c, 1, 0], [0, 0, 1]]
        ref = 0.0
        for i in range(3):
            for j in range(3):
                theta = scale * float(h[i] @ h[j]) / 2
                p = 1 / (1 + math.exp(-theta))
                ref -= t[i][j] * math.log(p) + (1 - t[i][j]) * math.log(1 - p)
        assert multilevel_similarity(h, y, scale, floor).item() == pytest.approx(ref / 9, rel=1e-5)


def test_graded_target_keeps_every_relevant_pair_above_random_and_orders_them() -> None:
    y = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 1], [0, 0, 0, 1]])
    t = graded_target(y, y, 0.5)
    assert t[0, 1] == pytest.approx(1.0) and t[0, 4] == 0
    assert t[0, 1] > t[0, 2] > t[0, 3] > 0.5  # cosines 1, 1/2, 1/sqrt(6): all above 1/2, in order


@pytest.mark.parametrize("floor", [0.5, 0.7])
def test_optimum_hamming_distance_is_a_fixed_fraction_of_the_bits(floor: float) -> None:
    """For a pair with graded target t, scan codes with m agreeing bits of k: the best m / k is the same
    for 16 and 64 bits, below 1/2 distance for every relevant pair, and falls as the label overlap grows."""
    scale = 8.0
    y = torch.tensor([[1.0, 1, 0], [1, 1, 0], [1, 0, 1], [1, 0, 0]])
    best = {}
    for k in (16, 64):
        for j, name in ((1, "identical"), (2, "half"), (3, "some")):
            pair_labels = y[[0, j]]
            losses_by_m = []
            for m in range(k + 1):
                a = torch.ones(k)
                b = torch.cat([torch.ones(m), -torch.ones(k - m)])
                losses_by_m.append(multilevel_similarity(torch.stack([a, b]), pair_labels, scale, floor).item())
            best[k, name] = 1 - int(np.argmin(losses_by_m)) / k  # Hamming distance / k at the optimum
    for name in ("identical", "half", "some"):
        assert best[16, name] == pytest.approx(best[64, name], abs=1 / 16)
        assert best[64, name] < 0.5
    assert best[64, "identical"] <= best[64, "some"] <= best[64, "half"]


def test_unlabelled_items_do_not_enter_the_label_terms() -> None:
    torch.manual_seed(0)
    h = torch.tanh(torch.randn(4, 8))
    y = torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    got = multilevel_similarity(h, y, 8.0, 0.5)
    torch.testing.assert_close(got, multilevel_similarity(h[:3], y[:3], 8.0, 0.5))
    a = torch.softmax(torch.randn(4, 3), dim=1)
    torch.testing.assert_close(slot_alignment(a, y), slot_alignment(a[:3], y[:3]))


def test_slot_alignment_hand_value_ties_slot_c_to_label_c() -> None:
    # item of labels {0, 1}: target (1/2, 1/2, 0); attention (0.5, 0.25, 0.25) -> -(log .5 + log .25) / 2
    a = torch.tensor([[0.5, 0.25, 0.25]])
    y = torch.tensor([[1.0, 1, 0]])
    assert slot_alignment(a, y).item() == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)
    assert slot_alignment(torch.tensor([[0.5, 0.5, 0.0]]), y).item() < slot_alignment(a, y).item()


def test_teacher_attends_to_exactly_its_labels() -> None:
    torch.manual_seed(0)
    net = method().build_network()
    y = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
    torch.testing.assert_close(net.parts("labels", y).attention, torch.tensor([[0.5, 0, 0.5, 0, 0], [0, 1.0, 0, 0, 0]]))
    free = method(components={"label_slots": False}).build_network()
    assert not torch.allclose(free.parts("labels", y).attention, torch.tensor([[0.5, 0, 0.5, 0, 0], [0, 1.0, 0, 0, 0]]))


@pytest.mark.parametrize("labels", ["identical", "single", "empty"])
def test_no_nan_at_extremes(labels: str) -> None:
    torch.manual_seed(0)
    m = method()
    net = m.build_network()
    n = 8
    y = {"identical": torch.ones(n, 5), "single": torch.eye(5)[torch.arange(n) % 5],
         "empty": torch.zeros(n, 5)}[labels]
    b = batch(n, labels=y)
    b["image"] = b["image"] * 1e4  # saturates the tanh codes
    terms = m.loss_terms(net, b)
    total = sum(terms.values())
    total.backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
