"""Where exact MIH top-k spends its time: per-query work counters and time on learned codes.

Usage:

    nice -n 5 .venv/bin/python benchmarks/profile_mih.py --n 10000000 --k 100 [--cache /tmp/learned-{bits}.npz]

Builds the MIH index over the benchmark's learned codes (benchmarks/bench_search.py's generator:
a trained model's codes, replicated with bit noise to reach N), then times each query alone (one
thread; the least over --repeat passes) and reads its counters (``MultiIndex.search(..., stats=)``,
named in ``mih.STATS``: bucket and run probes, table entries read, entries within the current bound,
accepted, scan fallback, last step). Prints the distribution of each, and how much of the total
time the slowest queries take.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from cmhash.index import mih

sys.path.insert(0, str(Path(__file__).parent))
from bench_search import Learned  # noqa: E402  (the benchmark's own generator)


def timed(index: mih.MultiIndex, query: np.ndarray, k: int, stats: np.ndarray) -> float:
    start = time.perf_counter()
    index.search(query, k, stats)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--k", type=int, nargs="+", default=[100])
    parser.add_argument("--tables", type=int, default=None)
    parser.add_argument("--queries", type=int, default=1_000, help="query codes generated (as the benchmark does)")
    parser.add_argument("--timed", type=int, default=1_000, help="how many of them to time")
    parser.add_argument("--repeat", type=int, default=3, help="a query's time: the least over this many passes "
                        "over all queries (a run the scheduler interrupts is not the query's cost)")
    parser.add_argument("--base", type=int, default=200_000)
    parser.add_argument("--method", default="scm")
    parser.add_argument("--flips", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="npz of the learned codes, {bits} in the name (written by the first run)")
    args = parser.parse_args(argv)
    learned = Learned.cached(args, args.bits)
    db = np.empty((args.n, args.bits // 8), np.uint8)
    learned.fill(db, np.random.default_rng(args.n + args.bits))  # the benchmark's seed for this case
    index = mih.MultiIndex(args.bits, args.tables)
    start = time.perf_counter()
    index.add(db, np.arange(args.n))
    print(f"N={args.n:,} bits={args.bits} tables={index.tables} build {time.perf_counter() - start:.1f} s "
          f"held {index.nbytes() / args.n:.1f} B/item", flush=True)
    del db
    queries = learned.queries[: args.timed]
    index.search(queries[:4], 1)  # compile, first touch
    for k in args.k:
        stats = np.empty((len(queries), len(mih.STATS)), np.int64)
        seconds = np.full(len(queries), np.inf)
        for _ in range(args.repeat):  # whole passes: the other queries evict a query's data before it runs again
            for i in range(len(queries)):
                seconds[i] = min(seconds[i], timed(index, queries[i: i + 1], k, stats[i: i + 1]))
        order = np.argsort(seconds)[::-1]
        print(f"\nk={k}: {seconds.mean() * 1e3:.3f} ms/query on one thread; slowest 1% of queries take "
              f"{seconds[order[: len(order) // 100]].sum() / seconds.sum():.0%} of the time, slowest 10% "
              f"{seconds[order[: len(order) // 10]].sum() / seconds.sum():.0%}")
        print(f"{'':>10} {'mean':>12} {'median':>12} {'p90':>12} {'p99':>12} {'max':>12}")
        for name, column in [("ms", seconds * 1e3), *zip(mih.STATS, stats.T)]:
            q = np.percentile(column, [50, 90, 99])
            print(f"{name:>10} {column.mean():12.3f} {q[0]:12.3f} {q[1]:12.3f} {q[2]:12.3f} {column.max():12.3f}")
        scanned = stats[:, mih.STATS.index("scanned")] > 0
        print(f"scan fallback: {scanned.sum()} queries, {seconds[scanned].sum() / seconds.sum():.0%} of the time")


if __name__ == "__main__":
    main()
