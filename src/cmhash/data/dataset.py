"""The one in-memory type for a cross-modal dataset, validated on construction.

Every loader, protocol and method speaks this type, so the checks live here once:
shapes agree across modalities, features are finite, labels are 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from cmhash.errors import DataError  # re-exported: cmhash.data.dataset.DataError stays valid

SPLITS = ("train", "query", "database")


@dataclass
class CrossModalDataset:
    """Paired image/text features with multi-hot labels and named index splits.

    ``image``: (N, Di) float32, ``text``: (N, Dt) float32, ``labels``: (N, C) uint8 in {0, 1},
    ``ids``: (N,) int64 item ids, ``splits``: name -> int64 row indices into the arrays.
    ``source`` names where the data came from, so errors can point at it.
    ``label_names``: optional (C,) class names, used when results are shown to people.
    ``notes`` records what a loader changed on the way in (e.g. unlabeled items it dropped), so
    the CLI and reports can show it; it travels with :meth:`subset` and :meth:`with_splits`.
    """

    image: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    ids: np.ndarray | None = None
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "dataset"
    source: str | None = None
    notes: list[str] = field(default_factory=list)
    label_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        self.image = _features(self.image, "image", self.source)
        self.text = _features(self.text, "text", self.source)
        self.labels = _labels(self.labels, self.source)
        n = len(self.image)
        for fld, arr in (("text", self.text), ("labels", self.labels)):
            if len(arr) != n:
                raise DataError(
                    f"modality counts differ: image has {n} rows, {fld} has {len(arr)}",
                    source=self.source, field=fld,
                )
        if self.ids is None:
            self.ids = np.arange(n, dtype=np.int64)
        self.ids = np.asarray(self.ids)
        if self.ids.shape != (n,) or not np.issubdtype(self.ids.dtype, np.integer):
            raise DataError(f"ids must be {n} integers, got shape {self.ids.shape} dtype {self.ids.dtype}",
                            source=self.source, field="ids")
        self.ids = self.ids.astype(np.int64)
        if len(np.unique(self.ids)) != n:
            raise DataError("ids are not unique", source=self.source, field="ids")
        self.splits = {k: self._split_index(k, v) for k, v in self.splits.items()}
        if self.label_names is not None:
            self.label_names = tuple(str(x) for x in self.label_names)
            if len(self.label_names) != self.labels.shape[1]:
                raise DataError(f"{len(self.label_names)} label names for {self.labels.shape[1]} label columns",
                                source=self.source, field="label_names")

    def _split_index(self, name: str, idx: Iterable[int]) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise DataError("split must be a 1-D integer index", source=self.source, field=f"splits.{name}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataError(f"split index out of range [0, {len(self)})", source=self.source, field=f"splits.{name}")
        return idx

    def __len__(self) -> int:
        return len(self.image)

    @property
    def num_labels(self) -> int:
        return self.labels.shape[1]

    def label_name(self, column: int) -> str:
        """Display name of a label column (``label <i>`` when the dataset has no names)."""
        return self.label_names[column] if self.label_names else f"label {column}"

    @property
    def dims(self) -> tuple[int, int]:
        """(image feature dim, text feature dim)."""
        return self.image.shape[1], self.text.shape[1]

    def subset(self, index: np.ndarray, name: str | None = None) -> "CrossModalDataset":
        """Rows ``index`` as a new dataset without splits."""
        index = np.asarray(index, dtype=np.int64)
        return CrossModalDataset(self.image[index], self.text[index], self.labels[index], self.ids[index],
                                 name=name or self.name, source=self.source, notes=list(self.notes),
                                 label_names=self.label_names)

    def split(self, name: str) -> "CrossModalDataset":
        """The named split as its own dataset (``train``, ``query``, ``database``, ...)."""
        if name not in self.splits:
            raise KeyError(f"{self.name}: no split {name!r}; has {sorted(self.splits)}")
        return self.subset(self.splits[name], name=f"{self.name}/{name}")

    def with_splits(self, **splits: np.ndarray) -> "CrossModalDataset":
        """The same arrays with a new set of splits."""
        return CrossModalDataset(self.image, self.text, self.labels, self.ids, splits=splits,
                                 name=self.name, source=self.source, notes=list(self.notes),
                                 label_names=self.label_names)

    def describe(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return (f"{self.name}: {len(self)} pairs, image {self.dims[0]}-d, text {self.dims[1]}-d, "
                f"{self.num_labels} labels" + (f" ({sizes})" if sizes else ""))


def _features(x: np.ndarray, fld: str, source: str | None) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"must be a 2-D (items x dims) matrix, got shape {x.shape}", source=source, field=fld)
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"must be numeric, got dtype {x.dtype}", source=source, field=fld)
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise DataError(f"{bad.sum()} NaN/Inf values in {len(rows)} rows (first row {rows[0]})", source=source, field=fld)
    return np.ascontiguousarray(x)


def _labels(y: np.ndarray, source: str | None) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 1:
        raise DataError("labels must be a multi-hot (items x classes) matrix, got a vector; "
                        "use cmhash.data.one_hot for class indices", source=source, field="labels")
    if y.ndim != 2:
        raise DataError(f"must be a 2-D (items x classes) matrix, got shape {y.shape}", source=source, field="labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise DataError("labels contain NaN/Inf", source=source, field="labels")
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5]
        raise DataError(f"labels must be 0/1, found values {bad.tolist()}", source=source, field="labels")
    return np.ascontiguousarray(y.astype(np.uint8))


def one_hot(classes: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Class indices (N,) to a one-hot (N, C) uint8 matrix."""
    classes = np.asarray(classes).astype(np.int64).ravel()
    c = int(num_classes if num_classes is not None else classes.max() + 1)
    out = np.zeros((len(classes), c), dtype=np.uint8)
    out[np.arange(len(classes)), classes] = 1
    return out
