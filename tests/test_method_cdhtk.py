"""CDHTK: the shared losses it adds, each network's own codes, the loss terms. Per-item codes, save/load
and ±1 codes are the contract tests'."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cmhash.data import CrossModalDataset
from cmhash.methods import losses
from cmhash.methods.cdhtk import CDHTK, CDHTKNetwork

SMALL = {"hidden": 32, "common_dim": 16,
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


def built(data: CrossModalDataset, bits: int = 16, **config) -> tuple[CDHTK, CDHTKNetwork]:
    method = CDHTK(bits=bits, seed=0, **{**SMALL, **config})
    method.dims, method.num_labels = data.dims, data.num_labels
    torch.manual_seed(0)
    net = method.build_network()
    method.prepare(net, data)
    return method, net


def batch_of(data: CrossModalDataset) -> dict[str, torch.Tensor]:
    return {"image": torch.from_numpy(data.image), "text": torch.from_numpy(data.text),
            "labels": torch.from_numpy(data.labels).float(), "index": torch.arange(len(data))}


# ---- shared losses added for CDHTK -----------------------------------------------------------------
def test_code_triplet_hand_checked():
    # 2-bit codes, sim = <a, o> / 2. Anchor 0 (label A): positive text 0 (sim 1), negative text 1 (sim 0).
    a = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    o = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    la = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # anchor 0: p=0 (sim 1), n=1 (sim 0.5) -> relu(0.75 - 1 + 0.5) = 0.25
    # anchor 1: p=1 (sim 0.5), n=0 (sim 0) -> relu(0.75 - 0.5 + 0) = 0.25
    assert losses.code_triplet(a, o, la, lb, margin=0.75).item() == pytest.approx(0.25)


@torch.no_grad()
def slow_code_triplet(a: torch.Tensor, o: torch.Tensor, y: torch.Tensor, margin: float) -> float:
    total, count = 0.0, 0
    for i, p, n in itertools.product(range(len(a)), repeat=3):
        if (y[i] * y[p]).sum() > 0 and (y[i] * y[n]).sum() == 0:
            total += max(0.0, margin - float(a[i] @ o[p]) / a.shape[1] + float(a[i] @ o[n]) / a.shape[1])
            count += 1
    return total / max(count, 1)


def test_code_triplet_matches_slow_reference_and_has_no_triplets_without_negatives():
    g = torch.Generator().manual_seed(0)
    a, o = torch.tanh(torch.randn(7, 8, generator=g)), torch.tanh(torch.randn(7, 8, generator=g))
    y = (torch.rand(7, 3, generator=g) < 0.4).float()
    assert losses.code_triplet(a, o, y, y, 0.5).item() == pytest.approx(slow_code_triplet(a, o, y, 0.5), rel=1e-5)
    same = torch.ones(7, 3)
    assert losses.code_triplet(a, o, same, same, 0.5).item() == 0.0


def test_cross_correlation_matches_numpy_and_is_scale_free():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 3, generator=g), torch.randn(20, 4, generator=g)
    ref = np.corrcoef(a.numpy().T, b.numpy().T)[:3, 3:]
    assert losses.cross_correlation(a, b).item() == pytest.approx(float((ref**2).mean()), rel=1e-5)
    assert losses.cross_correlation(5 * a + 2, b).item() == pytest.approx(losses.cross_correlation(a, b).item(), rel=1e-5)
    assert losses.cross_correlation(a, -3 * a).item() == pytest.approx(float((np.corrcoef(a.numpy().T) ** 2).mean()), rel=1e-5)
    orth = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert losses.cross_correlation(orth[:, :1], orth[:, 1:]).item() == pytest.approx(0.0, abs=1e-7)


def test_cross_correlation_of_constant_features_is_zero_with_finite_gradient():
    a = torch.ones(6, 3, requires_grad=True)
    b = torch.randn(6, 2, requires_grad=True)
    value = losses.cross_correlation(a, b)
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


# ---- excess correlation (the differential loss) -------------------------------------------------------
def test_excess_cross_correlation_is_zero_at_chance_and_gains_nothing_from_collapse():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(128, 64, generator=g), torch.randn(128, 64, generator=g)
    # independent features: the plain mean squared correlation sits at its floor 1/(B-1) ...
    assert losses.cross_correlation(a, b).item() == pytest.approx(1 / 127, rel=0.05)
    # ... which the excess form removes, so a collapsed (constant) representation is no better
    assert losses.excess_cross_correlation(a, b).item() < 2e-4
    assert losses.excess_cross_correlation(torch.ones(128, 64), b).item() == 0.0
    assert losses.excess_cross_correlation(a, 2 * a + 1).item() == pytest.approx(
        (losses.cross_correlation(a, a).item() - 1 / 127) / (1 - 1 / 127), rel=1e-5)


# ---- network ---------------------------------------------------------------------------------------
def test_each_network_forms_its_own_code_and_an_item_is_coded_by_its_modality_network():
    data = tiny_data(n=6)
    _, net = built(data, components={"fused_code": False})
    net.eval()
    for m in ("image", "text"):
        x = torch.from_numpy(getattr(data, m))
        enc = net.parts(m, x)
        z, z_k = net.towers[m](x)[1], net.knowledge(net.adapters[m](x))[1]
        torch.testing.assert_close(enc.code, torch.tanh(z))
        torch.testing.assert_close(enc.knowledge_code, torch.tanh(z_k))
        torch.testing.assert_close(enc.fused, torch.tanh(z + z_k))
        torch.testing.assert_close(net.encode(m, x), enc.code)
        assert not torch.allclose(enc.code, enc.knowledge_code)


def test_fused_code_is_the_retrieved_code_and_is_supervised():
    data = tiny_data(n=8)
    method, net = built(data)
    net.eval()
    x = torch.from_numpy(data.text)
    torch.testing.assert_close(net.encode("text", x), net.parts("text", x).fused)
    terms = method.loss_terms(net, batch_of(data))
    own_only, own_net = built(data, components={"fused_code": False})
    own_net.load_state_dict(net.state_dict())
    own_net.eval()
    # the fused pair adds a third set of codes to label prediction and triplet-quantization
    assert terms["label_prediction"] != own_only.loss_terms(own_net, batch_of(data))["label_prediction"]


def test_knowledge_network_off_gives_no_transfer_and_no_differential():
    data = tiny_data(n=8)
    method, net = built(data, components={"knowledge_network": False})
    assert net.knowledge is None and net.adapters is None
    assert set(method.loss_terms(net, batch_of(data))) == {"label_prediction", "triplet_quantization"}


def test_knowledge_trunk_learns_from_both_modalities():
    data = tiny_data(n=8)
    _, net = built(data)
    for m in ("image", "text"):
        net.zero_grad()
        net.parts(m, torch.from_numpy(getattr(data, m))).knowledge_code.sum().backward()
        assert net.knowledge.hash.weight.grad.abs().sum() > 0
        other = "text" if m == "image" else "image"
        assert all(p.grad is None or not p.grad.any() for p in net.towers[other].parameters())


# ---- loss terms ------------------------------------------------------------------------------------
def test_loss_terms_match_their_definitions():
    data = tiny_data(n=8, dims=(12, 5))
    method, net = built(data)
    net.eval()
    batch = batch_of(data)
    terms = method.loss_terms(net, batch)
    assert set(terms) == {"label_prediction", "triplet_quantization", "knowledge_transfer", "differential"}
    y = batch["labels"]
    img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])
    pairs = [(img.code, txt.code), (img.knowledge_code, txt.knowledge_code), (img.fused, txt.fused)]

    def bce(code: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(net.classifier(code))
        return -(y * p.log() + (1 - y) * (1 - p).log()).mean()

    torch.testing.assert_close(terms["label_prediction"], sum(bce(h) for pair in pairs for h in pair) / 6)
    c = method.config

    def tq(hi, ht):
        both = torch.cat([hi, ht])
        return ((slow_code_triplet(hi, ht, y, c["margin"]) + slow_code_triplet(ht, hi, y, c["margin"])) / 2
                + c["quantization_mu"] * ((both - both.sign()) ** 2).mean().item())

    assert terms["triplet_quantization"].item() == pytest.approx(sum(tq(*p) for p in pairs) / 3, rel=1e-5)
    k = method.bits
    expect = ((img.code @ txt.code.T / k - img.knowledge_code @ txt.knowledge_code.T / k) ** 2).mean()
    torch.testing.assert_close(terms["knowledge_transfer"], expect)
    diff = (losses.excess_cross_correlation(img.own, img.knowledge)
            + losses.excess_cross_correlation(txt.own, txt.knowledge)) / 2
    torch.testing.assert_close(terms["differential"], diff)


def test_transfer_teaches_the_modality_networks_only():
    data = tiny_data(n=16)
    method, net = built(data)
    img, txt = net.parts("image", torch.from_numpy(data.image)), net.parts("text", torch.from_numpy(data.text))
    method.knowledge_transfer(img, txt).backward()
    assert net.towers["image"].hash.weight.grad.abs().sum() > 0
    assert net.knowledge.hash.weight.grad is None  # the teacher is detached


def test_disabled_terms_are_not_computed():
    data = tiny_data(n=8)
    method, net = built(data, losses={"label_prediction": 0.0, "differential": 0.0})
    assert set(method.loss_terms(net, batch_of(data))) == {"triplet_quantization", "knowledge_transfer"}


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
            for tower in (*net.towers.values(), net.knowledge):
                tower.hash.weight.mul_(1e4)
    terms = method.loss_terms(net, batch_of(data))
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
