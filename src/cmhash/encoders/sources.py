"""What the encode pipeline reads: items, each an image (or an image-loading problem) and a caption.

An :class:`ItemSource` hands the pipeline, for any rows, their images and captions, plus ids,
labels and what identifies its inputs (the resume key). Every input layout is one source, and
all of them go through the one pipeline (:mod:`cmhash.encoders.pipeline`): a CSV/JSONL manifest
with an image folder (:class:`ManifestSource`), the DCHMT/MITH ``.mat`` triplet and DCMH's raw
image arrays (:mod:`cmhash.encoders.mat_sources`).

A row problem (missing or unreadable image, empty caption) is a string ``"problem (where)"``:
the pipeline skips and reports the row, or stops on it with ``strict``. ``where`` names the file,
the variable and the item when the source has them.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from cmhash.data.dataset import DataError
from cmhash.encoders.clip import load_image
from cmhash.encoders.manifest import Manifest, read_manifest

#: Files up to this size are identified by their SHA-256 for resuming; bigger ones (raw image
#: arrays of many GB) by path, size and modification time, so a resume does not reread them.
HASHED_FILE_BYTES = 256 * 2**20


class ItemSource(ABC):
    """Items to encode. Subclasses set the attributes below and implement the abstract methods."""

    source: str                       # the file or directory named in errors
    ids: np.ndarray                   # (N,) int64
    labels: np.ndarray                # (N, C) uint8
    label_names: list[str] | None = None
    ignored_columns: tuple[str, ...] = ()
    texts: Sequence[str] | None = None  # captions to encode; None: :meth:`text_features` gives text features
    text_origin: str | None = None      # "file 'variable'" of the captions, named in row problems
    text_record: str = "encoded"        # what the dataset's text features are, for the encoder record

    def __len__(self) -> int:
        return len(self.ids)

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What identifies these inputs: a resumed run re-uses chunks only when this is unchanged."""

    @abstractmethod
    def image_name(self, row: int) -> str:
        """How the report names the row's image."""

    @abstractmethod
    def read_images(self, rows: np.ndarray, pool: Executor) -> list[Image.Image | str]:
        """The rows' images, or for a row that has none, the problem (``"image file not found (...)"``)."""

    def text_features(self, rows: np.ndarray) -> np.ndarray:
        """Precomputed (len(rows), Dt) text features, for sources without captions (``texts`` is None)."""
        raise NotImplementedError

    def caption_problem(self, row: int) -> str:
        """"" when the row's caption can be encoded, else why not."""
        if self.texts is None or self.texts[row].strip():
            return ""
        return "empty caption" + (f" ({self.text_origin} item {row})" if self.text_origin else "")


class PathImages(ItemSource):
    """A source whose images are files named by one path per item, opened by a thread pool."""

    image_origin: str | None = None  # "file 'variable'" of the paths, named in row problems

    @abstractmethod
    def image_path(self, row: int) -> Path:
        """Where the row's image file is."""

    def read_images(self, rows: np.ndarray, pool: Executor) -> list[Image.Image | str]:
        return list(pool.map(lambda r: self._read(int(r)), rows))

    def _read(self, row: int) -> Image.Image | str:
        if not self.image_name(row).strip():
            return "no image path" + (f" ({self.image_origin} item {row})" if self.image_origin else "")
        path = self.image_path(row)
        try:
            return load_image(path)
        except DataError as exc:
            if not self.image_origin:
                return exc.problem
            return f"{exc.problem} ({self.image_origin} item {row}: {self.image_name(row)} -> {path})"


class ManifestSource(PathImages):
    """A CSV/JSONL manifest (:mod:`cmhash.encoders.manifest`) whose image paths are relative to a folder."""

    def __init__(self, manifest: Manifest | str | os.PathLike, images_dir: str | os.PathLike):
        self.images_dir = Path(images_dir)
        if not self.images_dir.is_dir():
            raise DataError("image folder does not exist", source=str(self.images_dir))
        self.manifest = manifest if isinstance(manifest, Manifest) else read_manifest(manifest)
        self.source, self.ids, self.labels = self.manifest.source, self.manifest.ids, self.manifest.labels
        self.label_names, self.texts = self.manifest.label_names, self.manifest.texts
        self.ignored_columns = self.manifest.ignored_columns

    def identity(self) -> dict[str, Any]:
        return {"manifest": self.manifest.digest, "images": str(self.images_dir.resolve())}

    def image_name(self, row: int) -> str:
        return self.manifest.images[row]

    def image_path(self, row: int) -> Path:
        return self.images_dir / self.manifest.images[row]


def file_identity(path: str | os.PathLike) -> str:
    """SHA-256 of a file up to :data:`HASHED_FILE_BYTES`; path, size and mtime of a bigger one."""
    path = Path(path).resolve()
    st = path.stat()
    if st.st_size > HASHED_FILE_BYTES:
        return f"{path}:{st.st_size}:{st.st_mtime_ns}"
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
