"""``cmhash index build`` / ``cmhash index info``: encode a dataset split with a model into a searchable index.

Also home of the "where does the index live" arguments that ``search`` and ``serve`` share.
"""

from __future__ import annotations

import argparse
import json

from cmhash.commands._args import add_dataset_args
from cmhash.data.dataset import DataError


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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build or inspect a search index of hash codes",
                       description="Build an index of a dataset split's codes with a trained model, or show what "
                                   "an index holds. See docs/retrieval.md.")
    commands = p.add_subparsers(dest="index_command", required=True, metavar="<build|info>")

    b = commands.add_parser("build", help="encode a dataset split with a model into an index")
    b.add_argument("--model", required=True, help="model file from `cmhash train`")
    add_dataset_args(b, default=None)
    b.add_argument("--split", default="database", help="split to index (default: %(default)s)")
    b.add_argument("--modality", choices=("image", "text", "both"), default="image",
                   help="which codes to index; queries of either modality search them (default: %(default)s)")
    b.add_argument("--out", help="index file to write (.npz), plus OUT.items.<digest>.jsonl (item metadata)")
    b.add_argument("--kind", choices=("flat", "mih"), default="flat",
                   help="HashIndex kind: flat (exhaustive scan) or mih (exact multi-index hashing, sub-linear; "
                   "recommended from about a million items) (default: %(default)s)")
    b.add_argument("--manifest", help="the `cmhash encode` manifest, to show captions and image paths in results")
    add_store_args(b)
    b.set_defaults(func=build)

    i = commands.add_parser("info", help="show an index's model, dataset, encoder and size (JSON)")
    i.add_argument("path", nargs="?", help="index file (omit with --store pg)")
    i.add_argument("--model", help="with --store pg: the model whose table to show")
    add_store_args(i)
    i.set_defaults(func=info)


def build(args: argparse.Namespace) -> int:
    from cmhash.service import DatasetRef, build_index
    from cmhash.service.items import items_path

    where = index_location(args, args.out, "--out")
    out, pg = (where, None) if isinstance(where, str) else (None, where)
    modalities = ("image", "text") if args.modality == "both" else (args.modality,)
    dataset = DatasetRef(args.dataset, args.protocol, args.data_seed, args.format, args.drop_unlabeled)
    store = build_index(args.model, dataset, split=args.split, modalities=modalities, out=out, kind=args.kind,
                        pg=pg, manifest=args.manifest)
    meta, encoder = store.metadata, store.metadata["encoder"]
    print(f"indexed {meta['dataset']['items']} items x {'+'.join(modalities)} of {meta['dataset']['name']}/"
          f"{args.split} with {meta['model']} ({store.bits} bits)")
    print("encoder: " + (encoder["checkpoint"] if encoder else "not recorded (raw queries checked by dimension only)"))
    print(f"wrote {out} and its item metadata {items_path(out)}" if out else f"wrote table {store.store.table}")
    store.close()
    return 0


def info(args: argparse.Namespace) -> int:
    from cmhash.service import FileStore, PgStore
    from cmhash.service.provenance import load_model

    where = index_location(args, args.path, "PATH")
    if isinstance(where, str):
        store = FileStore.load(where)
    else:
        if not args.model:
            raise DataError("--store pg needs --model (the index table is chosen by the model)")
        model, identity = load_model(args.model)
        store = PgStore.open(where, model.bits, identity)
    print(json.dumps(store.info(), indent=2))
    store.close()
    return 0
