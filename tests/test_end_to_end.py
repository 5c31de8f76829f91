"""Raw folder to search results through the CLI: encode -> train -> index build -> search (file and PostgreSQL).

The images are three classes of drawings (a red disc, a green square, a blue bar) with a little
pixel noise, and every caption of a class is the same, so even a random tiny CLIP puts each
class in its own cluster; a supervised model then hashes each class to its own codes and a
caption or image query must find its class first.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from cmhash.cli import main
from cmhash.encoders.testing import build_tiny_clip

CLASSES = {"red": ("red disc", "ellipse", (220, 30, 30)), "green": ("green box", "rectangle", (30, 200, 30)),
           "blue": ("blue bar", "bar", (30, 30, 220))}
PER_CLASS = 10
K = 5


def draw(shape: str, colour: tuple[int, int, int], rng: np.random.Generator) -> Image.Image:
    img = Image.new("RGB", (32, 32), "white")
    pen = ImageDraw.Draw(img)
    if shape == "bar":
        pen.rectangle((2, 12, 29, 19), fill=colour)
    else:
        getattr(pen, shape)((6, 6, 25, 25), fill=colour)
    noisy = np.asarray(img, np.int16) + rng.integers(-8, 9, (32, 32, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def cli(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_clip_dir):
    """Image folder + manifest -> dataset -> trained model -> index; returns the paths and a query image."""
    root = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    rows = []
    for c, (name, (caption, shape, colour)) in enumerate(CLASSES.items()):
        for j in range(PER_CLASS):
            file = f"{name}_{j}.png"
            draw(shape, colour, rng).save(root / "images" / file)
            rows.append({"image": file, "text": caption, "labels": name, "id": 100 + c * PER_CLASS + j})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["image", "text", "labels", "id"])
        writer.writeheader()
        writer.writerows(rows)
    draw("ellipse", CLASSES["red"][2], rng).save(root / "query_red.png")
    p = {k: str(root / v) for k, v in dict(data="data.npz", model="model.pt", index="index.npz",
                                           manifest="manifest.csv", images="images", query="query_red.png").items()}
    data = ["--dataset", p["data"], "--protocol", "custom:query=6"]
    assert main(["encode", "--checkpoint", str(tiny_clip_dir), "--images", p["images"], "--manifest", p["manifest"],
                 "--out", p["data"], "--batch-size", "16"]) == 0
    assert main(["train", "--method", "scm", "--bits", "16", "--set", "anchors=0", *data, "--out", p["model"]]) == 0
    assert main(["index", "build", "--model", p["model"], *data, "--manifest", p["manifest"], "--out", p["index"]]) == 0
    p["data_args"] = data
    return p


def search(capsys, pipeline, tiny_clip_dir, *query: str, where: tuple[str, ...] = ()) -> dict:
    location = where or ("--index", pipeline["index"])
    out = cli(capsys, "search", "--model", pipeline["model"], *location, "--checkpoint", str(tiny_clip_dir),
              "-k", str(K), "--json", *query)
    return json.loads(out)


@pytest.mark.parametrize("name", list(CLASSES))
def test_caption_finds_images_of_its_class(capsys, pipeline, tiny_clip_dir, name):
    results = search(capsys, pipeline, tiny_clip_dir, "--text", CLASSES[name][0])
    hits = results["hits"]
    assert len(hits) == K and all(h["modality"] == "image" for h in hits)
    assert [h["metadata"]["labels"] for h in hits] == [[name]] * K
    assert all(h["metadata"]["image"].startswith(f"{name}_") and h["metadata"]["text"] == CLASSES[name][0]
               for h in hits)


def test_image_query_and_index_info(capsys, pipeline, tiny_clip_dir):
    hits = search(capsys, pipeline, tiny_clip_dir, "--image", pipeline["query"])["hits"]
    assert [h["metadata"]["labels"] for h in hits] == [["red"]] * K
    info = json.loads(cli(capsys, "index", "info", pipeline["index"]))
    assert info["size"] == 3 * PER_CLASS - 6 and info["modalities"] == ["image"]
    assert info["encoder"]["checkpoint"] == str(Path(tiny_clip_dir).resolve())
    assert info["dataset"]["protocol"] == "custom:query=6" and info["model"].startswith("scm@")


def test_another_encoder_is_refused(capsys, pipeline, tmp_path):
    other = build_tiny_clip(tmp_path / "other_clip", seed=1)
    capsys.readouterr()
    assert main(["search", "--model", pipeline["model"], "--index", pipeline["index"], "--checkpoint", str(other),
                 "--text", "red disc"]) == 2
    assert "is not the one that encoded the indexed dataset" in capsys.readouterr().err


@pytest.mark.postgres
def test_postgres_store_gives_the_same_results(capsys, pipeline, tiny_clip_dir):
    from cmhash.index.pg_server import embedded_server

    parent = Path(tempfile.mkdtemp(prefix="cmhash-pg-e2e-"))  # not tmp_path: see tests/test_index_pgvector.py
    server = embedded_server(parent / "data", cleanup_mode="delete")
    try:
        pg = ("--store", "pg", "--dsn", server.get_uri())
        cli(capsys, "index", "build", "--model", pipeline["model"], *pipeline["data_args"],
            "--manifest", pipeline["manifest"], *pg)
        for query in (("--text", "green box"), ("--image", pipeline["query"]), ("--query-id", "105")):
            assert search(capsys, pipeline, tiny_clip_dir, *query, where=pg) == \
                search(capsys, pipeline, tiny_clip_dir, *query)
        info = json.loads(cli(capsys, "index", "info", "--model", pipeline["model"], *pg))
        assert info["store"] == "pg" and info["size"] == 3 * PER_CLASS - 6
        assert main(["index", "build", "--model", pipeline["model"], *pipeline["data_args"], *pg]) == 2
        assert f"already holds {3 * PER_CLASS - 6 + 1} rows" in capsys.readouterr().err  # codes + header row
        assert main(["index", "build", "--replace", "--model", pipeline["model"], *pipeline["data_args"], *pg]) == 0
        capsys.readouterr()
        assert main(["index", "drop", "--model", pipeline["model"], *pg]) == 0
        assert "dropped table" in capsys.readouterr().out
        assert main(["index", "info", "--model", pipeline["model"], *pg]) == 2
        assert "cmhash index drop" in capsys.readouterr().err  # an empty (e.g. half-built) table names the way out
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


def test_http_api_with_an_encoder_matches_the_cli(capsys, pipeline, tiny_clip_dir):
    from fastapi.testclient import TestClient

    from cmhash.service import Retriever
    from cmhash.service.app import create_app

    with Retriever.open(pipeline["model"], pipeline["index"], checkpoint=tiny_clip_dir) as retriever:
        client = TestClient(create_app(retriever))
        by_text = client.post("/search/text", json={"text": "blue bar", "k": K})
        assert by_text.status_code == 200, by_text.text
        assert by_text.json().pop("took_ms") >= 0
        assert {k: v for k, v in by_text.json().items() if k != "took_ms"} == \
            search(capsys, pipeline, tiny_clip_dir, "--text", "blue bar")
        with open(pipeline["query"], "rb") as f:
            by_image = client.post("/search/image", files={"file": ("q.png", f, "image/png")}, data={"k": str(K)})
        assert {k: v for k, v in by_image.json().items() if k != "took_ms"} == search(capsys, pipeline, tiny_clip_dir, "--image", pipeline["query"])
        assert client.get("/info").json()["encoder"]["fingerprint"] == retriever.encoder.fingerprint
