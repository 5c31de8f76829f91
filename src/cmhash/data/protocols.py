"""Evaluation protocols: how a dataset is split into query, training and retrieval database.

The field's usual protocol: draw the queries at random, the database is every other item, and
the training items are drawn from the database. Sizes per dataset follow the papers (table in
docs/data-formats.md). Splits are drawn with ``numpy.random.default_rng(seed)``, so one seed
gives one split on every machine; indices are sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError


@dataclass(frozen=True)
class Protocol:
    """Split sizes of a preset; ``fixed`` presets keep the split the file itself carries."""

    query: int | None
    train: int | None
    about: str
    fixed: bool = False


PROTOCOLS: dict[str, Protocol] = {
    "mirflickr25k": Protocol(2000, 5000, "MIRFlickr-25K, 20,015 pairs, 24 labels; train 5,000 as UCMFH/DDSS"),
    "mirflickr25k-dcmh": Protocol(2000, 10000, "MIRFlickr-25K with DCMH's 10,000 training pairs"),
    "nuswide21": Protocol(2100, 10500, "NUS-WIDE, 21 most frequent concepts, 195,834 pairs"),
    "mscoco": Protocol(5000, 10000, "MS-COCO, about 122,000 pairs, 80 labels"),
    "iapr": Protocol(2000, 10000, "IAPR TC-12, 20,000 pairs, 255 labels"),
    "wiki": Protocol(None, None, "Wiki: the file's own split (693 test queries; 2,173 train = database)", fixed=True),
}


def apply_protocol(dataset: CrossModalDataset, name: str, seed: int = 0) -> CrossModalDataset:
    """``dataset`` with the splits of the preset ``name`` (a key of :data:`PROTOCOLS`).

    ``"custom"`` (or ``"custom:query=500,train=2000"``) calls :func:`custom_split` with those
    sizes. A fixed preset (``wiki``) requires the dataset to carry its train/query/database split.
    """
    if name.split(":")[0] == "custom":
        return custom_split(dataset, seed=seed, **_custom_sizes(name))
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}, custom")
    proto = PROTOCOLS[name]
    if proto.fixed:
        missing = [s for s in ("train", "query", "database") if s not in dataset.splits]
        if missing:
            raise DataError(f"protocol {name!r} keeps the file's own split, but the dataset has no "
                            f"{'/'.join(missing)} split (load it with format='wiki')",
                            source=dataset.source, field="splits")
        return dataset
    return custom_split(dataset, query=proto.query, train=proto.train, seed=seed, protocol=name)


def custom_split(dataset: CrossModalDataset, query: int | float = 0.1, train: int | float | None = None,
                 seed: int = 0, train_from_database: bool = True, *, protocol: str = "custom") -> CrossModalDataset:
    """Random query / train / database split of ``dataset`` (replacing any split it has).

    ``query`` and ``train`` are item counts, or fractions of all items when floats in (0, 1);
    ``train=None`` trains on the whole database. With ``train_from_database`` (the usual
    protocol) the database is every non-query item and training items are drawn from it;
    otherwise training items are held out of the database too.
    """
    n = len(dataset)
    n_query = _count(query, n, "query")
    n_rest = n - n_query
    n_train = n_rest if train is None else _count(train, n, "train")
    needed = n_query + n_train + (0 if train_from_database else 1)
    if n_query < 1 or n_train < 1 or needed > n or n_rest < 1:
        raise DataError(f"protocol {protocol!r} needs {n_query:,} query + {n_train:,} training items"
                        f"{'' if train_from_database else ' + a database'}, but the dataset has {n:,} items",
                        source=dataset.source, field="splits")
    perm = np.random.default_rng(seed).permutation(n)
    query_idx, rest = perm[:n_query], perm[n_query:]
    train_idx = rest[:n_train]
    database = rest if train_from_database else rest[n_train:]
    return dataset.with_splits(train=np.sort(train_idx), query=np.sort(query_idx), database=np.sort(database))


def _count(size: int | float, n: int, what: str) -> int:
    if isinstance(size, float):
        if not 0 < size < 1:
            raise ValueError(f"{what} fraction must be in (0, 1), got {size}")
        return max(1, round(size * n))
    if size < 0:
        raise ValueError(f"{what} size must be non-negative, got {size}")
    return int(size)


def _custom_sizes(spec: str) -> dict:
    """``"custom:query=500,train=0.5,train_from_database=false"`` to keyword arguments."""
    out: dict = {}
    for part in filter(None, spec.partition(":")[2].split(",")):
        key, _, value = (s.strip() for s in part.partition("="))
        flag = {"true": True, "false": False}.get(value.lower())
        if key not in ("query", "train", "train_from_database") or not value or \
                (key == "train_from_database") != (flag is not None):
            raise ValueError(f"bad custom protocol part {part!r}; use query=N, train=N, train_from_database=true|false")
        if key == "train_from_database":
            out[key] = flag
        else:
            out[key] = float(value) if "." in value else int(value)
    return out
