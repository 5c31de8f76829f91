"""Bounded load on loopback against a `cmhash serve` of a large index (file and PostgreSQL), and a long fuzz.

    python benchmarks/bench_service.py --items 1000000 --clients 8 --seconds 30 --stores file pg \
        --fuzz 100 --docs docs/retrieval.md

Builds (once, cached under --work) a model and an index of --items random 64-bit codes for each
store, starts `cmhash serve` in a subprocess, runs --clients threads for --seconds each sending
/search/codes and /search/features requests, and reports throughput, p50/p99 latency and the
number of errors (anything but a 200). --fuzz N runs schemathesis with N cases per operation.
With --docs the table goes into the file's generated section ``service-load``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from cmhash.bench.report import update_doc_section
from cmhash.data import make_synthetic
from cmhash.methods import get_method
from cmhash.service import FileStore, PgLocation, PgStore
from cmhash.service.provenance import model_record

BITS = 64
DIMS = 32
CHUNK = 100_000


def build(work: Path, items: int, stores: list[str], dsn: str | None) -> dict[str, list[str]]:
    """The model and the index of each store; returns the `cmhash serve` arguments of each."""
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.pt"
    if not model_path.exists():
        data = make_synthetic(n=2000, image_dim=DIMS, text_dim=DIMS, num_labels=8, n_query=200, n_train=1000, seed=0)
        get_method("cca_itq")(bits=BITS, seed=0).fit(data).save(model_path)
    model = get_method("cca_itq").load(model_path)
    identity = model_record(model_path, model)
    metadata = {"model": identity.pop("model"), "model_file": identity, "modalities": ["image"], "encoder": None,
                "dataset": {"spec": "random codes", "name": "random", "split": "database", "items": items}}
    rng = np.random.default_rng(0)
    codes = np.where(rng.random((items, BITS)) < 0.5, -1, 1).astype(np.int8)
    records = [{"id": i, "labels": [int(i % 8)]} for i in range(items)]
    where: dict[str, list[str]] = {}
    if "file" in stores:
        index = work / f"index-{items}.npz"
        if not index.exists():
            FileStore.build(index, BITS, "flat", metadata, [("image", codes, records)])
        where["file"] = ["--index", str(index)]
    if "pg" in stores:
        table = f"bench_{items}"
        location = PgLocation(dsn=dsn, datadir=None if dsn else str(work / "pg"), table=table)
        try:
            PgStore.open(location, BITS, metadata["model"]).close()
        except ValueError:
            PgStore.drop(location, BITS, metadata["model"])
            PgStore.build(location, BITS, metadata, [("image", codes, records)]).close()
        where["pg"] = ["--store", "pg", "--table", table,
                       *(["--dsn", dsn] if dsn else ["--pg-data", str(work / "pg")])]
    return {store: ["--model", str(model_path), *args] for store, args in where.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(url: str, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` threads, each sending requests back to back for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(worker: int) -> None:
        rng = np.random.default_rng(worker)
        mine, bad = [], []
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.perf_counter() < deadline:
                if rng.random() < 0.5:
                    path, body = "/search/codes", {"codes": rng.choice([-1, 1], BITS).tolist(), "k": 10}
                else:
                    path, body = "/search/features", {"modality": "text", "features": rng.normal(size=DIMS).tolist(),
                                                      "k": 10}
                start = time.perf_counter()
                try:
                    got = http.post(path, json=body)
                    if got.status_code != 200:
                        bad.append(f"{got.status_code} {got.text[:200]}")
                except httpx.HTTPError as exc:
                    bad.append(repr(exc))
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "errors": len(errors), "first_error": errors[0] if errors else "",
            "rps": len(ms) / wall, "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
            "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan")}


def serve_and_load(args_of_store: list[str], clients: int, seconds: float) -> dict[str, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "cmhash.cli", "serve", *args_of_store, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(3000):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()[-2000:])
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        return load(url, clients, seconds)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def fuzz(cases: int) -> tuple[int, list[str]]:
    """The contract run of the tests, longer, against a small corpus with the tiny CLIP (text, image, writes)."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from service_kit import build_corpus

    from cmhash.encoders.testing import build_tiny_clip
    from cmhash.service import Retriever
    from cmhash.service.app import create_app
    from cmhash.service.contract import run_contract

    root = Path(tempfile.mkdtemp(prefix="cmhash-fuzz-"))
    corpus = build_corpus(root, build_tiny_clip(root / "clip"))
    with Retriever.open(corpus.model, corpus.index, checkpoint=corpus.clip) as retriever:
        return run_contract(create_app(retriever, api_key="fuzz", image_root=corpus.images), cases,
                            {"X-API-Key": "fuzz"}, seed=1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--stores", nargs="+", choices=("file", "pg"), default=["file", "pg"])
    p.add_argument("--dsn", help="PostgreSQL with pgvector (default: the embedded server under --work)")
    p.add_argument("--work", default="runs/bench-service", help="cache of the model and indexes")
    p.add_argument("--fuzz", type=int, default=0, help="schemathesis cases per operation (0: no fuzz run)")
    p.add_argument("--docs", help="Markdown file whose `service-load` section receives the table")
    args = p.parse_args()

    started = time.perf_counter()
    rows = []
    for store, serve_args in build(Path(args.work), args.items, args.stores, args.dsn).items():
        result = serve_and_load(serve_args, args.clients, args.seconds)
        print(json.dumps({"store": store, **result}), flush=True)
        rows.append((store, result))
    fuzz_line = ""
    if args.fuzz:
        operations, failures = fuzz(args.fuzz)
        fuzz_line = (f"Fuzz: schemathesis, up to {args.fuzz} generated cases for each of the {operations} operations "
                     f"(writes with the key): {len(failures)} failing operations (5xx or contract).")
        print(fuzz_line, *failures, sep="\n")
    command = "python benchmarks/bench_service.py " + shlex.join(sys.argv[1:])
    lines = [f"Generated by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"in {time.perf_counter() - started:.0f} s; {os.cpu_count()} CPU cores (load average "
             f"{os.getloadavg()[0]:.1f} at the end), Python {platform.python_version()}, client threads on the same "
             "machine as the server.", "",
             f"{args.items:,} random {BITS}-bit codes; {args.clients} clients x {args.seconds:g} s, each sending "
             "`/search/codes` or `/search/features` (k = 10) back to back over loopback to one `cmhash serve`.", "",
             "| store | requests | errors | requests/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {store} | {r['requests']:,} | {r['errors']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} |"
              for store, r in rows]
    if fuzz_line:
        lines += ["", fuzz_line]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.docs:
        update_doc_section(args.docs, "service-load", text, title="## Service under load (generated)")
    return 1 if any(r["errors"] for _, r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
