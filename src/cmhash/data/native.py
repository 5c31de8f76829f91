"""cmhash's own dataset files: ``.npz`` and ``.h5`` with named arrays (schema in docs/data-formats.md).

Arrays: ``image`` (N, Di), ``text`` (N, Dt), ``labels`` (N, C) 0/1, optional ``ids`` (N,) int64,
optional ``label_names`` (C,) strings,
and one int64 index array per split named ``split_<name>`` (``.npz``) or ``splits/<name>`` (``.h5``).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import h5py
import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.io import atomic_path

REQUIRED = ("image", "text", "labels")


def save_dataset(dataset: CrossModalDataset, path: str | os.PathLike) -> None:
    """Write ``dataset`` to ``.npz`` (compressed) or ``.h5``/``.hdf5``, chosen by suffix, atomically."""
    path = Path(path)
    arrays = {"image": dataset.image, "text": dataset.text, "labels": dataset.labels, "ids": dataset.ids}
    if dataset.label_names is not None:
        arrays["label_names"] = np.array(dataset.label_names, dtype=str if path.suffix == ".npz" else object)
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            splits = {f"split_{k}": v for k, v in dataset.splits.items()}
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays, **splits, name=np.array(dataset.name))
        elif path.suffix in (".h5", ".hdf5"):
            with h5py.File(tmp, "w") as f:
                for k, v in arrays.items():
                    if k == "label_names":
                        f.create_dataset(k, data=v, dtype=h5py.string_dtype())
                    else:
                        f.create_dataset(k, data=v, compression="gzip")
                grp = f.create_group("splits")
                for k, v in dataset.splits.items():
                    grp.create_dataset(k, data=v)
                f.attrs["name"] = dataset.name
        else:
            raise ValueError(f"{path}: unknown dataset suffix {path.suffix!r} (use .npz or .h5)")


def load_native(path: str | os.PathLike) -> CrossModalDataset:
    """Read a ``.npz`` / ``.h5`` dataset written by :func:`save_dataset` (or by hand to the schema)."""
    path = Path(path)
    src = str(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            splits = {k[len("split_"):]: arrays.pop(k) for k in list(arrays) if k.startswith("split_")}
            name = str(arrays.pop("name")) if "name" in arrays else path.stem
        else:
            with h5py.File(path, "r") as f:
                arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
                splits = {k: f["splits"][k][()] for k in f["splits"]} if "splits" in f else {}
                name = str(f.attrs.get("name", path.stem))
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DataError(f"corrupt or truncated file ({exc})", source=src) from exc
    for key in REQUIRED:
        if key not in arrays:
            raise DataError(f"missing variable (has {sorted(arrays)})", source=src, field=key)
    names = arrays.get("label_names")
    if names is not None:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return CrossModalDataset(arrays["image"], arrays["text"], arrays["labels"], arrays.get("ids"),
                             splits=splits, name=name, source=src, label_names=names)
