"""Retriever and HTTP API against a small trained model and index; results checked by brute force."""

from __future__ import annotations

import io
import re
import json
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cmhash.codes import hamming, pack
from cmhash.data import DataError, make_synthetic, save_dataset
from cmhash.methods import get_method
from cmhash.service import DatasetRef, Retriever, build_index
from cmhash.service.app import create_app
from cmhash.service.provenance import check_encoder

BITS = 16


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A dataset file, an SCM model trained on it, and an index of both modalities of its database."""
    root = tmp_path_factory.mktemp("service")
    data = make_synthetic(n=300, image_dim=20, text_dim=12, num_labels=5, n_query=30, n_train=150, seed=0)
    save_dataset(data, root / "data.npz")
    model = get_method("scm")(bits=BITS, seed=0, anchors=0).fit(data)
    model.save(root / "model.pt")
    build_index(root / "model.pt", DatasetRef(str(root / "data.npz")), modalities=("image", "text"),
                out=root / "index.npz")
    retriever = Retriever.open(root / "model.pt", root / "index.npz")
    yield SimpleNamespace(root=root, data=data, model=model, retriever=retriever)
    retriever.close()


@pytest.fixture(scope="module")
def client(built):
    return TestClient(create_app(built.retriever))


def brute_force(built, code: np.ndarray, k: int | None = None, radius: int | None = None) -> list[tuple]:
    """(id, modality, distance) of the nearest entries: image entries then text entries, stable by distance."""
    db = built.data.splits["database"]
    codes = np.vstack([built.model.encode_image(built.data.image[db]), built.model.encode_text(built.data.text[db])])
    entries = [(int(i), m) for m in ("image", "text") for i in built.data.ids[db]]
    dist = hamming(pack(code[None]), pack(codes))[0]
    order = np.argsort(dist, kind="stable")
    if radius is not None:
        order = order[dist[order] <= radius]
    return [(*entries[j], int(dist[j])) for j in order[:k]]


def triples(response: dict) -> list[tuple]:
    return [(h["id"], h["modality"], h["distance"]) for h in response["hits"]]


@pytest.mark.parametrize("modality, row", [("text", 0), ("image", 7)])
def test_feature_search_equals_brute_force(built, client, modality, row):
    query = built.data.splits["query"][row]
    x = (built.data.text if modality == "text" else built.data.image)[query]
    got = client.post("/search/features", json={"modality": modality, "features": x.tolist(), "k": 25})
    assert got.status_code == 200, got.text
    encode = built.model.encode_text if modality == "text" else built.model.encode_image
    want = brute_force(built, encode(x[None])[0], k=25)
    assert triples(got.json()) == want
    assert got.json()["query_modality"] == modality
    labels = {int(i): np.flatnonzero(l).tolist() for i, l in zip(built.data.ids, built.data.labels)}
    assert all(h["metadata"]["labels"] == labels[h["id"]] for h in got.json()["hits"])


def test_code_search_radius_counts_everything_within_and_shows_k(built, client):
    code = built.model.encode_text(built.data.text[:1])[0]
    for radius in (0, 3, 6):
        want = brute_force(built, code, radius=radius)
        got = client.post("/search/codes", json={"codes": code.tolist(), "k": 5, "radius": radius}).json()
        assert got["within_radius"] == len(want)
        assert triples(got) == want[:5]
    big = built.retriever.search_codes(code, k=10**9)
    assert len(big.hits) == 2 * len(built.data.splits["database"])  # every entry, no padding
    over = client.post("/search/codes", json={"codes": code.tolist(), "k": 10**9})
    assert over.status_code == 422 and "less than or equal to 1000" in over.json()["detail"]


def test_search_item_uses_the_dataset_recorded_in_the_index(built):
    item = int(built.data.ids[built.data.splits["query"][3]])
    got = built.retriever.search_item(item, "image", k=8)
    x = built.data.image[built.data.splits["query"][3]]
    assert got == built.retriever.search_features("image", x, k=8)
    with pytest.raises(KeyError, match="no item with id 99999"):
        built.retriever.search_item(99999, "image")


def test_health_and_info(built, client):
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/info").json()
    size = 2 * len(built.data.splits["database"])
    assert (info["method"], info["bits"], info["index"]["size"]) == ("scm", BITS, size)
    assert info["model"].startswith("scm@") and info["index"]["modalities"] == ["image", "text"]
    assert info["feature_dims"] == {"image": 20, "text": 12} and info["encoder"] is None


@pytest.mark.parametrize("path, body, status, message", [
    ("/search/features", {"modality": "image", "features": [0.1] * 7}, 422, "image.features: .* at least 20 items"),
    ("/search/features", {"modality": "text", "features": [float("nan")] * 12}, 422,
     r"text.features.0: Input should be a finite number \(and 11 more like it\)$"),
    ("/search/features", {"modality": "text", "features": [0.1] * 12, "k": 0}, 422, "k: .*greater than or equal to 1"),
    ("/search/features", {"modality": "audio", "features": [0.1] * 12}, 422, "'audio' .* expected tags: 'image', 'text'"),
    ("/search/codes", {"codes": [1, -1] * 4}, 422, f"codes: .*at least {BITS} items"),
    ("/search/codes", {"codes": [0] * BITS}, 422, "codes.0: Input should be -1 or 1"),
    ("/search/codes", {"codes": [1] * BITS, "radius": BITS + 1}, 422, f"radius: .*less than or equal to {BITS}"),
    ("/search/text", {"text": "a red square"}, 400, "--checkpoint"),
    ("/search/text", {"text": "\ud800abc"}, 422, "text: .*unicode"),  # a lone surrogate: was a 500
    ("/search/text", {"text": " \t"}, 422, "text: .*pattern"),
])
def test_bad_requests_get_4xx_with_a_message(client, path, body, status, message):
    got = client.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    assert got.status_code == status
    assert re.search(message, got.json()["detail"])


def test_image_upload_errors(client):
    junk = client.post("/search/image", files={"file": ("x.png", b"not an image", "image/png")})
    assert junk.status_code == 422 and "not a readable image" in junk.json()["detail"]
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(png, format="PNG")
    no_encoder = client.post("/search/image", files={"file": ("x.png", png.getvalue(), "image/png")})
    assert no_encoder.status_code == 400 and "--checkpoint" in no_encoder.json()["detail"]


def test_index_refuses_another_model_and_a_foreign_sidecar(built, tmp_path):
    other = get_method("cca_itq")(bits=BITS, seed=0).fit(built.data)
    other.save(tmp_path / "other.pt")
    with pytest.raises(DataError, match="index was built for model 'scm@"):
        Retriever.open(tmp_path / "other.pt", built.root / "index.npz")
    (tmp_path / "index.npz").write_bytes((built.root / "index.npz").read_bytes())
    name = built.retriever.store.metadata["items"]["file"]
    sidecar = (built.root / name).read_text()
    (tmp_path / name).write_text(sidecar.replace("[", "[9, ", 1))  # one label more
    with pytest.raises(DataError, match="does not belong to index"):
        Retriever.open(built.root / "model.pt", tmp_path / "index.npz")


def test_encoder_checks(built):
    encoder = SimpleNamespace(image_dim=20, text_dim=12, fingerprint="a" * 64, checkpoint_dir="ckpt")
    check_encoder(encoder, built.model, {"fingerprint": "a" * 64, "checkpoint": "ckpt"})
    with pytest.raises(DataError, match="not the one that encoded"):
        check_encoder(encoder, built.model, {"fingerprint": "b" * 64, "checkpoint": "old"})
    with pytest.warns(UserWarning, match="cannot verify"):
        check_encoder(encoder, built.model, None)
    wrong = SimpleNamespace(image_dim=16, text_dim=16, fingerprint="a" * 64, checkpoint_dir="ckpt")
    with pytest.raises(DataError, match="16/16 dims, but the model was trained on 20/12"):
        check_encoder(wrong, built.model, None)


def test_mih_index_gives_the_flat_results(built, tmp_path):
    build_index(built.root / "model.pt", DatasetRef(str(built.root / "data.npz")), modalities=("image", "text"),
                out=tmp_path / "mih.npz", kind="mih")
    with Retriever.open(built.root / "model.pt", tmp_path / "mih.npz") as mih:
        assert mih.store.index.kind == "mih"
        for row in range(5):
            code = built.model.encode_image(built.data.image[row:row + 1])[0]
            for radius in (1, 4):
                assert mih.search_codes(code, 1000, radius) == built.retriever.search_codes(code, 1000, radius)
            assert mih.search_codes(code, 20) == built.retriever.search_codes(code, 20)
