"""Two versions of cmhash.index.mih side by side in one process, against FAISS flat: B/item and speed.

Usage (the "before" is any mih.py, e.g. ``git show main:src/cmhash/index/mih.py > /tmp/mih_before.py``):

    nice -n 15 python benchmarks/compare_mih.py --before /tmp/mih_before.py --bits 128 --codes learned uniform \
        --n 1000000 --k 1 10 100 --cache /tmp/i12/learned-{bits}.npz

On a loaded machine absolute times mean little; this script times the versions in alternating
passes (one thread each, the least per version over --repeat passes) in the same process, so the
ratios are the figures to read. Every answer is asserted equal to FAISS's (ids = positions).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import Learned, uniform_fill  # noqa: E402  (the benchmark's own generators)

from cmhash.index import mih  # noqa: E402


def module_from(path: str):
    spec = importlib.util.spec_from_file_location("mih_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's cache finds compiled functions' modules by name
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="path of another mih.py to compare with (omitted: this one alone)")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=128)
    parser.add_argument("--codes", nargs="+", choices=("learned", "uniform"), default=["learned", "uniform"])
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--base", type=int, default=200_000)
    parser.add_argument("--method", default="scm")
    parser.add_argument("--flips", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries-total", type=int, default=1_000, help="as bench_search generates them")
    parser.add_argument("--cache", help="npz of the learned codes, {bits} in the name")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(1)  # MultiIndex runs as many threads as FAISS is given
    versions = {"after": mih}
    if args.before:
        versions["before"] = module_from(args.before)
    print(f"load at start {os.getloadavg()[0]:.1f}/{os.getloadavg()[1]:.1f}", flush=True)
    for source in args.codes:
        rng = np.random.default_rng(args.n + args.bits)
        db = np.empty((args.n, args.bits // 8), np.uint8)
        if source == "learned":
            learned = Learned.cached(argparse.Namespace(**{**vars(args), "queries": args.queries_total}), args.bits)
            learned.fill(db, rng)
            queries = learned.queries[: args.queries]
        else:
            uniform_fill(db, rng)
            queries = np.random.default_rng(args.seed).integers(0, 256, (args.queries, args.bits // 8), np.uint8)
        flat = faiss.IndexBinaryFlat(args.bits)
        flat.add(db)
        indexes = {}
        for name, module in versions.items():
            index = module.MultiIndex(args.bits)
            start = time.perf_counter()
            index.add(db, np.arange(args.n))
            indexes[name] = index
            print(f"{source} {args.bits} bits N={args.n:,} {name}: tables {index.tables}, build "
                  f"{time.perf_counter() - start:.1f} s, held {index.nbytes() / args.n:.1f} B/item", flush=True)
        for k in args.k:
            want = flat.search(queries, k)
            best = dict.fromkeys([*indexes, "flat"], np.inf)
            scans = {}
            for _ in range(args.repeat):
                for name, index in indexes.items():
                    index.search(queries[:2], k)
                    stats = np.zeros((len(queries), len(mih.STATS)), np.int64)
                    start = time.perf_counter()
                    got = index.search(queries, k, stats)
                    best[name] = min(best[name], time.perf_counter() - start)
                    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), (name, source, k)
                    scans[name] = np.bincount(stats[:, mih.STATS.index("scanned")], minlength=3)[1:].tolist()
                start = time.perf_counter()
                flat.search(queries, k)
                best["flat"] = min(best["flat"], time.perf_counter() - start)
            parts = []
            for name, seconds in best.items():
                part = f"{name} {seconds / len(queries) * 1e3:.3f} ms"
                if name in scans:  # queries that scanned: [after probing a scan's worth, as predicted]
                    part += f" ({best['flat'] / seconds:.2f}x flat, scanned {scans[name]})"
                parts.append(part)
            print(f"  k={k}: {', '.join(parts)}; load {os.getloadavg()[0]:.1f}", flush=True)

if __name__ == "__main__":
    main()
