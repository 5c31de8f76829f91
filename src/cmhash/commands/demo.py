"""``cmhash demo``: the main job on the embedded Wiki dataset, end to end, in about a minute.

Trains one of the founding methods (SDEH, the best on Wiki in docs/benchmarks.md) beside the
CCA-ITQ baseline, prints both mAP rows, indexes the database with the founding model (image and
text codes, so the page can search either way), answers two text queries from the query split, and
ends with the one command that serves the index in the search page.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train, evaluate, index and search on the embedded Wiki dataset")
    p.add_argument("--method", default="sdeh", help="founding method to demonstrate (default: %(default)s)")
    p.add_argument("--baseline", default="cca_itq", help="baseline shown beside it (default: %(default)s)")
    p.add_argument("--bits", type=int, default=64, help="code length (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/demo", help="where the model and index go (default: %(default)s)")
    p.add_argument("--queries", type=int, default=2, help="text queries to answer from the query split")
    p.add_argument("-k", type=int, default=5, help="images shown per query")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from cmhash.data.sources import DatasetRef
    from cmhash.methods import get_method
    from cmhash.metrics.evaluate import evaluate_model
    from cmhash.service import Retriever, build_index

    console = Console()
    dataset = DatasetRef("wiki", data_seed=args.seed)
    ds = dataset.open()
    query, database = ds.split("query"), ds.split("database")
    console.print(f"[bold]cmhash demo[/bold]: {ds.describe()}")
    table = Table(title=f"Wiki, {args.bits} bits: mAP over the whole Hamming ranking "
                        f"({len(query)} queries vs {len(database)} database items; one seed, see "
                        "docs/benchmarks.md for the spread over seeds)")
    for col in ("method", "I→T", "T→I", "mean", "train s"):
        table.add_column(col, justify="right")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (args.baseline, args.method):
        start = time.perf_counter()
        console.print(f"training {name} ({args.bits} bits)…")
        model = get_method(name)(bits=args.bits, seed=args.seed).fit(ds)
        seconds = time.perf_counter() - start
        scores = evaluate_model(model, query, database)
        table.add_row(name, f"{scores['i2t']:.4f}", f"{scores['t2i']:.4f}",
                      f"{(scores['i2t'] + scores['t2i']) / 2:.4f}", f"{seconds:.1f}")
        model.save(out / f"{name}.pt")
    console.print(table)

    model_path, index_path = out / f"{args.method}.pt", out / "index.npz"
    build_index(model_path, dataset, modalities=("image", "text"), out=index_path).close()
    console.print(f"\nIndexed the image and text codes of {len(database)} database items with {args.method}; "
                  "text queries:")
    with Retriever.open(model_path, index_path) as retriever:
        for row in np.linspace(0, len(query) - 1, args.queries).astype(int):
            item, wanted = int(query.ids[row]), set(np.flatnonzero(query.labels[row]).tolist())
            names = ", ".join(ds.label_name(c) for c in sorted(wanted))
            console.print(f"  text #{item} (label: {names}) → top {args.k} images:")
            ranking = retriever.search_item(item, "text", k=len(retriever.store)).hits  # text entries are there too
            hits = [h for h in ranking if h.modality == "image"]
            for hit in hits[:args.k]:
                got = ", ".join(map(str, hit.metadata["labels"]))
                mark = "✓" if set(hit.metadata["labels"]) & {ds.label_name(c) for c in wanted} else "✗"
                console.print(f"    {mark} image #{hit.id:<5d} Hamming {hit.distance:2d}  label: {got}")
    console.print("\nSearch it in the page (then open http://127.0.0.1:8000/):")
    print(f"cmhash serve --model {model_path} --index {index_path}")
    return 0
