"""The file formats cmhash reads, each with a detector and a loader (see docs/data-formats.md).

:data:`FORMATS` is ordered most specific first: :func:`detect_format` returns the first format
whose detector accepts the path, so e.g. a ``.mat`` file with ``I_tr``/``I_te`` is ``wiki``
before the catch-all ``dcmh``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.formats.dcmh import detect_dchmt, detect_dcmh, load_dchmt, load_dcmh
from cmhash.data.formats.pickles import detect_pickle, load_pickle
from cmhash.data.formats.splitmat import detect_splitmat, load_splitmat
from cmhash.data.native import load_native


class Format(NamedTuple):
    detect: Callable[[Path], bool]
    load: Callable[[Path], CrossModalDataset]
    summary: str


FORMATS: dict[str, Format] = {
    "native": Format(lambda p: p.is_file() and p.suffix.lower() in (".npz", ".h5", ".hdf5"), load_native,
                     "cmhash's own .npz / .h5 (image, text, labels, ids, splits)"),
    "pickle": Format(detect_pickle, load_pickle,
                     "UCMFH/DDSS directory of train.pkl, query.pkl, retrieval.pkl (dicts of arrays)"),
    "dchmt": Format(detect_dchmt, load_dchmt,
                    "DCHMT/DSPH/MITH directory of index.mat, caption.mat, label.mat holding features"),
    "wiki": Format(detect_splitmat, load_splitmat,
                   ".mat with I_tr/T_tr/L_tr and I_te/T_te/L_te (optionally *_db): Wiki and kin"),
    "dcmh": Format(detect_dcmh, load_dcmh,
                   "DCMH .mat: IAll/YAll/LAll (or similar names) in one file or in one directory"),
}


def detect_format(path: Path) -> str:
    """The name of the first format in :data:`FORMATS` that recognises ``path``."""
    for name, fmt in FORMATS.items():
        if fmt.detect(path):
            return name
    raise DataError(f"cannot tell the format (known: {', '.join(FORMATS)}); name it with format=...",
                    source=str(path))
