"""One entry point for every dataset file: :func:`load_dataset` (formats in ``cmhash.data.formats``).

Items without any label cannot be judged relevant or irrelevant to anything, so they would
silently distort mAP; the loader refuses them unless asked to drop them, and then says so.
A dataset with no label columns at all (e.g. ``cmhash encode`` without labels, for indexing)
is unlabeled by design and passes as it is.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.formats import FORMATS, detect_format

log = logging.getLogger(__name__)


def load_dataset(path: str | os.PathLike, format: str | None = None, *,
                 drop_unlabeled: bool = False) -> CrossModalDataset:
    """Load the dataset at ``path`` (a file or a directory) in ``format``, detected when None.

    Items with no label raise a :class:`DataError` unless ``drop_unlabeled`` is set; then they
    are removed (splits re-indexed), a warning is logged and a line is added to ``dataset.notes``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; known: {', '.join(FORMATS)}")
    dataset = FORMATS[format or detect_format(path)].load(path)
    return _unlabeled(dataset, drop=drop_unlabeled)


def _unlabeled(dataset: CrossModalDataset, *, drop: bool) -> CrossModalDataset:
    if dataset.num_labels == 0:
        return dataset
    keep = dataset.labels.any(axis=1)
    missing = int((~keep).sum())
    if not missing:
        return dataset
    first = int(np.flatnonzero(~keep)[0])
    if not drop:
        raise DataError(f"{missing} of {len(dataset)} items have no label (first at row {first}); "
                        "pass drop_unlabeled=True (CLI: --drop-unlabeled) to leave them out",
                        source=dataset.source, field="labels")
    note = f"dropped {missing} of {len(dataset)} items with no label"
    log.warning("%s: %s", dataset.source, note)
    new_row = np.cumsum(keep) - 1
    splits = {k: new_row[v[keep[v]]] for k, v in dataset.splits.items()}
    kept = dataset.subset(np.flatnonzero(keep))
    return CrossModalDataset(kept.image, kept.text, kept.labels, kept.ids, splits=splits, name=dataset.name,
                             source=dataset.source, notes=[*dataset.notes, note])
