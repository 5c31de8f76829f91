"""``cmhash search``: query an index with a caption, an image file, or an item of the indexed dataset."""

from __future__ import annotations

import argparse
import json

from cmhash.commands._args import add_retriever_args, open_retriever
from cmhash.data.dataset import DataError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search an index by text, image or dataset item",
                       description="Top-k (or within --radius) items by Hamming distance between the query's code "
                                   "and the indexed codes. Raw --text/--image queries need --checkpoint, the CLIP "
                                   "model that encoded the dataset. See docs/retrieval.md.")
    add_retriever_args(p)
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", help="caption to search with")
    query.add_argument("--image", help="image file to search with")
    query.add_argument("--query-id", type=int, help="id of an item of the indexed dataset (any split) to search with")
    p.add_argument("--query-modality", choices=("image", "text"), default="text",
                   help="with --query-id: which of the item's features to use (default: %(default)s)")
    p.add_argument("-k", type=int, default=10, help="number of results (default: %(default)s)")
    p.add_argument("--radius", type=int, help="only items within this Hamming distance (at most k shown)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.query_id is None and not args.checkpoint:
        raise DataError("--text/--image queries need --checkpoint, the CLIP model that encoded the dataset")
    retriever = open_retriever(args)
    try:
        if args.text is not None:
            results = retriever.search_text(args.text, args.k, args.radius)
        elif args.image is not None:
            results = retriever.search_image(args.image, args.k, args.radius)
        else:
            results = retriever.search_item(args.query_id, args.query_modality, args.k, args.radius)
    finally:
        retriever.close()
    if args.json:
        print(json.dumps(results.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if results.within_radius is not None:
        print(f"{results.within_radius} items within Hamming distance {args.radius}; showing {len(results.hits)}")
    print("rank\tdistance\tid\tmodality\tmetadata")
    for rank, hit in enumerate(results.hits, 1):
        print(f"{rank}\t{hit.distance}\t{hit.id}\t{hit.modality}\t{json.dumps(hit.metadata, ensure_ascii=False)}")
    return 0
