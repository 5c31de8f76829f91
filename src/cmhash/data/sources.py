"""Resolve a dataset named on the command line: a built-in name, a synthetic spec, or a file.

- ``wiki``: the embedded real Wiki dataset (its own train/query/database split).
- ``synthetic`` or ``synthetic:preset=nuswide,n=20015,...``: the synthetic generator, a named
  preset (default ``mirflickr``) with keyword overrides (the split sizes are part of the
  generator's arguments); an unknown key is an error naming it.
- anything else: a path loaded by :func:`load_dataset` (format detected or ``format``), then
  split with ``protocol`` (a preset name; required when the file carries no splits).
"""

from __future__ import annotations

import yaml

from cmhash.data.dataset import CrossModalDataset, DataError


def parse_kwargs(spec: str) -> dict:
    """``"a=1,b=x"`` to ``{"a": 1, "b": "x"}`` with YAML value parsing."""
    out = {}
    for part in filter(None, spec.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise DataError(f"expected key=value, got {part!r}", source=spec)
        out[key.strip()] = yaml.safe_load(value)
    return out


def open_dataset(spec: str, *, protocol: str | None = None, seed: int = 0, format: str | None = None,
                 drop_unlabeled: bool = False) -> CrossModalDataset:
    """The dataset ``spec`` names, with train/query/database splits."""
    from cmhash.data import apply_protocol, load_dataset, load_wiki
    from cmhash.data.synthetic import make_preset

    name, _, args = spec.partition(":")
    if name == "wiki" and not args:
        ds = load_wiki()
    elif name == "synthetic":
        ds = make_preset(**{"seed": seed, **parse_kwargs(args)})
    else:
        ds = load_dataset(spec, format=format, drop_unlabeled=drop_unlabeled)
    if protocol:
        ds = apply_protocol(ds, protocol, seed=seed)
    missing = [s for s in ("train", "query", "database") if s not in ds.splits]
    if missing:
        raise DataError(f"no {'/'.join(missing)} split: name a protocol (--protocol, e.g. mirflickr25k or custom)",
                        source=spec, field="splits")
    return ds
