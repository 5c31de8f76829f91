"""CPU seconds per training epoch of deep methods on Wiki (one thread, validation pass included).

Process CPU time rather than wall time, so that other jobs on a shared machine do not inflate it;
the ratio to the DCMH-style baseline is the figure the cost rule reads (no seed method over 4x).

    python benchmarks/epoch_cost.py --methods dcmh ddss cdhtk --bits 32 --epochs 3 [--profile tuned]

``--profile tuned`` prices each method with its tuned Wiki profile (its own width among others),
the settings the benchmark tables train with; ``default`` with the shipped defaults.
"""

from __future__ import annotations

import argparse
import time

import torch

from cmhash.config import Override, load_profile, parse_set, resolve
from cmhash.data import load_wiki
from cmhash.methods import get_method


def cpu_seconds_per_epoch(method: str, bits: int, epochs: int, profile: str = "default",
                          sets: list[Override] = ()) -> float:
    train = load_wiki().split("train")
    cls = get_method(method)
    profiled, _ = load_profile(profile, "wiki", cls.name)
    mine = [(k.partition(".")[2], v) for k, v in sets if k.partition(".")[0] == cls.name]
    config = resolve(cls.name, cls.default_config(), profiled + mine)
    config.setdefault("train", {}).update(epochs=epochs, patience=0, progress=False)
    model = cls(bits=bits, seed=0, **config)
    start = time.process_time()
    model.fit(train)
    return (time.process_time() - start) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["dcmh", "ddss", "cdhtk"])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--profile", choices=["default", "tuned"], default="default")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="override for one method (scoped by its name), e.g. sdeh.hidden=512; repeatable")
    args = p.parse_args()
    torch.set_num_threads(1)
    cpu_seconds_per_epoch("dcmh", args.bits, 1)  # warm-up: imports, allocator
    sets = parse_set(args.set)
    costs = {m: cpu_seconds_per_epoch(m, args.bits, args.epochs, args.profile, sets) for m in args.methods}
    base = costs.get("dcmh")
    if args.set:
        print("Overrides:", " ".join(args.set))
    print("| method | CPU s / epoch | × DCMH-style |")
    print("|---|---|---|")
    for m, c in costs.items():
        print(f"| {m} | {c:.2f} | {c / base:.1f} |" if base else f"| {m} | {c:.2f} | – |")


if __name__ == "__main__":
    main()
