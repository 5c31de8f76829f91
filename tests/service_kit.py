"""A small real corpus for service tests: drawn images + captions, encoded by the tiny CLIP, an SCM
model and a file index with the manifest (captions, image paths), the way a user builds one."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from PIL import Image, ImageDraw

from cmhash.encoders import ClipEncoder, encode_manifest
from cmhash.methods import get_method
from cmhash.service import DatasetRef, build_index

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle")
PROTOCOL = "custom:query=8,train=40"


def draw(colour: str, shape: str, size: int = 32, jitter: int = 0) -> Image.Image:
    img = Image.new("RGB", (size, size), (245, 245, 245))
    box = (4 + jitter % 4, 4 + jitter % 3, size - 4 - jitter % 5, size - 4)
    pen = ImageDraw.Draw(img)
    (pen.rectangle if shape == "square" else pen.ellipse)(box, fill=COLOURS[colour])
    return img


def build_corpus(root: Path, clip_dir: Path, copies: int = 8) -> SimpleNamespace:
    """``copies`` images per colour x shape under root/images, encoded, trained on, indexed (both modalities)."""
    images = root / "images"
    (images / "shapes").mkdir(parents=True, exist_ok=True)
    lines = ["id,image,text,labels"]
    item = 0
    for colour in COLOURS:
        for shape in SHAPES:
            for copy in range(copies):
                name = f"shapes/{colour}-{shape}-{copy}.png"
                draw(colour, shape, jitter=copy).save(images / name)
                lines.append(f"{item},{name},a {colour} {shape},{colour};{shape}")
                item += 1
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    encoder = ClipEncoder(clip_dir, device="cpu")
    encode_manifest(root / "manifest.csv", images, root / "data.npz", encoder, progress=False)
    dataset = DatasetRef(str(root / "data.npz"), protocol=PROTOCOL)
    model = get_method("scm")(bits=16, seed=0, anchors=0).fit(dataset.open())
    model.save(root / "model.pt")
    build_index(root / "model.pt", dataset, modalities=("image", "text"), out=root / "index.npz",
                manifest=root / "manifest.csv")
    return SimpleNamespace(root=root, images=images, model=root / "model.pt", index=root / "index.npz",
                           clip=clip_dir, dataset=dataset, items=item)
