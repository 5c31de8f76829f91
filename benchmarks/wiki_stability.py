"""Seed spread of deep methods (Wiki by default), measured on a DEV split carved from the training data.

The query split is never used to choose anything: a fixed 20 % of Wiki's training rows (the
same for every run) are held out as dev queries, the model is fitted on the other 80 % (the engine
carves its own validation split from those), and the dev score is the mean of I→T and T→I mAP of
the dev queries against the fitted rows as database, the shape of the test protocol. The
query-split mAP (against the whole training database) is recorded for reporting only.

    python benchmarks/wiki_stability.py --methods dcmh ddss --bits 16 32 64 --seeds 0 1 2 \
        --set train.val_database=0 --set train.val_window=1 --tag before --out benchmarks/results/x.jsonl

One JSON line per run is appended to ``--out``; ``--summary`` prints mean ± std per (tag, method, bits).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from cmhash.config import nest, parse_set
from cmhash.data.sources import open_dataset
from cmhash.methods import get_method
from cmhash.metrics import mean_average_precision

DEV_SEED = 12345


def both_ways(model, q, db) -> float:
    return (mean_average_precision(model.encode_image(q.image), model.encode_text(db.text), q.labels, db.labels)
            + mean_average_precision(model.encode_text(q.text), model.encode_image(db.image), q.labels, db.labels)) / 2


def run(dataset: str, method: str, bits: int, seed: int, config: dict) -> dict:
    ds = open_dataset(dataset)
    train = ds.split("train")
    perm = np.random.default_rng(DEV_SEED).permutation(len(train))
    n_dev = len(train) // 5
    dev, fit = train.subset(np.sort(perm[:n_dev]), name="dev"), train.subset(np.sort(perm[n_dev:]), name=ds.name)
    cfg = {**config, "train": {"progress": False, **config.get("train", {})}}
    model = get_method(method)(bits=bits, seed=seed, **cfg)
    start = time.perf_counter()
    model.fit(fit)
    seconds = time.perf_counter() - start
    return {"dataset": dataset, "method": method, "bits": bits, "seed": seed, "dev": both_ways(model, dev, fit),
            "query": both_ways(model, ds.split("query"), train), "epochs": len(model.history),
            "s_per_epoch": seconds / max(1, len(model.history))}


def summary(path: Path) -> None:
    groups: dict = defaultdict(list)
    for line in path.read_text().splitlines():
        r = json.loads(line)
        groups[(r.get("dataset", "wiki"), r["tag"], r["method"], r["bits"])].append(r)
    print("| dataset | tag | method | bits | seeds | dev mAP | query mAP (report only) | epochs | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (dataset, tag, method, bits), rs in sorted(groups.items()):
        dev, query = np.array([r["dev"] for r in rs]), np.array([r["query"] for r in rs])
        print(f"| {dataset} | {tag} | {method} | {bits} | {len(rs)} | {dev.mean():.4f} ± {dev.std():.4f} | "
              f"{query.mean():.4f} ± {query.std():.4f} | {min(r['epochs'] for r in rs)}–{max(r['epochs'] for r in rs)} | "
              f"{np.mean([r['s_per_epoch'] for r in rs]):.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="wiki", help="dataset spec, e.g. wiki or synthetic:private_weight=3")
    p.add_argument("--methods", nargs="+", default=["dcmh"])
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--set", action="append", default=[], help="config override a.b=v (YAML value)")
    p.add_argument("--tag", default="default")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--summary", action="store_true", help="only print the summary of --out")
    args = p.parse_args()
    if args.summary:
        summary(args.out)
        return
    torch.set_num_threads(1)
    config = nest(parse_set(args.set))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        for bits in args.bits:
            for seed in args.seeds:
                record = {"tag": args.tag, "set": args.set, **run(args.dataset, method, bits, seed, config)}
                with open(args.out, "a") as f:
                    f.write(json.dumps(record) + "\n")
                print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
