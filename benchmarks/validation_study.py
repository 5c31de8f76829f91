"""Compare design choices of one method on the VALIDATION split only (never the query split).

Each arm is the method with some config overrides; each arm is trained with several training
seeds on the training split of one dataset (synthetic: data seed 0, the tuning seed; or Wiki).
Deep methods: the engine carves its validation split from the training split and the score is
its best validation mAP (mean of I->T and T->I, whole ranking). Shallow methods: the same split
is carved here, the method is fitted on the rest and scored the same way. The query and
database splits are never read. One JSON line per run is appended to ``--out``; ``--summary``
prints mean +- std per arm and the paired per-seed difference to the first arm with a paired
t-test over seeds (with 3 seeds only large, consistent differences reach p < 0.05: a difference
that does not is reported as "no difference").

    python benchmarks/validation_study.py --method sdeh --dataset synthetic --bits 32 --seeds 0 1 2 \
        --arm base --arm scaled:similarity_scale=8 --out docs/studies/sdeh.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

from cmhash.config import nest
from cmhash.data.sources import open_dataset, parse_kwargs
from cmhash.methods import get_method
from cmhash.metrics import mean_average_precision
from cmhash.train.engine import carve_validation


def validation_score(method_name: str, train, bits: int, seed: int, overrides: dict) -> tuple[float, int]:
    """Best validation mAP (deep: the engine's; shallow: fitted on the rest of the training split)."""
    cls = get_method(method_name)
    config = nest(overrides)
    if cls.deep:
        config.setdefault("train", {})["progress"] = False
        m = cls(bits=bits, seed=seed, **config).fit(train)
        scores = [h["val_map"] for h in m.history if "val_map" in h]
        return max(scores), len(m.history)
    fit_set, val = carve_validation(train, 0.1, seed)
    m = cls(bits=bits, seed=seed, **config).fit(fit_set)
    img, txt = m.encode_image(val.image), m.encode_text(val.text)
    y = val.labels
    return float((mean_average_precision(img, txt, y, y) + mean_average_precision(txt, img, y, y)) / 2), 0


def summarise(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in rows:
        key = (r["method"], r["dataset"], r["bits"])
        groups.setdefault(key, {}).setdefault(r["arm"], {})[r["seed"]] = r["val_map"]
    for (method, dataset, bits), arms in groups.items():
        print(f"## {method} on {dataset}, {bits} bits (validation mAP, mean +- std over seeds)")
        base_name = next(iter(arms))
        base = arms[base_name]
        for arm, by_seed in arms.items():
            v = np.array(list(by_seed.values()))
            common = sorted(set(by_seed) & set(base))
            diff = np.array([by_seed[s] - base[s] for s in common])
            d = f"{diff.mean():+.4f} +- {diff.std(ddof=1) if len(diff) > 1 else 0:.4f}" if arm != base_name else "-"
            if arm != base_name and len(diff) > 2 and diff.std() > 0:
                d += f" (paired t-test p = {ttest_rel([by_seed[s] for s in common], [base[s] for s in common]).pvalue:.3f})"
            print(f"| {arm} | {v.mean():.4f} +- {v.std(ddof=1) if len(v) > 1 else 0:.4f} | n={len(v)} "
                  f"| vs {base_name}: {d} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arm", action="append", default=[], help="NAME or NAME:key=value,key=value")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--summary", action="store_true", help="only print the summary of --out")
    a = p.parse_args()
    if a.summary:
        summarise(a.out)
        return
    train = open_dataset(a.dataset, seed=a.data_seed).split("train")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in a.seeds:
        for arm in a.arm:
            name, _, spec = arm.partition(":")
            overrides = parse_kwargs(spec)
            start = time.perf_counter()
            score, epochs = validation_score(a.method, train, a.bits, seed, overrides)
            row = {"method": a.method, "dataset": a.dataset, "data_seed": a.data_seed, "bits": a.bits,
                   "arm": name, "overrides": overrides, "seed": seed, "val_map": round(score, 5),
                   "epochs": epochs, "seconds": round(time.perf_counter() - start, 1)}
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    summarise(a.out)


if __name__ == "__main__":
    main()
