"""CPU seconds per training epoch of deep methods on Wiki (one thread, validation pass included).

Process CPU time rather than wall time, so that other jobs on a shared machine do not inflate it;
the ratio to the DCMH-style baseline is the figure the cost rule reads (no seed method over 4x).

    python benchmarks/epoch_cost.py --methods dcmh ddss cdhtk --bits 32 --epochs 3 [--profile tuned]

``--profile tuned`` prices each method with its tuned Wiki profile (its own width among others),
the settings the benchmark tables train with; ``default`` with the shipped defaults.
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import torch

from cmhash.config import load_profile, parse_set, route
from cmhash.data import load_wiki
from cmhash.methods import get_method


def cpu_seconds_per_epoch(method: str, train, bits: int, epochs: int, config: dict[str, Any]) -> float:
    config = copy.deepcopy(config)
    config.setdefault("train", {}).update(epochs=epochs, patience=0, progress=False)
    model = get_method(method)(bits=bits, seed=0, **config)
    start = time.process_time()
    model.fit(train)
    return (time.process_time() - start) / epochs


def method_configs(methods: list[str], profile: str, sets: list[str]) -> dict[str, dict[str, Any]]:
    """Each method's overrides: its Wiki profile, then ``--set`` (routed like ``cmhash bench``, so a
    typo or a key no selected method has is a named error, not silently ignored)."""
    profiled = [o for m in methods for o in load_profile(profile, "wiki", get_method(m).name)[0]]
    return route(profiled + parse_set(sets), {m: get_method(m).default_config() for m in methods})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", nargs="+", default=["dcmh", "ddss", "cdhtk"])
    p.add_argument("--bits", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--profile", choices=["default", "tuned"], default="default")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.KEY=VALUE",
                   help="override for one method (scoped by its name), e.g. sdeh.hidden=512; repeatable")
    args = p.parse_args()
    configs = method_configs(args.methods, args.profile, args.set)
    torch.set_num_threads(1)
    train = load_wiki().split("train")
    cpu_seconds_per_epoch("dcmh", train, args.bits, 1, {})  # warm-up: imports, allocator
    costs = {m: cpu_seconds_per_epoch(m, train, args.bits, args.epochs, configs[m]) for m in args.methods}
    base = costs.get("dcmh")
    if args.set:
        print("Overrides:", " ".join(args.set))
    print("| method | CPU s / epoch | × DCMH-style |")
    print("|---|---|---|")
    for m, c in costs.items():
        print(f"| {m} | {c:.2f} | {c / base:.1f} |" if base else f"| {m} | {c:.2f} | – |")


if __name__ == "__main__":
    main()
