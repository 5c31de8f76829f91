"""CLIP encoder and `cmhash encode`: real loading/encoding code on a tiny random CLIP built offline."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from cmhash.cli import main
from cmhash.data import DataError, load_native
from cmhash.encoders import ClipEncoder, encode_manifest, output_paths, read_manifest

SHAPES = [("red", "ellipse"), ("blue", "rectangle"), ("green", "ellipse"), ("yellow", "rectangle"),
          ("purple", "ellipse"), ("orange", "rectangle"), ("white", "ellipse")]


def draw(colour: str, shape: str, size: tuple[int, int] = (48, 40)) -> Image.Image:
    img = Image.new("RGB", size, "black")
    getattr(ImageDraw.Draw(img), shape)((6, 5, size[0] - 8, size[1] - 6), fill=colour)
    return img


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir: Path) -> ClipEncoder:
    return ClipEncoder(tiny_clip_dir, device="cpu", batch_size=3)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [draw(c, s, (40 + 4 * i, 36 + 2 * i)) for i, (c, s) in enumerate(SHAPES)]


# --- the encoder -------------------------------------------------------------------------------------------------

def test_embeddings_are_unit_norm_deterministic_and_distinct(encoder, images, tiny_clip_dir):
    a = encoder.encode_images(images)
    assert a.shape == (len(images), encoder.image_dim) == (7, 16) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(a, encoder.encode_images(images))
    np.testing.assert_array_equal(a, ClipEncoder(tiny_clip_dir, device="cpu", batch_size=3).encode_images(images))
    assert np.abs(a[:, None] - a[None]).sum(-1)[np.triu_indices(len(a), 1)].min() > 1e-3  # no collapsed outputs
    t = encoder.encode_texts(["a red circle", "a blue square", "tags: dog cat"])
    assert t.shape == (3, encoder.text_dim) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-6)
    assert encoder.encode_images([]).shape == encoder.encode_texts([]).shape == (0, 16)


def test_matches_clip_forward_reference(encoder, images):
    """Our path (get_*_features, v5 output objects, normalise) equals CLIPModel.forward's image/text embeds."""
    texts = ["a red circle", "hi", "a longer one"]
    tokens = encoder.tokenizer(texts, padding=True, return_tensors="pt")
    pixels = encoder.image_processor(images=images[:3], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = encoder.model(pixel_values=pixels, **tokens)
    np.testing.assert_allclose(encoder.encode_images(images[:3]), ref.image_embeds.numpy(), atol=1e-6)
    np.testing.assert_allclose(encoder.encode_texts(texts), ref.text_embeds.numpy(), atol=1e-6)


def test_item_embedding_does_not_depend_on_its_batch(encoder, images):
    texts = ["a red circle", "x", "blue on black", "dog;cat", "zz", "tiny", "seven"]
    batched_i, batched_t = encoder.encode_images(images), encoder.encode_texts(texts)
    for k in range(len(images)):
        np.testing.assert_allclose(encoder.encode_images([images[k]])[0], batched_i[k], atol=1e-6)
        np.testing.assert_allclose(encoder.encode_texts([texts[k]])[0], batched_t[k], atol=1e-6)
    changed = encoder.encode_images([images[0], draw("cyan", "rectangle"), images[2]])
    np.testing.assert_allclose(changed[[0, 2]], batched_i[[0, 2]], atol=1e-6)


def test_paths_and_pil_images_agree_and_bad_paths_are_named(encoder, images, tmp_path):
    paths = []
    for k, img in enumerate(images[:2]):
        paths.append(tmp_path / f"{k}.png")
        img.save(paths[-1])
    np.testing.assert_array_equal(encoder.encode_images(paths), encoder.encode_images(images[:2]))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg.*unreadable image"):
        encoder.encode_images([tmp_path / "bad.jpg"])
    with pytest.raises(DataError, match="gone.png.*not found"):
        encoder.encode_images([tmp_path / "gone.png"])


def test_truncation_keeps_the_prefix_and_is_reported(encoder):
    words = [chr(ord("a") + k) for k in range(20)]  # one token per single-letter word; limit is 16 incl. BOS/EOS
    long, prefix = " ".join(words), " ".join(words[:encoder.max_length - 2])
    emb, truncated = encoder.encode_texts([long, prefix, "short"], return_truncated=True)
    assert truncated.tolist() == [True, False, False]
    np.testing.assert_allclose(emb[0], emb[1], atol=1e-6)
    with pytest.warns(UserWarning, match="1 of 2 captions were longer than 16 tokens"):
        encoder.encode_texts([long, "short"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.encode_texts([prefix])


def test_missing_checkpoint_names_the_path_and_the_missing_parts(tiny_clip_dir, tmp_path):
    with pytest.raises(DataError, match="nowhere.*no such checkpoint directory"):
        ClipEncoder(tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"empty.*config\.json.*weights.*tokenizer.*preprocessor"):
        ClipEncoder(tmp_path.joinpath("empty").mkdir() or tmp_path / "empty")
    partial = shutil.copytree(tiny_clip_dir, tmp_path / "partial")
    for name in ("tokenizer.json", "vocab.json"):
        (partial / name).unlink()
    with pytest.raises(DataError, match="missing tokenizer") as err:
        ClipEncoder(partial)
    assert "config.json" not in str(err.value) and "weights" not in str(err.value)
    other = shutil.copytree(tiny_clip_dir, tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "siglip"}))
    with pytest.raises(DataError, match="model_type is 'siglip'"):
        ClipEncoder(other)


# --- the manifest ------------------------------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifest_labels_ids_and_forms(tmp_path):
    m = read_manifest(write(tmp_path / "m.csv", 'image,text,labels,id,extra\na.png,cap a,dog;cat,10,x\n'
                                                  'b.png,cap b,,11,y\nc.png,"cap, c", cat ,12,z\n'))
    assert m.label_names == ["cat", "dog"] and m.labels.tolist() == [[1, 1], [0, 0], [1, 0]]
    assert m.ids.tolist() == [10, 11, 12] and m.texts[2] == "cap, c" and m.ignored_columns == ("extra",)
    j = read_manifest(write(tmp_path / "m.jsonl", '{"image": "a.png", "text": ["dog", "park"], "labels": [0, 1, 1]}\n\n'
                                                  '{"image": "b.png", "text": "x", "labels": "[1,0,0]"}\n'
                                                  '{"image": "c.png", "text": "y", "labels": []}\n'))
    assert j.label_names is None and j.labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert j.texts[0] == "dog park" and j.ids.tolist() == [0, 1, 2]
    n = read_manifest(write(tmp_path / "n.csv", "image,text\na.png,x\n"))
    assert n.labels.shape == (1, 0) and n.label_names is None
    assert read_manifest(tmp_path / "m.csv").digest != read_manifest(tmp_path / "n.csv").digest


@pytest.mark.parametrize("name, text, match", [
    ("m.csv", "image,caption\na.png,x\n", "field 'text'.*missing column"),
    ("m.csv", "image,text,labels\na.png,x,dog\nb.png,y,\"[0,1]\"\n", "mix names and 0/1"),
    ("m.csv", "image,text,labels\na.png,x,\"[0,1]\"\nb.png,y,\"[0,1,1]\"\n", "row 1: 0/1 vector has 3 entries"),
    ("m.csv", "image,text,labels\na.png,x,\"[0,2]\"\n", "row 0: labels must be"),
    ("m.csv", "image,text,id\na.png,x,1\nb.png,y,one\n", "row 1: id must be an integer"),
    ("m.csv", "image,text,id\na.png,x,1\nb.png,y,1\n", "ids are not unique"),
    ("m.csv", "image,text\na.png,x,extra\n", "row 0 has more cells"),
    ("m.csv", "image,text\n", "no rows"),
    ("m.jsonl", '{"image": "a.png", "text": "x"}\n{"image": "b.png"\n', "line 2: invalid JSON"),
    ("m.jsonl", '{"image": 3, "text": "x"}\n', "field 'image'.*row 0: expected a string"),
    ("m.txt", "image,text\na.png,x\n", "unknown manifest suffix"),
])
def test_manifest_errors_name_file_and_problem(tmp_path, name, text, match):
    with pytest.raises(DataError, match=match) as err:
        read_manifest(write(tmp_path / name, text))
    assert name in str(err.value)


# --- the encode pipeline and command -----------------------------------------------------------------------------

@pytest.fixture
def image_folder(tmp_path, images) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for k, img in enumerate(images):
        img.save(folder / "sub" / f"{k}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    return folder


ROWS = [  # image, text, labels, id; row 2 is unreadable, row 4 has an empty caption, row 6 is truncated
    ("sub/0.png", "a red circle", "red;round", 100), ("sub/1.png", "a blue square", "blue", 101),
    ("broken.jpg", "broken", "red", 102), ("sub/3.png", "yellow box", "", 103),
    ("sub/4.png", "  ", "round", 104), ("sub/5.png", "orange box", "blue;round", 105),
    ("sub/6.png", "w h i t e e l l i p s e a b c", "round", 106), ("sub/2.png", "green circle", "round", 107),
]


def write_manifest(path: Path, rows=ROWS) -> Path:
    if path.suffix == ".csv":
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([("image", "text", "labels", "id"), *rows])
    else:
        path.write_text("".join(json.dumps({"image": i, "text": t, "labels": l.split(";") if l else [], "id": n}) + "\n"
                                for i, t, l, n in rows))
    return path


def test_encode_end_to_end_with_report(encoder, image_folder, images, tmp_path):
    out = tmp_path / "out.npz"
    summary = encode_manifest(write_manifest(tmp_path / "m.csv"), image_folder, out, encoder, progress=False)
    ds = load_native(out)
    kept = [0, 1, 3, 5, 6, 7]
    assert ds.ids.tolist() == [ROWS[r][3] for r in kept] and len(ds) == len(summary.dataset) == 6
    assert json.loads(output_paths(out)["labels"].read_text()) == ["blue", "red", "round"]
    assert ds.labels.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0], [1, 0, 1], [0, 0, 1], [0, 0, 1]]
    np.testing.assert_allclose(ds.image, encoder.encode_images([images[k] for k in (0, 1, 3, 5, 6, 2)]), atol=1e-6)
    np.testing.assert_allclose(ds.text, encoder.encode_texts([ROWS[r][1] for r in kept], return_truncated=True)[0],
                               atol=1e-6)
    with open(summary.report_path, newline="") as f:
        report = list(csv.DictReader(f))
    assert [(r["row"], r["id"], r["action"]) for r in report] == [
        ("2", "102", "skipped"), ("4", "104", "skipped"), ("6", "106", "truncated")]
    assert report[0]["image"] == "broken.jpg" and report[0]["reason"].startswith("unreadable image")
    assert report[1]["reason"] == "empty caption" and "16 tokens" in report[2]["reason"]
    assert (summary.count("skipped"), summary.count("truncated"), summary.unlabeled) == (2, 1, 1)
    assert not output_paths(out)["work"].exists()


def test_jsonl_h5_and_missing_image_match_csv(encoder, image_folder, tmp_path):
    rows = [*ROWS, ("sub/missing.png", "ghost", "red", 108)]
    a = encode_manifest(write_manifest(tmp_path / "m.csv", rows), image_folder, tmp_path / "a.npz", encoder,
                        progress=False)
    b = encode_manifest(write_manifest(tmp_path / "m.jsonl", rows), image_folder, tmp_path / "b.h5", encoder,
                        progress=False)
    ds_a, ds_b = load_native(tmp_path / "a.npz"), load_native(tmp_path / "b.h5")
    for field in ("image", "text", "labels", "ids"):
        np.testing.assert_array_equal(getattr(ds_a, field), getattr(ds_b, field))
    assert a.issues == b.issues and a.issues[-1].reason == "image file not found" and a.issues[-1].id == 108


def test_no_labels_column_gives_zero_label_columns(encoder, image_folder, tmp_path):
    manifest = write(tmp_path / "m.csv", "image,text\nsub/0.png,red\nsub/1.png,blue\n")
    summary = encode_manifest(manifest, image_folder, tmp_path / "o.npz", encoder, progress=False)
    assert load_native(tmp_path / "o.npz").labels.shape == (2, 0) and summary.labels_path is None
    assert not output_paths(tmp_path / "o.npz")["labels"].exists()


def test_strict_fails_on_first_bad_row(encoder, image_folder, tmp_path):
    with pytest.raises(DataError, match=r"m\.csv.*row 2 \(id 102\): unreadable image"):
        encode_manifest(write_manifest(tmp_path / "m.csv"), image_folder, tmp_path / "o.npz", encoder,
                        strict=True, progress=False)
    assert not (tmp_path / "o.npz").exists()


class Interrupt(Exception):
    pass


def count_image_batches(encoder: ClipEncoder, monkeypatch, fail_at: int | None = None) -> list[int]:
    """Wrap ``encoder.encode_images``: count calls, and raise on call number ``fail_at`` (a crash mid-run)."""
    calls, original = [], encoder.encode_images

    def wrapped(imgs):
        calls.append(len(imgs))
        if len(calls) == fail_at:
            raise Interrupt
        return original(imgs)

    monkeypatch.setattr(encoder, "encode_images", wrapped)
    return calls


def test_resume_after_interruption_gives_identical_output(encoder, image_folder, tmp_path, monkeypatch):
    manifest = write_manifest(tmp_path / "m.csv")  # 8 rows, batch 3 -> 3 chunks
    encode_manifest(manifest, image_folder, tmp_path / "full.npz", encoder, progress=False)
    out, work = tmp_path / "out.npz", output_paths(tmp_path / "out.npz")["work"]

    calls = count_image_batches(encoder, monkeypatch, fail_at=3)
    with pytest.raises(Interrupt):
        encode_manifest(manifest, image_folder, out, encoder, progress=False)
    assert not out.exists() and sorted(p.name for p in work.iterdir()) == ["chunk_000000.npz", "chunk_000001.npz"]

    calls = count_image_batches(encoder, monkeypatch)
    summary = encode_manifest(manifest, image_folder, out, encoder, progress=False)
    assert calls == [2] and (summary.resumed_chunks, summary.chunks) == (2, 3)  # only the last chunk (rows 6, 7)
    full, resumed = load_native(tmp_path / "full.npz"), load_native(out)
    for field in ("image", "text", "labels", "ids"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(full, field))
    assert output_paths(out)["report"].read_text() == output_paths(tmp_path / "full.npz")["report"].read_text()
    assert not work.exists()


def test_chunks_of_another_manifest_are_not_reused(encoder, image_folder, tmp_path, monkeypatch):
    out = tmp_path / "out.npz"
    count_image_batches(encoder, monkeypatch, fail_at=3)
    with pytest.raises(Interrupt):
        encode_manifest(write_manifest(tmp_path / "m.csv"), image_folder, out, encoder, progress=False)
    changed = [(i, t + " (edited)" if t.strip() else t, l, n) for i, t, l, n in ROWS]
    calls = count_image_batches(encoder, monkeypatch)
    summary = encode_manifest(write_manifest(tmp_path / "m.csv", changed), image_folder, out, encoder, progress=False)
    assert summary.resumed_chunks == 0 and len(calls) == 3


def test_cli_encode(tiny_clip_dir, image_folder, tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.jsonl")
    args = ["encode", "--checkpoint", str(tiny_clip_dir), "--images", str(image_folder), "--manifest", str(manifest),
            "--out", str(tmp_path / "o.h5"), "--batch-size", "4", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "encoded 6 of 8 rows" in printed and "skipped 2 rows (1 unreadable image, 1 empty caption)" in printed
    assert "truncated 1 captions" in printed and "1 encoded rows have no label" in printed
    assert load_native(tmp_path / "o.h5").dims == (16, 16)
    assert main([*args[:2], str(tmp_path / "nope"), *args[3:]]) == 2
    assert "nope" in capsys.readouterr().err
