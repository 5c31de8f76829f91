"""CPU seconds per training epoch of deep methods on Wiki (one thread, validation pass included).

Process CPU time rather than wall time, so that other jobs on a shared machine do not inflate it;
the ratio to the DCMH-style baseline is the figure the cost rule reads (no seed method over 4x).

    python benchmarks/epoch_cost.py --methods dcmh ddss cdhtk --bits 32 --epochs 3
"""

from __future__ import annotations

import argparse
import time

import torch

from cmhash.data import load_wiki
from cmhash.methods import get_method


def cpu_seconds_per_epoch(method: str, bits: int, epochs: int) -> float:
    train = load_wiki().split("train")
    model = get_method(method)(bits=bits, seed=0, train={"epochs": epochs, "patience": 0, "progress": False})
    start = time.process_time()
    model.fit(train)
    return (time.process_time() - start) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["dcmh", "ddss", "cdhtk"])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    cpu_seconds_per_epoch("dcmh", args.bits, 1)  # warm-up: imports, allocator
    costs = {m: cpu_seconds_per_epoch(m, args.bits, args.epochs) for m in args.methods}
    base = costs.get("dcmh")
    print("| method | CPU s / epoch | × DCMH-style |")
    print("|---|---|---|")
    for m, c in costs.items():
        print(f"| {m} | {c:.2f} | {c / base:.1f} |" if base else f"| {m} | {c:.2f} | – |")


if __name__ == "__main__":
    main()
