"""Item sources for the raw files the field circulates (see docs/datasets.md and docs/encoders.md).

- :class:`DchmtSource`: the DCHMT / DSPH / MITH / CLIP-hashing-toolbox directory: ``index.mat``
  (one image path per item), ``caption.mat`` (one caption string per item; NUS-WIDE ships
  ``caption.txt``, one caption per line) and ``label.mat`` (N x C). The stored paths are usually
  absolute paths of the author's machine; they are re-pointed to where the images are.
- :class:`DcmhSource`: DCMH's MIRFlickr-25K / NUS-WIDE ``.mat`` (one file or a directory of them):
  ``IAll`` the raw images as a 4-D uint8 array, read in slices of one chunk, ``YAll`` tags (kept as
  the text features unless captions are given), ``LAll`` labels.

Variables are found by the usual names (case-insensitive) or named with ``keys`` (role -> name).
Every error names the file, the variable and, for one item's problem, the item.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable, Sequence

import h5py
import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from cmhash.data.dataset import DataError
from cmhash.data.formats.matfile import MatArray, mat_variables, read_strings
from cmhash.data.formats.variables import Variable
from cmhash.encoders.sources import ItemSource, PathImages, file_identity

#: Variable names tried per role, first match wins (MITH's README and the CLIP-hashing toolbox's loader).
DCHMT_KEYS: dict[str, tuple[str, ...]] = {
    "image": ("index", "imgs", "FAll", "images", "paths"),
    "text": ("caption", "captions", "tags", "YAll", "text"),
    "labels": ("label", "labels", "category", "LAll"),
}
DCMH_KEYS: dict[str, tuple[str, ...]] = {
    "image": ("IAll", "images", "I", "img"),
    "text": ("YAll", "tags", "T", "Y", "text"),
    "labels": ("LAll", "labels", "L", "label"),
}
ROLE_NAMES = {"image": "image", "text": "text/caption", "labels": "labels"}


def find_variable(variables: Sequence[Variable], role: str, names: Sequence[str], where: str,
                  keys: dict[str, str] | None = None) -> Variable:
    """The variable playing ``role``: ``keys[role]`` when given, else the first of ``names`` present."""
    by_name = {v.name.lower(): v for v in variables}
    wanted = [keys[role]] if keys and role in keys else list(names)
    for name in wanted:
        if name.lower() in by_name:
            return by_name[name.lower()]
    found = ", ".join(sorted(v.name for v in variables)) or "nothing"
    looked = " or ".join(repr(n) for n in wanted)
    raise DataError(f"no {ROLE_NAMES[role]} variable: looked for {looked}, found {found}; name it with "
                    f"--keys {role}=NAME", source=where, field=role)


def origin(var: Variable) -> str:
    """``file 'variable'``, as row problems name where an item came from."""
    return f"{Path(var.source).name} {var.name!r}"


def read_captions(path: Path, keys: dict[str, str] | None = None) -> tuple[list[str], str, str | None]:
    """Captions, one per item, from a ``caption.mat``-style file or a text file of one caption per line,
    with where they came from (``file 'variable'``) and the variable (None for a text file)."""
    if not path.is_file():
        raise DataError("caption file does not exist", source=str(path))
    if path.suffix.lower() == ".txt":
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 text ({exc})", source=str(path)) from exc
        return [line.strip() for line in text.splitlines()], path.name, None
    var = find_variable(mat_variables(path), "text", DCHMT_KEYS["text"], str(path), keys)
    return read_strings(var), origin(var), var.name


def read_labels(var: Variable, items: int, items_origin: str) -> np.ndarray:
    """The (items, C) 0/1 label matrix of ``var`` as uint8; DataError naming file, variable and item otherwise."""
    if var.kind != "numeric" or len(var.shape) != 2:
        raise DataError(f"is not an items x classes matrix (shape {var.shape}, {var.kind})", source=var.source,
                        field=var.name)
    labels = var.read()
    if len(labels) != items:
        flipped = " (stored transposed?)" if labels.shape[1] == items else ""
        raise DataError(f"label row count differs: {len(labels)} rows, but {items_origin} has {items} items{flipped}",
                        source=var.source, field=var.name)
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"labels must be 0/1; item {row} has {labels[row][bad[row]][:5].tolist()}",
                        source=var.source, field=var.name)
    return labels.astype(np.uint8)


def check_count(what: str, got: int, items: int, items_origin: str, source: str, field: str | None) -> None:
    if got != items:
        raise DataError(f"{what} count differs: {got}, but {items_origin} has {items} items", source=source,
                        field=field)


# --- DCHMT / MITH ----------------------------------------------------------------------------------------------

def map_paths(stored: Sequence[str], image_root: str | os.PathLike | None, path_map: Sequence[tuple[str, str]],
              where: str, field: str) -> list[Path]:
    """Where each stored image path is on this machine.

    With ``path_map`` (OLD, NEW) pairs, a path starting with OLD gets NEW instead (longest OLD
    first); a path that no OLD matches is an error naming the item. Otherwise the stored paths'
    common directory prefix is replaced by ``image_root``. Backslashes count as separators.
    """
    paths = [p.replace("\\", "/") for p in stored]
    if path_map:
        rules = sorted(((old.replace("\\", "/"), new) for old, new in path_map), key=lambda r: -len(r[0]))
        out = []
        for item, path in enumerate(paths):
            rule = next(((old, new) for old, new in rules if path.startswith(old)), None)
            if rule is None:
                raise DataError(f"item {item}: image path {path!r} starts with none of the --path-map prefixes "
                                f"({', '.join(old for old, _ in rules)})", source=where, field=field)
            out.append(Path(rule[1] + path[len(rule[0]):]))
        return out
    if image_root is None:
        raise DataError("the stored image paths need --image-root (the folder holding the images) or --path-map",
                        source=where, field=field)
    named = [p for p in paths if p.strip()]
    prefix = posixpath.commonpath([posixpath.dirname(p) for p in named]) if named else ""
    root = Path(image_root)
    return [root / posixpath.relpath(p, prefix or ".") if p.strip() else root for p in paths]


class DchmtSource(PathImages):
    """``index.mat`` + ``caption.mat`` (or ``caption.txt``) + ``label.mat`` in one directory (see the module docstring)."""

    def __init__(self, directory: str | os.PathLike, *, image_root: str | os.PathLike | None = None,
                 path_map: Sequence[tuple[str, str]] = (), keys: dict[str, str] | None = None):
        directory = Path(directory)
        self.source = str(directory)
        if not directory.is_dir():
            raise DataError("the dchmt layout is a directory with index.mat, caption.mat (or caption.txt) and "
                            "label.mat", source=self.source)
        files = {"image": directory / "index.mat", "labels": directory / "label.mat",
                 "text": next((directory / n for n in ("caption.mat", "caption.txt") if (directory / n).exists()),
                              directory / "caption.mat")}
        for role, file in files.items():
            if not file.exists():
                raise DataError(f"missing {file.name} (the dchmt layout needs index.mat, caption.mat or caption.txt, "
                                "label.mat)", source=self.source, field=role)
        index = find_variable(mat_variables(files["image"]), "image", DCHMT_KEYS["image"], str(files["image"]), keys)
        self.stored = read_strings(index)
        self.image_origin, n = origin(index), len(self.stored)
        self.texts, self.text_origin, text_field = read_captions(files["text"], keys)
        check_count("caption", len(self.texts), n, self.image_origin, str(files["text"]), text_field)
        label_var = find_variable(mat_variables(files["labels"]), "labels", DCHMT_KEYS["labels"],
                                  str(files["labels"]), keys)
        self.labels = read_labels(label_var, n, self.image_origin)
        self.ids = np.arange(n, dtype=np.int64)
        self.paths = map_paths(self.stored, image_root, path_map, str(files["image"]), index.name)
        self.missing = [i for i, p in enumerate(self.paths) if not p.is_file()]
        if n and len(self.missing) == n:
            raise DataError(f"none of the {n} images exists: item 0 is stored as {self.stored[0]!r} and maps to "
                            f"{str(self.paths[0])!r}; check --image-root / --path-map", source=str(files["image"]),
                            field=index.name)
        self._identity = {"layout": "dchmt", "files": {r: file_identity(f) for r, f in files.items()},
                          "variables": [index.name, label_var.name, self.text_origin],
                          "paths": hashlib.sha256("\0".join(map(str, self.paths)).encode()).hexdigest()}

    def identity(self) -> dict[str, Any]:
        return self._identity

    def image_name(self, row: int) -> str:
        return self.stored[row]

    def image_path(self, row: int) -> Path:
        return self.paths[row]


# --- DCMH raw image arrays -------------------------------------------------------------------------------------

def image_layout(shape: tuple[int, ...], items: int, where: str, field: str) -> tuple[int, int, int, int]:
    """Axes (item, height, width, channel) of a 4-D image array, in MATLAB's axis order.

    DCMH's MATLAB arrays are height x width x 3 x items; arrays written from Python are usually
    items x height x width x 3 or items x 3 x height x width. The item axis is the first or last
    one of length ``items``, the channel axis the other one of length 3 (or 1); height precedes width.
    """
    if len(shape) != 4:
        raise DataError(f"is a {'x'.join(map(str, shape))} array; raw images must be 4-D "
                        "(height x width x channels x items, or items first)", source=where, field=field)
    item = next((a for a in (3, 0) if shape[a] == items), None)
    if item is None:
        raise DataError(f"shape {'x'.join(map(str, shape))} has no first or last axis of {items} items "
                        "(the label count)", source=where, field=field)
    rest = [a for a in range(4) if a != item]
    channel = next((a for a in rest if shape[a] == 3), next((a for a in rest if shape[a] == 1), None))
    if channel is None:
        raise DataError(f"shape {'x'.join(map(str, shape))} has no colour axis of length 3 (or 1)",
                        source=where, field=field)
    height, width = (a for a in rest if a != channel)
    return item, height, width, channel


def row_reader(var: Variable, items: int, items_origin: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving rows of the (items x dims) matrix ``var`` (dense or sparse), reading only those rows."""
    if var.kind != "numeric" or len(var.shape) != 2:
        raise DataError(f"is not an items x dims matrix (shape {var.shape}, {var.kind})", source=var.source,
                        field=var.name)
    check_count("row", var.shape[0], items, items_origin, var.source, var.name)
    sparse = _sparse(var)
    if sparse is not None:
        return lambda rows: sparse[rows].toarray()
    array = MatArray(var)

    def rows_of(rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.zeros((0, var.shape[1]), dtype=array.dtype)
        return array.take(0, int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]]
    return rows_of


def _sparse(var: Variable) -> scipy.sparse.csr_matrix | None:
    """A sparse variable as CSR (bag-of-words tags often are), else None."""
    path = Path(var.source)
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            group = f[var.name]
            if "MATLAB_sparse" not in group.attrs:
                return None
            data = group["data"][()] if "data" in group else np.ones(len(group["ir"]))
            return scipy.sparse.csc_matrix((data, group["ir"][()], group["jc"][()]), shape=var.shape).tocsr()
    if dict((n, c) for n, _, c in scipy.io.whosmat(path)).get(var.name) != "sparse":
        return None
    return scipy.sparse.csr_matrix(scipy.io.loadmat(path, variable_names=[var.name])[var.name])


class DcmhSource(ItemSource):
    """DCMH's ``IAll`` / ``YAll`` / ``LAll`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, *, captions: str | os.PathLike | None = None,
                 keys: dict[str, str] | None = None):
        path = Path(path)
        self.source = str(path)
        files = [path] if path.is_file() else sorted(path.glob("*.mat")) if path.is_dir() else []
        if not files:
            raise DataError("no such .mat file, or no .mat files in this directory", source=self.source)
        variables = [v for f in files for v in mat_variables(f)]
        labels = find_variable(variables, "labels", DCMH_KEYS["labels"], self.source, keys)
        image = find_variable(variables, "image", DCMH_KEYS["image"], self.source, keys)
        self.image_origin = origin(image)
        self.labels = read_labels(labels, labels.shape[0] if labels.shape else 0, origin(labels))
        n = len(self.labels)
        self.layout = image_layout(image.shape, n, image.source, image.name)
        self.ids = np.arange(n, dtype=np.int64)
        self.array = MatArray(image)
        if self.array.dtype != np.uint8:
            raise DataError(f"holds {self.array.dtype} values; raw images are read as uint8 (0-255)",
                            source=image.source, field=image.name)
        used = {image.source, labels.source}
        if captions is not None:
            self.texts, self.text_origin, text_field = read_captions(Path(captions), keys)
            check_count("caption", len(self.texts), n, self.image_origin, str(captions), text_field)
            used.add(str(captions))
        else:
            text = find_variable(variables, "text", DCMH_KEYS["text"], self.source, keys)
            self._text_rows = row_reader(text, n, self.image_origin)
            self.text_record = f"{text.name} of {text.source} (not encoded)"
            used.add(text.source)
        self._identity = {"layout": "dcmh", "files": {f: file_identity(f) for f in sorted(used)},
                          "variables": [image.name, labels.name, self.text_record if captions is None else
                                        self.text_origin]}

    def identity(self) -> dict[str, Any]:
        return self._identity

    def image_name(self, row: int) -> str:
        return f"{self.image_origin} item {row}"

    def read_images(self, rows: np.ndarray, pool: Executor) -> list[Image.Image | str]:
        if not len(rows):
            return []
        item, height, width, channel = self.layout
        block = self.array.take(item, int(rows[0]), int(rows[-1]) + 1)
        block = np.transpose(block, (item, height, width, channel))[rows - rows[0]]
        return [Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).convert("RGB") for img in block]

    def text_features(self, rows: np.ndarray) -> np.ndarray:
        return self._text_rows(rows)
