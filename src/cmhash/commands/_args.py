"""Arguments several commands share: which dataset, config overrides (the dialect: cmhash.config), where an
index lives, what a search opens.

Commands import from here, never from each other.
"""

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


def dataset_ref(args: argparse.Namespace, spec: str | None = None):
    """The :class:`DatasetRef` the dataset options name (``spec``: one of several ``--dataset`` values)."""
    from cmhash.data.sources import DatasetRef

    return DatasetRef(spec or args.dataset, args.protocol, args.data_seed, args.format, args.drop_unlabeled)


def open_from_args(args: argparse.Namespace, spec: str | None = None):
    """The dataset named by ``--dataset`` (or ``spec``, one of several) with the shared options."""
    return dataset_ref(args, spec).open()


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


# ---- where an index lives (index, search, serve) -------------------------------------------------
def add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", choices=("file", "pg"), default="file",
                   help="file: a HashIndex .npz (default); pg: PostgreSQL + pgvector")
    p.add_argument("--dsn", help="with --store pg: connection string of a server with pgvector "
                                 "(default: the embedded server)")
    p.add_argument("--pg-data", help="with --store pg and no --dsn: the embedded server's data directory "
                                     "(default: $CMHASH_PG_DATA or a per-user cache directory)")
    p.add_argument("--table", help="with --store pg: table name (default: one table per model, named from its SHA-256)")


def index_location(args: argparse.Namespace, path: str | None, flag: str):
    """The file path, or the PostgreSQL location, the store arguments name."""
    from cmhash.data.dataset import DataError
    from cmhash.service import PgLocation

    if args.store == "pg":
        if path is not None:
            raise DataError(f"{flag} names an index file; with --store pg the index is a table (drop {flag})")
        if args.dsn and args.pg_data:
            raise DataError("give --dsn (a server) or --pg-data (the embedded server's directory), not both")
        return PgLocation(args.dsn, args.pg_data, args.table)
    if args.dsn or args.pg_data or args.table:
        raise DataError("--dsn, --pg-data and --table apply only with --store pg")
    if path is None:
        raise DataError(f"{flag} is required (or use --store pg)")
    return path


# ---- what a search opens (search, serve) ---------------------------------------------------------
def add_retriever_args(p: argparse.ArgumentParser) -> None:
    """Model + index + optional encoder."""
    p.add_argument("--model", required=True, help="the model file the index was built with")
    p.add_argument("--index", help="index file from `cmhash index build` (omit with --store pg)")
    add_store_args(p)
    p.add_argument("--checkpoint", help="CLIP checkpoint directory that encoded the dataset (for raw text/image "
                                        "queries)")
    p.add_argument("--device", default="cpu", help="device of the CLIP encoder (default: %(default)s)")


def open_retriever(args: argparse.Namespace):
    from cmhash.service import Retriever

    return Retriever.open(args.model, index_location(args, args.index, "--index"), checkpoint=args.checkpoint,
                          device=args.device)
