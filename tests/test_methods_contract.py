"""The contract every registered method keeps (the estimator API and per-item codes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from method_kit import batch, prepared_net, sized

from cmhash.data import DataError, make_synthetic
from cmhash.methods import HashMethod, available_methods, get_method
from cmhash.methods.deep import DeepHashMethod

BITS = 16


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n=360, image_dim=40, text_dim=12, num_labels=5, n_query=60, n_train=240, seed=1)


def quick(name: str, **kw) -> HashMethod:
    cls = get_method(name)
    if not issubclass(cls, DeepHashMethod) and cls.default_config().get("anchors", 0) > 100:
        kw.setdefault("anchors", 100)  # kernel anchors are drawn from the 240 training items
    if issubclass(cls, DeepHashMethod):
        kw.setdefault("train", {"epochs": 2, "val_fraction": 0, "progress": False})
    return cls(bits=BITS, seed=0, **kw)


@pytest.fixture(scope="module")
def fitted(tiny):
    return {name: quick(name).fit(tiny) for name in available_methods()}


@pytest.mark.parametrize("name", available_methods())
def test_codes_are_pm1_of_the_right_shape(name, fitted, tiny):
    q = tiny.split("query")
    for codes in (fitted[name].encode_image(q.image), fitted[name].encode_text(q.text)):
        assert codes.shape == (len(q), BITS) and codes.dtype == np.int8
        assert set(np.unique(codes)) <= {-1, 1}


@pytest.mark.parametrize("name", available_methods())
def test_code_of_an_item_depends_on_that_item_alone(name, fitted, tiny):
    """An image's code does not change with its paired text or the other items in the batch."""
    model, q = fitted[name], tiny.split("query")
    rng = np.random.default_rng(0)
    for encode, x in ((model.encode_image, q.image), (model.encode_text, q.text)):
        batch = encode(x)
        alone = np.concatenate([encode(x[i:i + 1]) for i in range(8)])
        assert np.array_equal(alone, batch[:8])
        other = x.copy()
        other[1:] = rng.normal(size=other[1:].shape).astype(np.float32)  # every other item changes
        assert np.array_equal(encode(other)[0], batch[0])
        assert np.array_equal(encode(x[::-1])[::-1], batch)


@pytest.mark.parametrize("name", available_methods())
def test_save_load_round_trip(name, fitted, tiny, tmp_path):
    model, q = fitted[name], tiny.split("query")
    model.save(tmp_path / "m.pt")
    back = HashMethod.load(tmp_path / "m.pt")
    assert type(back) is type(model) and back.bits == BITS and back.config == model.config
    assert np.array_equal(back.encode_image(q.image), model.encode_image(q.image))
    assert np.array_equal(back.encode_text(q.text), model.encode_text(q.text))


@pytest.mark.parametrize("name", available_methods())
def test_same_seed_same_codes(name, fitted, tiny):
    again = quick(name).fit(tiny)
    q = tiny.split("query")
    assert np.array_equal(again.encode_image(q.image), fitted[name].encode_image(q.image))


@pytest.mark.parametrize("name", available_methods())
def test_bad_input_is_named(name, fitted):
    model = fitted[name]
    with pytest.raises(DataError, match="image"):
        model.encode_image(np.zeros((3, 7), np.float32))
    with pytest.raises(DataError, match="NaN"):
        model.encode_text(np.full((2, 12), np.nan, np.float32))


ABLATABLE = [n for n in available_methods() if issubclass(get_method(n), DeepHashMethod) and get_method(n).ablations]


@pytest.mark.parametrize("name", ABLATABLE)
def test_every_ablation_switches_off_one_known_part(name):
    """What ``bench --ablate`` removes is a real component or loss term, and the rest still gives finite losses."""
    cls = get_method(name)
    for part in cls.ablations:
        overrides = sized(cls).ablation_overrides(part)
        assert overrides in ({"components": {part: False}}, {"losses": {part: 0.0}}), part
        ablated = sized(cls, **overrides)
        assert (not ablated.enabled(part)) if part in ablated.config["components"] else ablated.weight(part) == 0
        terms = ablated.loss_terms(prepared_net(ablated), batch())
        assert all(torch.isfinite(v) for v in terms.values()), part


def test_unknown_config_key_is_an_error():
    with pytest.raises(KeyError, match="unknown config key"):
        get_method(available_methods()[0])(bits=8, no_such_key=1)


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a model")
    with pytest.raises(DataError, match="bad.pt"):
        HashMethod.load(path)
