"""Exact top-k at scale: HashIndex("mih") against FAISS IndexBinaryFlat; writes docs/benchmarks-search.md.

Usage (the full run; sizes and bit lengths can be cut down for a quick look):

    nice -n 5 .venv/bin/python benchmarks/bench_search.py --sizes 1000000 10000000 100000000 --bits 64 128

For every code source (uniform random; learned = CCA-ITQ codes of a large synthetic dataset,
replicated with bit noise to reach N), bit length and N: build the MIH index (time, bytes per item),
run 1,000 queries for exact top-1/10/100 with 2 threads on both, assert identical distances and
ids (ids = insertion positions, so FAISS's labels compare directly), report time per query.
Memory: codes are generated in chunks into one array; the MIH index is built, searched and freed
before the FAISS index is built, so the peak holds one index at a time.
The PostgreSQL store has its own script, benchmarks/bench_pg.py.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from cmhash.codes import pack
from cmhash.index import HashIndex
from cmhash.io import atomic_write_text

THREADS, KS, CHUNK, BIG = 2, (1, 10, 100), 1 << 20, 50_000_000


def live_rss_bytes() -> int:
    """Resident memory after handing freed heap pages back, so it counts live allocations only."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


class Learned:
    """A trained model's codes of a synthetic dataset: database image codes (the base), text-query codes."""

    def __init__(self, method: str, bits: int, base: int, queries: int, flips: float, seed: int):
        from cmhash.data import make_synthetic
        from cmhash.methods import get_method

        data = make_synthetic(n=base + queries, image_dim=128, text_dim=128, n_query=queries, n_train=10_000,
                              seed=seed)
        model = get_method(method)(bits=bits, seed=seed).fit(data)
        self.base = pack(model.encode_image(data.split("database").image))
        self.queries = pack(model.encode_text(data.split("query").text))
        self.bits, self.noise = bits, flips / bits

    @classmethod
    def cached(cls, args: argparse.Namespace, bits: int) -> Learned:
        """Trained as ``args`` says, or read from ``args.cache`` (an npz written by the first run) if given."""
        path = args.cache and Path(args.cache.format(bits=bits))
        if path and path.exists():
            learned = cls.__new__(cls)
            with np.load(path) as z:
                learned.base, learned.queries = z["base"], z["queries"]
            learned.bits, learned.noise = bits, args.flips / bits
            return learned
        learned = cls(args.method, bits, args.base, args.queries, args.flips, args.seed)
        if path:
            np.savez(path, base=learned.base, queries=learned.queries)
        return learned

    def fill(self, out: np.ndarray, rng: np.random.Generator) -> None:
        """Copy the base, then replicas with each bit flipped with probability ``noise``."""
        for start in range(0, len(out), len(self.base)):
            rows = min(len(self.base), len(out) - start)
            block = self.base[:rows]
            if start:
                block = block ^ np.packbits(rng.random((rows, self.bits), dtype=np.float32) < self.noise, axis=1)
            out[start:start + rows] = block


def uniform_fill(out: np.ndarray, rng: np.random.Generator) -> None:
    for start in range(0, len(out), CHUNK):
        out[start:start + CHUNK] = rng.integers(0, 256, out[start:start + CHUNK].shape, dtype=np.uint8)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def fastest(search, queries: np.ndarray, k: int):
    """(answer, seconds, threads) of the faster of 1 and THREADS threads. Under load OpenMP's spinning
    barriers can make FAISS slower on 2 threads than on 1, so each index is timed both ways and gets its best."""
    best = None
    for threads in sorted({1, THREADS}):
        faiss.omp_set_num_threads(threads)  # HashIndex("mih") splits queries over as many threads
        answer, seconds = timed(lambda: search(queries, k))
        if best is None or seconds < best[1]:
            best = answer, seconds, threads
    faiss.omp_set_num_threads(THREADS)
    return best


def bench_case(source: str, bits: int, n: int, queries: np.ndarray, fill) -> list[str]:
    rng = np.random.default_rng(n + bits)
    db = np.empty((n, bits // 8), np.uint8)
    fill(db, rng)
    raw = bits // 8 + 8
    before = live_rss_bytes()
    index = HashIndex(bits, "mih")
    _, t_build = timed(lambda: index.add_with_ids(db, np.arange(n)))
    rss = live_rss_bytes() - before
    held = index._backend.mih.nbytes() / n
    index.search(queries[:4], 1)  # warm-up: thread pool, first touch of the tables
    mih = {k: fastest(index.search, queries, k) for k in KS}
    tables = index.tables
    del index
    gc.collect()
    flat = faiss.IndexBinaryFlat(bits)
    for start in range(0, n, CHUNK):
        flat.add(db[start:start + CHUNK])
    del db
    flat.search(queries[:4], 1)  # warm-up, as for MIH
    rows, nq = [], len(queries)
    for k in KS:
        (want_d, want_i), t_flat, th_flat = fastest(flat.search, queries, k)
        (got_d, got_i), t_mih, th_mih = mih[k]
        assert np.array_equal(got_d, want_d) and np.array_equal(got_i, want_i), (source, bits, n, k)
        rows.append(f"| {source} | {bits} | {n:,} | {tables} | {k} | {nq:,} | {t_mih / nq * 1e3:.3f} ({th_mih}) "
                    f"| {t_flat / nq * 1e3:.3f} ({th_flat}) | **{t_flat / t_mih:.1f}x** "
                    f"| {np.median(want_d[:, k - 1]):.0f} "
                    f"| yes | {load()} |")
    del flat
    gc.collect()
    build = (f"| {source} | {bits} | {n:,} | {tables} | {t_build:.1f} | {held:.1f} | {rss / n:.1f} | {raw} "
             f"| {held / raw:.2f}x |")
    print("\n".join([build, *rows]), flush=True)
    return [build, *rows]


def bench_scale(args: argparse.Namespace, write) -> list[str]:
    speed, builds = [], []

    def section() -> list[str]:
        return [
            "## Exact top-k: MIH vs FAISS flat (identical results asserted)",
            "",
            "| codes | bits | N | MIH tables | k | queries | MIH ms/query (threads) | FAISS flat ms/query (threads) "
            "| speed-up "
            "| median k-th distance | identical | load 1/5 min |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
            *speed,
            "",
            f"Queries: {args.queries:,} per case ({args.big_queries:,} from N = {BIG:,}: the flat scan of 100M codes "
            "takes tens of milliseconds per query). Both indexes answer the same queries for every k, each after a "
            f"warm-up search of 4 queries (thread pools, first touch of the data), and each is timed with 1 and "
            f"{THREADS} threads, keeping its faster time (the thread count in brackets): on a loaded machine OpenMP's "
            "spinning barriers can make FAISS slower on 2 threads than on 1. MIH splits the queries over Python "
            "threads. Every MIH answer (distances and ids, ties in insertion order) is asserted equal to FAISS's.",
            "",
            "## MIH build time and memory",
            "",
            "| codes | bits | N | tables | build (s) | bytes/item held | RSS growth bytes/item | raw code+id bytes "
            "| held / raw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            *builds,
            "",
            "Held: the index's arrays (table 0 holds every code as uint64 words in its bucket order with a uint32 "
            "position; further tables hold a code copy too while the copies stay within 24 B/item (all tables at 64 "
            "bits, none beyond table 0 at 128 bits) and otherwise a uint32 row of table 0; each table's uint32 offsets "
            "(2^prefix + 1, the prefix about log2 N bits: at most 8 uint32 per item for all tables together, and at "
            "most 2^24 entries per table, a fixed cost that is large per item only below ~10M with 32-bit substrings), "
            "the run index of buckets over 2,048 entries, the int64 ids, the uint32 id order, one alive byte). "
            "RSS growth: /proc/self/statm around the build (malloc_trim first), which also counts allocator slack. "
            "Target: <= 2.5x raw at 100M x 64 bits.",
            "",
            f"Learned codes: `{args.method}` (seed {args.seed}) trained on `make_synthetic(n={args.base + args.queries:,}, "
            "image_dim=128, text_dim=128, n_train=10,000)`; the database is the "
            f"{args.base:,} image codes of the database split, then replicas of them with every bit flipped with "
            f"probability {args.flips:g} / bits ({args.flips:g} bits flipped on average, about the distance from a "
            "base code to its nearest base neighbour) until N; queries are the text codes of the query items "
            "(cross-modal search, as the service does). Uniform: independent random bytes for database and queries.",
            "",
        ]

    for bits in args.bits:
        learned = Learned.cached(args, bits)
        uniform_q = np.random.default_rng(args.seed).integers(0, 256, (args.queries, bits // 8), dtype=np.uint8)
        for n in args.sizes:
            if bits > 64 and n >= BIG and not args.big_long_codes:
                continue
            nq = args.big_queries if n >= BIG else args.queries
            cases = {"learned": (learned.queries[:nq], learned.fill), "uniform": (uniform_q[:nq], uniform_fill)}
            for source in args.codes:
                queries, fill = cases[source]
                build, *rows = bench_case(source, bits, n, queries, fill)
                builds.append(build)
                speed.extend(rows)
                write(section())
    return section()


PAPER = """## Why uniform random codes gain little (the paper's analysis)

Norouzi, Punjani & Fleet (TPAMI 2014, sec. 4) bound MIH's cost by the number of substring probes
plus the number of candidates. With m = b / log2 N substrings, a substring table has about as many
buckets as items (one item per bucket on average), and a search to radius r probes each table
within r' = floor(r / m) bits: sum_{i <= r'} C(b/m, i) probes per table and about as many
candidates. For uniform codes the k-NN radius r itself grows with N (the k-th neighbour of a random
64-bit code among 1M codes lies at ~17 bits, among 100M at ~13), and the cost is dominated by
C(b/m, r/m) ~ N^{H(r/b)} (H: binary entropy): sub-linear, but with an exponent close to 1 when r/b
approaches 0.2-0.3, as it does for uniform 64-bit codes at these N. The paper's own 64-bit results
are on codes of real data (SIFT/GIST via LSH or MLH), where near neighbours are much closer than in
uniform codes; learned codes, which cluster by content, are that case. Our MIH therefore decides
per query whether to keep probing or to scan: early in the search it predicts the k-th distance
from what it has verified so far and compares the expected rest of the probing with a scan (see
`cmhash.index.mih`); uniform codes at these N mostly end in a scan, which is one vectorised pass
over table 0's codes, so on them MIH costs about what FAISS's flat scan costs.
"""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return f"{cpu}; {os.cpu_count()} CPUs; {platform.platform()}; Python {platform.python_version()}; faiss {faiss.__version__}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--bits", type=int, nargs="+", default=[64])
    parser.add_argument("--codes", nargs="+", choices=("learned", "uniform"), default=["learned", "uniform"])
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--big-queries", type=int, default=200, help=f"queries from N = {BIG:,}")
    parser.add_argument("--big-long-codes", action="store_true", help=f"also run > 64 bits from N = {BIG:,}")
    parser.add_argument("--base", type=int, default=200_000, help="distinct learned codes before replication")
    parser.add_argument("--method", default="scm", help="the trained model behind the learned codes")
    parser.add_argument("--flips", type=float, default=2.0, help="expected flipped bits per replica")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="npz of the learned codes, {bits} in the name (written by the first run)")
    parser.add_argument("--out", default="docs/benchmarks-search.md")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(THREADS)  # HashIndex("mih") splits queries over as many threads
    started = load()
    head = ["# Search benchmarks", "", "Generated by `benchmarks/bench_search.py`; do not edit.", "",
            f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`", "", f"Machine: {machine()}", ""]

    def write(body: list[str], finished: bool = False) -> None:
        state = f"at end {load()}" if finished else f"now {load()} (run still going: partial results)"
        atomic_write_text(args.out, "\n".join([
            *head, f"Load average (1/5 min) at start {started}, {state}, on {os.cpu_count()} CPUs shared with other "
            "jobs; each row also shows the load when it finished. Both indexes run in the same process under the "
            "same load, so the speed-up is the figure to read; absolute times are inflated by the load.",
            "", *body, PAPER]))

    write(bench_scale(args, write), finished=True)
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
