"""Arguments several commands share: which dataset, config overrides (the dialect: cmhash.config)."""

from __future__ import annotations

import argparse

from cmhash.config import Override, gather


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


def add_set_arg(p: argparse.ArgumentParser, profile: bool = True) -> None:
    """--set / --config (and --profile): the one override dialect, documented in cmhash.config."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                   help="override a config value, dotted (train.epochs=10, dcmh.hidden=32: scoped to one method; "
                        "unscoped keys apply to every selected method that has them); repeatable")
    p.add_argument("--config", help="YAML of overrides in the same dialect (top-level method names scope a "
                                    "section; e.g. a tune best.yaml); applied before --set")
    if profile:
        p.add_argument("--profile", default="default", choices=["default", "tuned"],
                       help="shipped hyperparameters: default, or tuned (methods/profiles/<family>/<method>.yaml, "
                            "falling back to the defaults with a note where a method has none) (default: %(default)s)")


def gather_overrides(args: argparse.Namespace) -> list[Override]:
    """(key, value) overrides of --config then --set, in application order."""
    return gather(args.config, args.overrides)
