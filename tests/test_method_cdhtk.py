"""CDHTK: the shared losses it adds, fusion, loss terms, per-item codes, persistence, training."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from cmhash.data import CrossModalDataset
from cmhash.methods import get_method, losses
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


# ---- network ---------------------------------------------------------------------------------------
def test_code_fuses_own_and_knowledge_logits_of_the_same_item():
    data = tiny_data(n=6)
    _, net = built(data)
    net.eval()
    for m in ("image", "text"):
        x = torch.from_numpy(getattr(data, m))
        _, z = net.towers[m](x)
        _, z_k = net.knowledge(net.adapters[m](x))
        torch.testing.assert_close(net.encode(m, x), torch.tanh(z + z_k))


def test_knowledge_network_off_gives_modality_codes_and_no_differential():
    data = tiny_data(n=8)
    method, net = built(data, components={"knowledge_network": False})
    assert net.knowledge is None and net.adapters is None
    net.eval()
    x = torch.from_numpy(data.image)
    torch.testing.assert_close(net.encode("image", x), torch.tanh(net.towers["image"](x)[1]))
    assert set(method.loss_terms(net, batch_of(data))) == {"label_prediction", "triplet_quantization"}


def test_knowledge_trunk_learns_from_both_modalities():
    data = tiny_data(n=8)
    _, net = built(data)
    for m in ("image", "text"):
        net.zero_grad()
        net.encode(m, torch.from_numpy(getattr(data, m))).sum().backward()
        assert net.knowledge.hash.weight.grad.abs().sum() > 0
        other = "text" if m == "image" else "image"
        assert all(p.grad is None or not p.grad.any() for p in net.towers[other].parameters())


@pytest.mark.parametrize("knowledge", [True, False])
def test_codes_depend_on_the_item_alone(knowledge):
    data = tiny_data(n=10)
    _, net = built(data, components={"knowledge_network": knowledge})
    net.eval()
    for m in ("image", "text"):
        x = torch.from_numpy(getattr(data, m))
        full = net.encode(m, x)
        others = x.clone()
        others[[0, 1, 2, 4]] = torch.randn_like(others[[0, 1, 2, 4]]) * 10
        torch.testing.assert_close(net.encode(m, x[3:4])[0], full[3])
        torch.testing.assert_close(net.encode(m, others)[3], full[3])


# ---- loss terms ------------------------------------------------------------------------------------
def test_loss_terms_match_their_definitions():
    data = tiny_data(n=8, dims=(12, 5))
    method, net = built(data)
    net.eval()
    batch = batch_of(data)
    terms = method.loss_terms(net, batch)
    assert set(terms) == {"label_prediction", "triplet_quantization", "differential"}
    y = batch["labels"]
    img, txt = net.parts("image", batch["image"]), net.parts("text", batch["text"])

    def bce(code: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(net.classifier(code))
        return -(y * p.log() + (1 - y) * (1 - p).log()).mean()

    torch.testing.assert_close(terms["label_prediction"], (bce(img.code) + bce(txt.code)) / 2)
    c = method.config
    triplet = (slow_code_triplet(img.code, txt.code, y, c["margin"]) + slow_code_triplet(txt.code, img.code, y, c["margin"])) / 2
    both = torch.cat([img.code, txt.code])
    expect = triplet + c["quantization_mu"] * ((both - both.sign()) ** 2).mean().item()
    assert terms["triplet_quantization"].item() == pytest.approx(expect, rel=1e-5)
    diff = (losses.cross_correlation(img.own, img.knowledge) + losses.cross_correlation(txt.own, txt.knowledge)) / 2
    torch.testing.assert_close(terms["differential"], diff)


def test_disabled_terms_are_not_computed():
    data = tiny_data(n=8)
    method, net = built(data, losses={"label_prediction": 0.0, "differential": 0.0})
    assert set(method.loss_terms(net, batch_of(data))) == {"triplet_quantization"}


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


# ---- persistence, training -------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [16, 128])
def test_training_gives_sign_codes_and_round_trips(bits, tmp_path):
    data = tiny_data(n=64, dims=(128, 10), multi=bits == 16)
    model = get_method("cdhtk")(bits=bits, seed=0, **SMALL).fit(data)
    for c in (model.encode_image(data.image[:7]), model.encode_text(data.text[:7])):
        assert c.shape == (7, bits) and set(np.unique(c)) <= {-1, 1}
    model.save(tmp_path / "m.pt")
    loaded = get_method("cdhtk").load(tmp_path / "m.pt")
    assert np.array_equal(loaded.image_outputs(data.image), model.image_outputs(data.image))
    assert np.array_equal(loaded.text_outputs(data.text), model.text_outputs(data.text))

