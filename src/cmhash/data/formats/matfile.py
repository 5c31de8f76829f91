"""MATLAB ``.mat`` files of both kinds, listed as :class:`Variable` objects and read on demand.

- v5 (and v4/v6/v7): :func:`scipy.io.whosmat` lists names, shapes and classes without reading;
  :func:`scipy.io.loadmat` reads one variable at a time. Sparse matrices come back dense.
- v7.3 (an HDF5 file): read with h5py. MATLAB writes column-major, so a MATLAB N x D matrix is
  stored as a D x N HDF5 dataset; a dataset carrying the ``MATLAB_class`` attribute (every
  MATLAB-written variable does) is transposed back. Datasets without it (written from Python)
  are taken as they are. ``char`` and ``cell`` classes are text; sparse groups are densified.
"""

from __future__ import annotations

import contextlib
import zlib
from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import scipy.sparse

from cmhash.data.dataset import DataError
from cmhash.data.formats.variables import Variable

MI_COMPRESSED = 15  # v5 element type of a zlib-compressed variable (not padded to 8 bytes)
TEXT_CLASSES = {"char", "cell", "string"}
OTHER_CLASSES = {"struct", "object", "function_handle", "opaque"}
# What a damaged file makes scipy or h5py raise.
READ_ERRORS = (OSError, ValueError, TypeError, EOFError, KeyError, IndexError, zlib.error,
               NotImplementedError, scipy.io.matlab.MatReadError)


def mat_variables(path: Path) -> list[Variable]:
    """All top-level variables of the MAT file ``path`` (nothing read yet)."""
    path = Path(path).resolve()
    st = path.stat()
    return list(_listing(path, st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=32)
def _listing(path: Path, mtime_ns: int, size: int) -> tuple[Variable, ...]:
    """Cached per file version: detection and loading both list a file."""
    try:
        return tuple(_hdf5_variables(path) if h5py.is_hdf5(path) else _v5_variables(path))
    except DataError:
        raise
    except READ_ERRORS as exc:
        raise DataError(f"not a readable MAT file (corrupt or truncated?): {exc}", source=str(path)) from exc


def _kind(matlab_class: str) -> str:
    return "text" if matlab_class in TEXT_CLASSES else "other" if matlab_class in OTHER_CLASSES else "numeric"


def _v5_variables(path: Path) -> list[Variable]:
    _check_v5_complete(path)
    return [Variable(str(path), name, tuple(shape), _kind(cls), _v5_reader(path, name))
            for name, shape, cls in scipy.io.whosmat(path)]


def _check_v5_complete(path: Path) -> None:
    """Walk the v5 element tags: whosmat silently lists fewer variables in a truncated file."""
    if scipy.io.matlab.matfile_version(path)[0] != 1:  # v4: no element structure to walk
        return
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(126)
        order = "<" if f.read(2) == b"IM" else ">"
        pos = 128
        while pos < size:
            f.seek(pos)
            tag = f.read(8)
            if len(tag) < 8:
                raise DataError(f"truncated: element tag at byte {pos} is cut off", source=str(path))
            mdtype, nbytes = np.frombuffer(tag, dtype=f"{order}u4")
            end = pos + 8 if mdtype >> 16 else pos + 8 + int(nbytes)  # small elements pack data in the tag
            if end > size:
                raise DataError(f"truncated: a variable ends at byte {end:,} but the file has {size:,} bytes",
                                source=str(path))
            pos = end + (-end % 8 if mdtype != MI_COMPRESSED else 0)


def _v5_reader(path: Path, name: str):
    def read() -> np.ndarray:
        with _read_errors(path, name):
            value = scipy.io.loadmat(path, variable_names=[name])[name]
        return value.toarray() if scipy.sparse.issparse(value) else np.asarray(value)
    return read


def _hdf5_variables(path: Path) -> list[Variable]:
    out = []
    with h5py.File(path, "r") as f:
        for name, obj in f.items():
            if name.startswith("#"):  # MATLAB's internal #refs# / #subsystem# groups
                continue
            cls = obj.attrs.get("MATLAB_class", b"")
            cls = cls.decode() if isinstance(cls, bytes) else str(cls)
            if isinstance(obj, h5py.Group):
                if "MATLAB_sparse" in obj.attrs:
                    shape = (int(obj.attrs["MATLAB_sparse"]), len(obj["jc"]) - 1)
                    out.append(Variable(str(path), name, shape, "numeric", _sparse_reader(path, name, shape)))
                else:
                    out.append(Variable(str(path), name, (), "other", _struct_reader(path, name)))
                continue
            from_matlab = bool(cls)
            if not cls:
                cls = "numeric" if obj.dtype.kind in "biuf" else "cell"
            shape = obj.shape[::-1] if from_matlab else obj.shape
            out.append(Variable(str(path), name, tuple(shape), _kind(cls), _hdf5_reader(path, name, from_matlab)))
    return out


def _hdf5_reader(path: Path, name: str, transpose: bool):
    def read() -> np.ndarray:
        with _read_errors(path, name), h5py.File(path, "r") as f:
            value = f[name][()]
        return value.T if transpose else value
    return read


def _sparse_reader(path: Path, name: str, shape: tuple[int, int]):
    def read() -> np.ndarray:
        with _read_errors(path, name), h5py.File(path, "r") as f:
            g = f[name]
            data = g["data"][()] if "data" in g else np.ones(len(g["ir"]))
            return scipy.sparse.csc_matrix((data, g["ir"][()], g["jc"][()]), shape=shape).toarray()
    return read


def _struct_reader(path: Path, name: str):
    def read() -> np.ndarray:
        raise DataError("is a MATLAB struct, not an array", source=str(path), field=name)
    return read


@contextlib.contextmanager
def _read_errors(path: Path, name: str):
    """Turn a low-level read failure into a DataError naming the file and variable."""
    try:
        yield
    except READ_ERRORS as exc:
        raise DataError(f"cannot read (corrupt or truncated file?): {exc}", source=str(path), field=name) from exc
