"""Arguments several commands share: which dataset, config overrides."""

from __future__ import annotations

import argparse
from typing import Any

import yaml


def add_dataset_args(p: argparse.ArgumentParser, default: str | None = "wiki", many: bool = False) -> None:
    p.add_argument("--dataset", default=[default] if many else default, required=default is None,
                   nargs="+" if many else None,
                   help="wiki | synthetic[:key=value,...] | path to a dataset file or directory"
                        + (" (several allowed)" if many else "") + " (default: %(default)s)")
    p.add_argument("--protocol", help="split preset for a file without splits (e.g. mirflickr25k, nuswide21, mscoco, "
                                      "iapr, custom:query=Q,train=T)")
    p.add_argument("--format", help="dataset file format when not detected (dcmh, dchmt, pickle, native, wiki)")
    p.add_argument("--drop-unlabeled", action="store_true", help="filter items with no label (count reported)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the protocol split / synthetic data")


def open_from_args(args: argparse.Namespace, spec: str | None = None):
    """The dataset named by ``--dataset`` (or ``spec``, one of several) with the shared options."""
    from cmhash.data.sources import open_dataset

    return open_dataset(spec or args.dataset, protocol=args.protocol, seed=args.data_seed, format=args.format,
                        drop_unlabeled=args.drop_unlabeled)


def describe_protocol(ds) -> str:
    """One line on the split sizes, for table captions."""
    s = {k: len(v) for k, v in ds.splits.items()}
    return (f"{len(ds):,} pairs, {ds.num_labels} labels, image {ds.dims[0]}-d / text {ds.dims[1]}-d; "
            f"query {s.get('query', 0):,}, database {s.get('database', 0):,}, train {s.get('train', 0):,}.")


def add_set_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, dotted (e.g. train.epochs=10, losses.quantization=0); repeatable")
    p.add_argument("--config", help="YAML file of config overrides (applied before --set)")


def parse_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flat ``{"train.epochs": 10}`` from --config (flattened) then --set."""
    flat: dict[str, Any] = {}
    if args.config:
        with open(args.config) as f:
            _flatten(yaml.safe_load(f) or {}, "", flat)
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        flat[key.strip()] = yaml.safe_load(value)
    return flat


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"train.epochs": 10}`` to ``{"train": {"epochs": 10}}``."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def _flatten(tree: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v
