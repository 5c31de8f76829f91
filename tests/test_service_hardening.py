"""The service under bad input, concurrency and writes (issue 11): limits, races, API key, confinement."""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cmhash.service import FileStore, Retriever
from cmhash.service.app import create_app
from cmhash.service.limits import Limits

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def retriever(corpus):
    with Retriever.open(corpus.model, corpus.index, checkpoint=corpus.clip) as r:
        yield r


@pytest.fixture
def writable(corpus, tmp_path):
    """A retriever over a private copy of the corpus index (writes change files)."""
    for path in corpus.root.glob("index.npz*"):
        shutil.copy(path, tmp_path / path.name)
    with Retriever.open(corpus.model, tmp_path / "index.npz", checkpoint=corpus.clip) as r:
        yield r


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, format="PNG")
    return out.getvalue()


def test_body_over_the_limit_is_413_whether_declared_or_streamed(retriever):
    client = TestClient(create_app(retriever, limits=Limits(max_body_bytes=1000)))
    body = json.dumps({"text": "x" * 5000}).encode()
    declared = client.post("/search/text", content=body, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and "1,000 bytes" in declared.json()["detail"]
    streamed = client.post("/search/text", content=iter([body[:600], body[600:]]),  # chunked: no Content-Length
                           headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "over the limit" in streamed.json()["detail"]
    small = client.post("/search/text", json={"text": "a red square"})
    assert small.status_code == 200


def test_long_text_is_cut_in_characters_before_it_reaches_the_tokenizer(retriever, monkeypatch):
    seen = []
    encode = retriever.encoder.encode_texts
    monkeypatch.setattr(retriever.encoder, "encode_texts", lambda texts, **kw: (seen.extend(texts), encode(texts, **kw))[1])
    client = TestClient(create_app(retriever, limits=Limits(max_text_chars=50)))
    got = client.post("/search/text", json={"text": "a red square " * 100_000})  # 1.3 M characters
    assert got.status_code == 200, got.text
    assert [len(t) for t in seen] == [50]
    assert got.json()["note"] == "text cut from 1300000 to its first 50 characters"


def test_an_image_over_the_pixel_limit_is_413_from_its_header(retriever):
    client = TestClient(create_app(retriever, limits=Limits(max_image_pixels=1000 * 1000)))
    big = client.post("/search/image", files={"file": ("big.png", png((4000, 3000), "1"), "image/png")})
    assert big.status_code == 413
    assert big.json()["detail"] == ("upload 'big.png' is 4000x3000 = 12,000,000 pixels; the limit is 1,000,000 "
                                    "(downscale it first)")
    ok = client.post("/search/image", files={"file": ("ok.png", png((64, 64)), "image/png")}, data={"k": "3"})
    assert ok.status_code == 200 and len(ok.json()["hits"]) == 3


def test_concurrent_text_searches_from_many_threads_all_succeed(retriever):
    """A shared fast tokenizer keeps its truncation state in one Rust object: with one tokenizer for all threads
    (no per-thread copy) some of these fail."""
    texts = ["a red square seen from far away " * 4, "a blue circle, much longer than sixteen characters " * 3] * 600
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so an unguarded tokenizer gets interleaved calls
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(retriever.text_features, texts))
    finally:
        sys.setswitchinterval(interval)
    single = {t: retriever.text_features(t) for t in set(texts)}
    assert all(np.array_equal(r, single[t]) for r, t in zip(results, texts))


def test_writes_need_the_api_key_and_are_on_disk_when_answered(writable, corpus):
    client = TestClient(create_app(writable, api_key=KEY))
    item = {"id": 5000, "modality": "image", "features": [0.25] * 16, "metadata": {"text": "added"}}
    assert client.post("/items", json=item).status_code == 401
    assert client.post("/items", json=item, headers={"X-API-Key": "wrong"}).status_code == 401
    assert TestClient(create_app(writable)).post("/items", json=item).status_code == 403
    added = client.post("/items", json=item, headers={"X-API-Key": KEY})
    assert added.status_code == 200, added.text
    assert client.post("/items", json=item, headers={"X-API-Key": KEY}).status_code == 409
    caption = client.post("/items", json={"id": 5001, "modality": "caption", "text": "a green circle"},
                          headers={"X-API-Key": KEY})
    assert caption.status_code == 200 and caption.json()["modality"] == "text"
    upload = client.post("/items/image", data={"id": "5002"}, files={"file": ("x.png", png((40, 40)), "image/png")},
                         headers={"X-API-Key": KEY})
    assert upload.status_code == 200, upload.text
    on_disk = FileStore.load(writable.store.path)
    entries = {(e["id"], e["modality"]) for e in on_disk.entries if e is not None}
    assert {(5000, "image"), (5001, "text"), (5002, "image")} <= entries
    code = writable.model.encode_image(np.full((1, 16), 0.25, np.float32))[0]
    assert (5000, "image") in {(h.id, h.modality) for h in on_disk.search(code[None], len(on_disk))}
    gone = client.delete("/items/5000", headers={"X-API-Key": KEY})
    assert gone.status_code == 200 and gone.json()["removed"] == 1
    assert client.delete("/items/5000", headers={"X-API-Key": KEY}).status_code == 404
    assert (5000, "image") not in {(e["id"], e["modality"]) for e in FileStore.load(writable.store.path).entries if e}
    assert len(list(writable.store.path.parent.glob("index.npz.items.*.jsonl"))) == 1  # old sidecars removed


def test_image_files_are_served_only_from_inside_the_image_root(retriever, corpus, tmp_path):
    (corpus.images / "outside").symlink_to(tmp_path) if not (corpus.images / "outside").exists() else None
    Image.new("RGB", (4, 4)).save(tmp_path / "secret.png")
    client = TestClient(create_app(retriever, image_root=corpus.images))
    assert client.get("/images/shapes/red-square-0.png").status_code == 200
    for escape in ("..%2Fmodel.pt", "%2e%2e/%2e%2e/etc/passwd", "shapes/..%2F..%2Findex.npz", "outside/secret.png",
                   "%2Fetc%2Fpasswd"):
        got = client.get("/images/" + escape)
        assert got.status_code == 404, escape
    assert TestClient(create_app(retriever)).get("/images/shapes/red-square-0.png").status_code == 404


def test_adds_and_deletes_under_concurrent_search_leave_exactly_the_acknowledged_items(writable):
    store = writable.store
    before = {(e["id"], e["modality"]) for e in store.entries if e is not None}
    rng = np.random.default_rng(0)
    acked_adds, acked_deletes, errors = set(), set(), []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                hits = writable.search_codes(rng.choice([-1, 1], 16), k=20).hits
                assert [h.distance for h in hits] == sorted(h.distance for h in hits)
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

    def write(worker: int) -> None:
        for n in range(12):
            item = 10_000 + 100 * worker + n
            writable.add_item(item, "image", rng.normal(size=16), {"worker": worker})
            acked_adds.add((item, "image"))
            if n % 3 == 0:
                assert writable.remove_item(item) == 1
                acked_deletes.add((item, "image"))
        victim = sorted(before)[worker]
        writable.remove_item(victim[0])
        acked_deletes.update((victim[0], m) for m in ("image", "text"))

    searchers = [threading.Thread(target=search) for _ in range(4)]
    for t in searchers:
        t.start()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    stop.set()
    for t in searchers:
        t.join()
    assert not errors
    want = (before | acked_adds) - acked_deletes
    reloaded = FileStore.load(store.path)
    assert {(e["id"], e["modality"]) for e in reloaded.entries if e is not None} == want
    assert len(reloaded) == len(want)


def test_a_build_stopped_before_the_switch_leaves_the_previous_index_usable(corpus, tmp_path, monkeypatch):
    """The sidecar used to be replaced before the index header: a build killed between them lost the index."""
    from cmhash.index import HashIndex
    from cmhash.service import build_index

    out = tmp_path / "index.npz"
    build_index(corpus.model, corpus.dataset, modalities=("image",), out=out)
    before = FileStore.load(out).entries

    def killed(self, path):
        raise KeyboardInterrupt  # stands for kill -9 after the new sidecar is written
    monkeypatch.setattr(HashIndex, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus.model, corpus.dataset, modalities=("image", "text"), out=out)
    assert FileStore.load(out).entries == before


def test_a_lone_surrogate_is_a_422_not_a_500_in_the_tokenizer(retriever):
    client = TestClient(create_app(retriever), raise_server_exceptions=False)
    got = client.post("/search/text", content=b'{"text": "\\ud800abc"}', headers={"content-type": "application/json"})
    assert got.status_code == 422 and "unicode" in got.json()["detail"]
    with pytest.raises(ValueError, match="not valid Unicode"):
        retriever.search_text("\ud800abc")
