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
    if scipy.io.matlab.matfile_version(path)[0] == 1:  # v4: no element structure to walk
        _v5_elements(path)


def _v5_elements(path: Path) -> tuple[str, list[tuple[int, int, int]]]:
    """The byte order and the (position, type, byte count) of every top-level element of a v5 file."""
    size, elements = path.stat().st_size, []
    with open(path, "rb") as f:
        f.seek(126)
        order = "<" if f.read(2) == b"IM" else ">"
        pos = 128
        while pos < size:
            f.seek(pos)
            tag = f.read(8)
            if len(tag) < 8:
                raise DataError(f"truncated: element tag at byte {pos} is cut off", source=str(path))
            mdtype, nbytes = (int(x) for x in np.frombuffer(tag, dtype=f"{order}u4"))
            end = pos + 8 if mdtype >> 16 else pos + 8 + nbytes  # small elements pack data in the tag
            if end > size:
                raise DataError(f"truncated: a variable ends at byte {end:,} but the file has {size:,} bytes",
                                source=str(path))
            elements.append((pos, mdtype, nbytes))
            pos = end + (-end % 8 if mdtype != MI_COMPRESSED else 0)
    return order, elements


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


# --- raw content: strings (image paths, captions) and big arrays read in slices --------------------------------

#: A compressed v5 variable cannot be sliced: reading one item means decompressing all of it.
#: Up to this many bytes it is decompressed whole; beyond, the error says how to re-save it.
MAX_WHOLE_ARRAY_BYTES = 512 * 2**20
V5_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
MI_MATRIX = 14
CLASS_BYTES = {"logical": 1, "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "single": 4}


def read_strings(var: Variable) -> list[str]:
    """One string per item of a MATLAB char matrix (one row each) or cell array of char (one cell each).

    v5 files are read by scipy; v7.3 char arrays are UTF-16 code units (uint16) and cells are
    HDF5 object references into ``#refs#``, both decoded here. Items keep their order (MATLAB's
    column-major order for a cell matrix). Leading and trailing whitespace, which char matrices
    use as row padding, is removed. Another content raises a DataError naming file and variable.
    """
    path = Path(var.source)
    with _read_errors(path, var.name):
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                items = _hdf5_strings(f, f[var.name], path, var.name)
        else:
            items = _v5_strings(scipy.io.loadmat(path, variable_names=[var.name])[var.name], path, var.name)
    return [s.strip() for s in items]


def _v5_strings(value: np.ndarray, path: Path, name: str) -> list[str]:
    if value.dtype.kind == "U":  # a char matrix: scipy gives one string per row
        return [str(s) for s in value.reshape(-1)] if value.ndim <= 1 else ["".join(r) for r in value]
    if value.dtype == object:
        return [_v5_cell_text(cell, path, name, k) for k, cell in enumerate(value.reshape(-1, order="F"))]
    raise DataError(f"holds {value.dtype} numbers of shape {value.shape}, not strings (char or cell array)",
                    source=str(path), field=name)


def _v5_cell_text(cell, path: Path, name: str, item: int) -> str:
    cell = np.asarray(cell)
    if cell.dtype == object and cell.size == 1:
        return _v5_cell_text(cell.reshape(-1)[0], path, name, item)
    if cell.dtype.kind != "U":
        raise DataError(f"item {item} is {cell.dtype} of shape {cell.shape}, not a string", source=str(path), field=name)
    rows = [str(s) for s in cell.reshape(-1)]
    if len(rows) > 1:
        raise DataError(f"item {item} holds {len(rows)} strings; one string per item expected", source=str(path),
                        field=name)
    return rows[0] if rows else ""


def _hdf5_strings(f: h5py.File, obj, path: Path, name: str) -> list[str]:
    if not isinstance(obj, h5py.Dataset):
        raise DataError("is a MATLAB struct or object, not strings (char or cell array)", source=str(path), field=name)
    cls = _class(obj)
    if cls == "cell" or obj.dtype == h5py.ref_dtype:
        # C-order over the stored (reversed) shape is MATLAB's column-major order.
        return [_hdf5_char(f[ref], path, name, k) for k, ref in enumerate(obj[()].reshape(-1))]
    if cls == "char":
        if obj.attrs.get("MATLAB_empty", 0):
            return []
        codes = obj[()].T  # MATLAB items x characters
        return [_utf16(row) for row in np.atleast_2d(codes)]
    if not cls and obj.dtype.kind in "SUO":  # written from Python: variable-length strings
        return [v.decode() if isinstance(v, bytes) else str(v) for v in obj[()].reshape(-1)]
    if cls == "string":
        raise DataError("is a MATLAB string object, which only MATLAB can decode; save it as a cell array of char "
                        "(cellstr(x)) instead", source=str(path), field=name)
    raise DataError(f"holds {cls or obj.dtype} data of shape {obj.shape[::-1]}, not strings (char or cell array)",
                    source=str(path), field=name)


def _hdf5_char(obj, path: Path, name: str, item: int) -> str:
    if _class(obj) != "char":
        raise DataError(f"item {item} is {_class(obj) or obj.dtype}, not a char string", source=str(path), field=name)
    if obj.attrs.get("MATLAB_empty", 0):
        return ""
    codes = np.atleast_2d(obj[()].T)
    if len(codes) > 1:
        raise DataError(f"item {item} is a {len(codes)}-row char matrix; one string per item expected",
                        source=str(path), field=name)
    return _utf16(codes[0])


def _class(obj) -> str:
    cls = obj.attrs.get("MATLAB_class", b"")
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _utf16(codes: np.ndarray) -> str:
    return np.asarray(codes, dtype="<u2").tobytes().decode("utf-16-le", errors="replace").rstrip("\0")


class MatArray:
    """A numeric MAT variable read in slices along one axis, in MATLAB's axis order (what ``Variable.shape`` shows).

    v7.3 (HDF5): h5py reads the slice from disk. v5 uncompressed: the data are located in the file;
    items along the last axis (MATLAB's H x W x 3 x N images) are one byte range each, read with a
    plain read, other axes through a memory map made for that one read. v5 compressed (MATLAB's default ``-v7``): no
    random access exists, so the variable is decompressed whole, and only up to
    :data:`MAX_WHOLE_ARRAY_BYTES`; beyond it, a DataError says how to re-save the file.
    """

    def __init__(self, var: Variable):
        self.var, self.shape = var, tuple(var.shape)
        path = Path(var.source)
        self._hdf5 = h5py.is_hdf5(path)
        self._array: np.ndarray | None = None
        if self._hdf5:
            with _read_errors(path, var.name), h5py.File(path, "r") as f:
                ds = f[var.name]
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "biuf":
                    raise DataError("is not a numeric array", source=var.source, field=var.name)
                self.dtype, self._transposed = ds.dtype, bool(_class(ds))
        else:
            with _read_errors(path, var.name):
                self._array = _v5_memmap(path, var.name, self.shape)
            if self._array is None:
                cls = next(c for n, _, c in scipy.io.whosmat(path) if n == var.name)
                size = int(np.prod(self.shape)) * CLASS_BYTES.get(cls, 8)
                if size > MAX_WHOLE_ARRAY_BYTES:
                    raise DataError(f"is zlib-compressed (MATLAB -v7), so it cannot be read in slices, and at "
                                    f"{size / 2**30:.2f} GiB it is too big to decompress whole; re-save it with "
                                    "save(..., '-v7.3') or save(..., '-v6'), which cmhash reads chunk by chunk",
                                    source=var.source, field=var.name)
                self._array = var.read()
            self.dtype = self._array.dtype

    def take(self, axis: int, start: int, stop: int) -> np.ndarray:
        """Items ``start:stop`` along MATLAB ``axis``, as an in-memory array in MATLAB axis order."""
        index = [slice(None)] * len(self.shape)
        if not self._hdf5:
            index[axis] = slice(start, stop)
            if not isinstance(self._array, np.memmap):
                return np.array(self._array[tuple(index)])
            if axis == len(self.shape) - 1:
                return self._read_last_axis(start, stop)
            # A fresh map per call: its pages leave the process with it, instead of piling up in one long-lived map.
            mapped = np.memmap(self._array.filename, dtype=self.dtype, mode="r", offset=self._array.offset,
                               shape=self.shape, order="F")
            return np.array(mapped[tuple(index)])
        path = Path(self.var.source)
        index[len(self.shape) - 1 - axis if self._transposed else axis] = slice(start, stop)
        with _read_errors(path, self.var.name), h5py.File(path, "r") as f:
            block = f[self.var.name][tuple(index)]
        return block.T if self._transposed else block

    def _read_last_axis(self, start: int, stop: int) -> np.ndarray:
        """Column-major: items along the last axis are one contiguous byte range, read with a plain file read
        (slicing the memory map would leave every page read so far mapped, and counted, in the process)."""
        per_item = int(np.prod(self.shape[:-1]))
        with open(self.var.source, "rb") as f:
            f.seek(self._array.offset + start * per_item * self.dtype.itemsize)
            data = np.fromfile(f, dtype=self.dtype, count=(stop - start) * per_item)
        return data.reshape((*self.shape[:-1], stop - start), order="F")


def _v5_memmap(path: Path, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The variable ``name`` of a v5 file memory-mapped in Fortran order, or None when it is compressed."""
    order, elements = _v5_elements(path)
    with open(path, "rb") as f:
        for pos, mdtype, nbytes in elements:
            if mdtype == MI_MATRIX:
                found, dtype, offset = _v5_matrix_data(f, pos + 8, order)
                if found == name:
                    return None if dtype is None else np.memmap(path, dtype=np.dtype(order + dtype), mode="r",
                                                                offset=offset, shape=shape, order="F")
            elif mdtype == MI_COMPRESSED and _v5_compressed_name(f, pos + 8, nbytes, order) == name:
                return None
    raise DataError("variable not found", source=str(path), field=name)


def _v5_subelement(f, order: str) -> tuple[int, bytes]:
    """Read one sub-element (small or normal format) at the current position, padded to 8 bytes."""
    tag = np.frombuffer(f.read(8), dtype=f"{order}u4")
    if tag[0] >> 16:  # small element: type in the low half, byte count in the high half, data in the tag
        return int(tag[0] & 0xFFFF), np.asarray(tag[1:2]).tobytes()[:int(tag[0] >> 16)]
    data = f.read(int(tag[1]))
    f.read(-int(tag[1]) % 8)
    return int(tag[0]), data


def _v5_matrix_data(f, start: int, order: str) -> tuple[str, str | None, int]:
    """(name, stored dtype or None when sparse/complex/cell, file offset of the real data) of a miMATRIX element."""
    f.seek(start)
    _, flags = _v5_subelement(f, order)
    flag_word = int(np.frombuffer(flags[:4], dtype=f"{order}u4")[0])
    _v5_subelement(f, order)  # dimensions (already known from whosmat)
    _, raw_name = _v5_subelement(f, order)
    name = raw_name.decode("latin-1")
    if flag_word & 0x800 or (flag_word & 0xFF) not in range(6, 16):  # complex, or not a numeric class
        return name, None, 0
    tag = np.frombuffer(f.read(8), dtype=f"{order}u4")
    if tag[0] >> 16:
        return name, V5_DTYPES.get(int(tag[0] & 0xFFFF)), f.tell() - 4
    return name, V5_DTYPES.get(int(tag[0])), f.tell()


def _v5_compressed_name(f, start: int, nbytes: int, order: str) -> str:
    """The variable name inside a compressed element (decompresses only its first bytes)."""
    f.seek(start)
    head = zlib.decompressobj().decompress(f.read(min(nbytes, 4096)), 512)
    pos = 8 + 16  # matrix tag, array flags
    tag = np.frombuffer(head[pos:pos + 8], dtype=f"{order}u4")
    pos += 8 + int(tag[1]) + (-int(tag[1]) % 8)  # dimensions
    tag = np.frombuffer(head[pos:pos + 8], dtype=f"{order}u4")
    if tag[0] >> 16:
        return head[pos + 4:pos + 4 + int(tag[0] >> 16)].decode("latin-1")
    return head[pos + 8:pos + 8 + int(tag[1])].decode("latin-1")
