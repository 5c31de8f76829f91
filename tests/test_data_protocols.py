"""Protocol presets and custom splits: sizes, disjointness, determinism, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from cmhash.data import PROTOCOLS, CrossModalDataset, DataError, apply_protocol, custom_split, load_wiki


def toy(n: int) -> CrossModalDataset:
    rng = np.random.default_rng(1)
    return CrossModalDataset(rng.standard_normal((n, 3)), rng.standard_normal((n, 2)),
                             np.eye(4, dtype=np.uint8)[rng.integers(4, size=n)], name="toy")


def sizes(ds: CrossModalDataset) -> dict[str, int]:
    return {k: len(v) for k, v in ds.splits.items()}


@pytest.mark.parametrize("name, query, train", [
    ("mirflickr25k", 2000, 5000), ("mirflickr25k-dcmh", 2000, 10000), ("nuswide21", 2100, 10500),
    ("mscoco", 5000, 10000), ("iapr", 2000, 10000)])
def test_presets_have_the_papers_sizes(name, query, train):
    assert (PROTOCOLS[name].query, PROTOCOLS[name].train) == (query, train)


def test_mirflickr_preset_on_20015_items():
    ds = apply_protocol(toy(20015), "mirflickr25k", seed=3)
    assert sizes(ds) == {"train": 5000, "query": 2000, "database": 18015}
    q, tr, db = (set(ds.splits[k].tolist()) for k in ("query", "train", "database"))
    assert not q & db and q | db == set(range(20015))  # database = every non-query item
    assert tr <= db  # training items come from the database
    assert all(np.all(np.diff(v) > 0) for v in ds.splits.values())  # sorted, no repeats


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (apply_protocol(toy(12000), "iapr", seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(a.splits[k], b.splits[k]) for k in a.splits)
    assert not np.array_equal(a.splits["query"], c.splits["query"])


def test_split_is_uniform_over_items():
    """Slow reference: over many seeds every item is a query about query/n of the time."""
    n, q = 200, 50
    hits = np.zeros(n)
    for seed in range(400):
        hits[custom_split(toy(n), query=q, train=20, seed=seed).splits["query"]] += 1
    freq = hits / 400
    assert abs(freq.mean() - q / n) < 1e-12
    assert np.abs(freq - q / n).max() < 0.12  # binomial(400, .25): sd .022, 5 sd margin


def test_too_few_items_is_a_clear_error():
    with pytest.raises(DataError, match=r"protocol 'nuswide21' needs 2,100 query \+ 10,500 training items.*12,000"):
        apply_protocol(toy(12000), "nuswide21")


def test_custom_split_counts_fractions_and_held_out_training():
    ds = toy(100)
    assert sizes(custom_split(ds, query=10, train=30)) == {"train": 30, "query": 10, "database": 90}
    assert sizes(custom_split(ds, query=0.2, train=0.5)) == {"train": 50, "query": 20, "database": 80}
    assert sizes(custom_split(ds, query=10)) == {"train": 90, "query": 10, "database": 90}
    held = custom_split(ds, query=10, train=30, train_from_database=False)
    assert sizes(held) == {"train": 30, "query": 10, "database": 60}
    parts = [set(held.splits[k].tolist()) for k in ("train", "query", "database")]
    assert sum(map(len, parts)) == len(set().union(*parts)) == 100


def test_custom_protocol_by_name():
    ds = apply_protocol(toy(100), "custom:query=10,train=20,train_from_database=false", seed=4)
    assert sizes(ds) == {"train": 20, "query": 10, "database": 70}
    assert sizes(apply_protocol(toy(100), "custom")) == {"train": 90, "query": 10, "database": 90}
    with pytest.raises(ValueError, match="bad custom protocol part"):
        apply_protocol(toy(100), "custom:queries=10")


def test_wiki_preset_keeps_the_file_split():
    wiki = load_wiki()
    assert apply_protocol(wiki, "wiki") is wiki
    with pytest.raises(DataError, match="keeps the file's own split"):
        apply_protocol(toy(3000), "wiki")


def test_unknown_protocol():
    with pytest.raises(KeyError, match="unknown protocol 'flickr'"):
        apply_protocol(toy(10), "flickr")
