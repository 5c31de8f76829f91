"""Faults: named errors instead of tracebacks, a stale embedded-server handle, kill -9 during writes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from cmhash.cli import main
from cmhash.index.pg_server import HANDLES_FILE, drop_stale_handles
from cmhash.service import FileStore, PgLocation, PgStore
from cmhash.service.build import build_index
from cmhash.service.provenance import load_model

KEY = "kill-test-key"


def test_unknown_synthetic_option_is_a_message(capsys):
    assert main(["train", "--method", "cca_itq", "--out", "/dev/null", "--dataset", "synthetic:foo=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown synthetic option 'foo'; known: preset, n, image_dim" in err


def test_unreachable_dsn_is_a_message_with_the_password_hidden(capsys, corpus):
    dsn = "postgresql://user:hunter2@127.0.0.1:9/nowhere"
    assert main(["index", "info", "--store", "pg", "--dsn", dsn, "--model", str(corpus.model)]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to PostgreSQL at 'postgresql://user:***@127.0.0.1:9/nowhere'" in err
    assert "hunter2" not in err


def test_dead_processes_are_forgotten_by_the_embedded_server(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(done.stdout)
    (tmp_path / HANDLES_FILE).write_text(json.dumps([os.getpid(), dead]))
    assert drop_stale_handles(tmp_path) == [dead]
    assert json.loads((tmp_path / HANDLES_FILE).read_text()) == [os.getpid()]
    assert drop_stale_handles(tmp_path) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(corpus, *where: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "CMHASH_API_KEY": KEY}
    proc = subprocess.Popen([sys.executable, "-m", "cmhash.cli", "serve", "--model", str(corpus.model), *where,
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode())
    proc.kill()
    raise RuntimeError("server did not start")


def kill_during_writes(corpus, where: list[str], acks_before_kill: int = 8) -> tuple[set[int], set[int]]:
    """Add items one by one until ``acks_before_kill`` are acknowledged, then SIGKILL the server mid-stream.

    Returns (acknowledged ids, ids sent whose answer never came)."""
    proc, url = serve(corpus, *where)
    acked, unanswered = set(), set()
    stop = threading.Event()

    def writer() -> None:
        item = 20_000
        with httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client:
            while not stop.is_set():
                features = np.random.default_rng(item).normal(size=16).tolist()
                try:
                    got = client.post("/items", json={"id": item, "modality": "image", "features": features})
                except httpx.HTTPError:
                    unanswered.add(item)
                    return
                assert got.status_code == 200, got.text
                acked.add(item)
                item += 1

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acked) < acks_before_kill and thread.is_alive():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    thread.join(30)
    return acked, unanswered


@pytest.mark.slow
def test_kill_9_during_writes_leaves_a_usable_file_index_with_every_acknowledged_item(corpus, tmp_path):
    for path in corpus.root.glob("index.npz*"):
        shutil.copy(path, tmp_path / path.name)
    before = {(e["id"], e["modality"]) for e in FileStore.load(tmp_path / "index.npz").entries if e}
    acked, unanswered = kill_during_writes(corpus, ["--index", str(tmp_path / "index.npz")])
    store = FileStore.load(tmp_path / "index.npz")  # loads: the old or the new version, never a mix
    added = {(e["id"], e["modality"]) for e in store.entries if e} - before
    assert {(i, "image") for i in acked} <= added <= {(i, "image") for i in acked | unanswered}
    assert len(list(tmp_path.glob("index.npz.items.*.jsonl"))) >= 1


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_during_writes_loses_no_acknowledged_item_in_postgres(corpus, pg_server):
    table = "killtest"
    pg = PgLocation(dsn=pg_server.get_uri(), table=table)
    store = build_index(corpus.model, corpus.dataset, modalities=("image",), pg=pg)
    store.close()
    try:
        acked, unanswered = kill_during_writes(corpus, ["--store", "pg", "--dsn", pg_server.get_uri(),
                                                        "--table", table])
        model, identity = load_model(corpus.model)
        with_rows = PgStore.open(pg, model.bits, identity)
        ids = set(with_rows.store._conn.execute(f"SELECT id FROM {table} WHERE id >= 20000").fetchall())
        with_rows.close()
        assert {(i,) for i in acked} <= ids <= {(i,) for i in acked | unanswered}
    finally:
        PgStore.drop(pg, 16, "unused")
