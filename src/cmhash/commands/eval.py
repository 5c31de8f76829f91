"""``cmhash eval``: evaluate a saved model on a dataset's query and database splits."""

from __future__ import annotations

import argparse
import json

from cmhash.commands._args import add_dataset_args, open_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a saved model (mAP, mAP@K, P@K, R@K, NDCG@K, P@r<=2)",
                       description="Query split against database split by Hamming ranking. Relevant = shares a "
                                   "label; ties by database order; see docs/metrics.md.")
    p.add_argument("--model", required=True, help="model file from `cmhash train`")
    p.add_argument("--directions", nargs="+", default=["i2t", "t2i"], choices=["i2t", "t2i", "i2i", "t2t"])
    p.add_argument("--ks", nargs="+", type=int, default=[10, 50, 100, 500, 1000], help="cut-offs for @K metrics")
    p.add_argument("--empty", choices=["skip", "zero"], default="skip",
                   help="queries with no relevant item: left out of means (skip) or scored 0")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_dataset_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cmhash.methods import HashMethod
    from cmhash.metrics.evaluate import evaluate_model_metrics

    model = HashMethod.load(args.model)
    ds = open_from_args(args)
    query, database = ds.split("query"), ds.split("database")
    ks = [k for k in args.ks if k <= len(database)]
    results = evaluate_model_metrics(model, query, database, directions=args.directions, ks=ks,
                                     ndcg_ks=ks, empty=args.empty)
    rows = {d: m.row() for d, m in results.items()}
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{model.name}, {model.bits} bits on {ds.describe()}")
    table.add_column("metric")
    for d in rows:
        table.add_column(d, justify="right")
    for key in rows[args.directions[0]]:
        table.add_row(key, *(f"{rows[d][key]:.4f}" if isinstance(rows[d][key], float) else str(rows[d][key])
                             for d in rows))
    Console().print(table)
    return 0
