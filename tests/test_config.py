"""The one config module: defaults, merging, the override dialect, profiles and search spaces."""

from __future__ import annotations

import pytest

from cmhash.config import (SearchParam, flatten, gather, merge, method_search_space, nest, resolve, route)
from cmhash.errors import ConfigError
from cmhash.methods import get_method
from cmhash.methods.registry import available_methods


def defaults(*methods):
    return {m: get_method(m).default_config() for m in methods}


def test_scoped_and_unscoped_overrides_route_to_methods():
    per = route([("train.epochs", 3), ("dcmh.hidden", 16), ("hidden", 64), ("ddss.hidden", 8)],
                defaults("cca_itq", "dcmh", "ddss"))
    assert per["dcmh"] == {"train": {"epochs": 3}, "hidden": 64}  # later wins
    assert per["ddss"] == {"train": {"epochs": 3}, "hidden": 8} and per["cca_itq"] == {}


@pytest.mark.parametrize("items, match", [
    ([("train.no_such", 1)], "no selected method has config key 'train.no_such'"),
    ([("dcmh.no_such", 1)], "method 'dcmh' has no config key 'no_such'"),
    ([("scm.reg", 1)], "no selected method"),  # scoped to a method that is not selected
])
def test_override_typos_are_named_errors(items, match):
    with pytest.raises(ConfigError, match=match):
        route(items, defaults("dcmh", "ddss"))


def test_config_file_uses_the_same_dialect(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dcmh:\n  hidden: 16\n  losses: {quantization: 0.5}\ntrain:\n  epochs: 2\n")
    items = gather(str(path), ["dcmh.hidden=32"])
    assert resolve("dcmh", get_method("dcmh").default_config(), items) == {
        "hidden": 32, "losses": {"quantization": 0.5}, "train": {"epochs": 2}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        gather(None, ["hidden"])
    with pytest.raises(ConfigError, match="does not exist"):
        gather(str(tmp_path / "missing.yaml"))


def test_merge_nest_flatten():
    assert nest(flatten({"a": {"b": 1, "c": {}}, "d": 2})) == {"a": {"b": 1, "c": {}}, "d": 2}
    assert merge({"a": {"b": 1}}, {"a": {"c": 2}}, where="x", strict=False) == {"a": {"b": 1, "c": 2}}
    with pytest.raises(ConfigError, match="unknown config key 'c'"):
        merge({"a": {"b": 1}}, {"a": {"c": 2}}, where="x")


def test_every_method_has_a_valid_search_space_and_deep_methods_share_the_budget_ranges():
    spaces = {m: method_search_space(m, get_method(m).deep) for m in available_methods()}
    assert all(spaces.values())
    deep = [m for m in spaces if get_method(m).deep]
    assert len(deep) >= 7
    for key in ("train.lr", "hidden"):
        assert len({spaces[m][key] for m in deep}) == 1, key  # equal width and learning-rate ranges
    assert "search" not in get_method("dcmh").default_config()


@pytest.mark.parametrize("spec", [{"float": [1, 0]}, {"int": [1]}, {"choice": []}, {"float": [0, 1], "log": True},
                                  {"floaty": [0, 1]}, [0, 1]])
def test_bad_search_specs_are_named(spec):
    with pytest.raises(ConfigError, match="'k'"):
        SearchParam.parse("k", spec, where="test")
