"""UCMFH / DDSS style pickles: ``train.pkl``, ``query.pkl``, ``retrieval.pkl`` in one directory.

Each file is a dict with ``image``, ``text`` and ``label`` arrays (other keys such as ``tag`` are
ignored; key names follow :data:`~cmhash.data.formats.variables.ROLE_NAMES`). The three are
stacked into one dataset with splits ``train``, ``query`` and ``database``; items repeated
across files (UCMFH's training items are usually also in the retrieval set) stay separate rows.
A single ``.pkl`` file loads as one dataset without splits.

Pickle can run code when it loads, which is why this loader unpickles with an allow-list: only
dicts, lists, numbers, strings and numpy arrays get through; anything else (torch tensors,
arbitrary classes) is refused with a message. Still, only open pickles from a source you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.formats.variables import ROLES, Variable, build, pick, stack

#: split name -> accepted file names (LCFH writes the misspelt "retrival.pkl").
SPLIT_FILES = {"train": ("train.pkl",), "query": ("query.pkl",),
               "database": ("retrieval.pkl", "retrival.pkl", "database.pkl")}

ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves only numpy array reconstruction; every other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS or module == "numpy.dtypes":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: cmhash unpickles only dicts of numpy arrays "
            "(re-save tensors with .numpy())")


def read_pickle(path: Path) -> dict:
    """The dict stored in ``path``, loaded with the numpy-only allow-list."""
    try:
        with open(path, "rb") as f:
            data = _NumpyOnlyUnpickler(f).load()
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise DataError(f"cannot unpickle (corrupt, truncated or not a numpy pickle?): {exc}", source=str(path)) from exc
    if not isinstance(data, dict):
        raise DataError(f"expected a dict of arrays, got {type(data).__name__}", source=str(path))
    return data


def _variables(path: Path) -> list[Variable]:
    out = []
    for key, value in read_pickle(path).items():
        arr = np.asarray(value)
        kind = "numeric" if arr.dtype.kind in "biuf" else "text" if arr.dtype.kind in "USO" else "other"
        out.append(Variable(str(path), str(key), arr.shape, kind, lambda arr=arr: arr))
    return out


def load_file(path: Path) -> CrossModalDataset:
    """One pickle as one dataset (no splits)."""
    chosen = {role: pick(role, _variables(path), where=str(path)) for role in ROLES}
    return build(chosen, name=path.stem, source=str(path))


def _split_file(path: Path, split: str) -> Path | None:
    return next((path / n for n in SPLIT_FILES[split] if (path / n).exists()), None)


def detect_pickle(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in (".pkl", ".pickle")
    return all(_split_file(path, s) for s in SPLIT_FILES)


def load_pickle(path: Path) -> CrossModalDataset:
    """A directory of train/query/retrieval pickles (or a single pickle file)."""
    if path.is_file():
        return load_file(path)
    files = {s: _split_file(path, s) for s in SPLIT_FILES}
    missing = [SPLIT_FILES[s][0] for s, f in files.items() if f is None]
    if missing:
        raise DataError(f"missing {', '.join(missing)} (the pickle layout needs train.pkl, query.pkl, retrieval.pkl)",
                        source=str(path))
    parts = [load_file(f) for f in files.values()]
    stacked, rows = stack(parts, name=path.name, source=str(path))
    return stacked.with_splits(**dict(zip(files, rows)))
