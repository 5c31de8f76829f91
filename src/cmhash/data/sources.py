"""Resolve a dataset named on the command line: a built-in name, a synthetic spec, or a file.

- ``wiki``: the embedded real Wiki dataset (its own train/query/database split).
- ``synthetic`` or ``synthetic:n=20015,num_labels=24,...``: the synthetic generator with
  keyword overrides (the split sizes are part of the generator's arguments).
- anything else: a path loaded by :func:`load_dataset` (format detected or ``format``), then
  split with ``protocol`` (a preset name; required when the file carries no splits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cmhash.data.dataset import CrossModalDataset, DataError


def parse_kwargs(spec: str) -> dict:
    """``"a=1,b=x"`` to ``{"a": 1, "b": "x"}`` with YAML value parsing."""
    out = {}
    for part in filter(None, spec.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected key=value, got {part!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _known_kwargs(func, kwargs: dict, spec: str) -> dict:
    """``kwargs`` after checking each is a parameter of ``func`` (else a message, not a TypeError)."""
    import inspect

    known = [p for p in inspect.signature(func).parameters if p != "seed"]
    unknown = [k for k in kwargs if k not in known]
    if unknown:
        raise DataError(f"dataset {spec!r}: unknown synthetic option {unknown[0]!r}; known: {', '.join(known)}")
    return kwargs


def open_dataset(spec: str, *, protocol: str | None = None, seed: int = 0, format: str | None = None,
                 drop_unlabeled: bool = False) -> CrossModalDataset:
    """The dataset ``spec`` names, with train/query/database splits."""
    from cmhash.data import apply_protocol, load_dataset, load_wiki, make_synthetic

    name, _, args = spec.partition(":")
    if name == "wiki" and not args:
        ds = load_wiki()
    elif name == "synthetic":
        ds = make_synthetic(**{"seed": seed, **_known_kwargs(make_synthetic, parse_kwargs(args), spec)})
    else:
        ds = load_dataset(spec, format=format, drop_unlabeled=drop_unlabeled)
    if protocol:
        ds = apply_protocol(ds, protocol, seed=seed)
    missing = [s for s in ("train", "query", "database") if s not in ds.splits]
    if missing:
        raise DataError(f"no {'/'.join(missing)} split: name a protocol (--protocol, e.g. mirflickr25k or custom)",
                        source=spec, field="splits")
    return ds


@dataclass(frozen=True)
class DatasetRef:
    """How a dataset was opened (the ``--dataset`` options), so it can be opened again identically."""

    spec: str
    protocol: str | None = None
    data_seed: int = 0
    format: str | None = None
    drop_unlabeled: bool = False

    def resolved(self) -> DatasetRef:
        """File specs made absolute, so the record still works from another directory."""
        spec = str(Path(self.spec).resolve()) if Path(self.spec).exists() else self.spec
        return DatasetRef(spec, self.protocol, self.data_seed, self.format, self.drop_unlabeled)

    def open(self) -> CrossModalDataset:
        return open_dataset(self.spec, protocol=self.protocol, seed=self.data_seed, format=self.format,
                            drop_unlabeled=self.drop_unlabeled)
