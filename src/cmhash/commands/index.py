"""``cmhash index build|info|drop``: encode a dataset split with a model into a searchable index, show it, drop it."""

from __future__ import annotations

import argparse
import json

from cmhash.commands._args import add_dataset_args, add_store_args, dataset_ref, index_location
from cmhash.data.dataset import DataError


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
    b.add_argument("--replace", action="store_true",
                   help="with --store pg: drop the model's table first (e.g. one a stopped build left half-full)")
    add_store_args(b)
    b.set_defaults(func=build)

    i = commands.add_parser("info", help="show an index's model, dataset, encoder and size (JSON)")
    i.add_argument("path", nargs="?", help="index file (omit with --store pg)")
    i.add_argument("--model", help="with --store pg: the model whose table to show")
    add_store_args(i)
    i.set_defaults(func=info)

    d = commands.add_parser("drop", help="delete a model's PostgreSQL table (e.g. one a stopped build left)")
    d.add_argument("--model", required=True, help="the model whose table to drop")
    add_store_args(d)
    d.set_defaults(func=drop, store="pg")


def build(args: argparse.Namespace) -> int:
    from cmhash.service import build_index

    where = index_location(args, args.out, "--out")
    out, pg = (where, None) if isinstance(where, str) else (None, where)
    modalities = ("image", "text") if args.modality == "both" else (args.modality,)
    if args.replace and pg is not None:
        drop_table(pg, args.model)
    store = build_index(args.model, dataset_ref(args), split=args.split, modalities=modalities, out=out, kind=args.kind,
                        pg=pg, manifest=args.manifest)
    meta, encoder = store.metadata, store.metadata["encoder"]
    print(f"indexed {meta['dataset']['items']} items x {'+'.join(modalities)} of {meta['dataset']['name']}/"
          f"{args.split} with {meta['model']} ({store.bits} bits)")
    print("encoder: " + (encoder["checkpoint"] if encoder else "not recorded (raw queries checked by dimension only)"))
    print(f"wrote {out} and its item metadata {meta['items']['file']}" if out else f"wrote table {store.store.table}")
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


def drop_table(where, model_path: str) -> str:
    from cmhash.service import PgStore
    from cmhash.service.provenance import load_model

    model, identity = load_model(model_path)
    return PgStore.drop(where, model.bits, identity)


def drop(args: argparse.Namespace) -> int:
    if args.store != "pg":
        raise DataError("index drop applies to --store pg (an index file is removed like any file)")
    print(f"dropped table {drop_table(index_location(args, None, 'PATH'), args.model)}")
    return 0
