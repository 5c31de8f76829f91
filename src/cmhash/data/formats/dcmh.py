"""MAT-file layouts that hold one row per item for all items: DCMH and DCHMT/DSPH/MITH.

``dcmh``: MIRFlickr-25K / NUS-WIDE as released with DCMH: image, tag and label matrices either
in one file or in separate files of one directory (``mirflickr25k-iall.mat``,
``mirflickr25k-yall.mat``, ``mirflickr25k-lall.mat``), variables found by the names in
:data:`~cmhash.data.formats.variables.ROLE_NAMES`.

``dchmt``: a directory with ``index.mat``, ``caption.mat`` and ``label.mat``. In the DCHMT
family these hold image paths and raw captions (variables ``index``, ``caption``,
``category``/``label``); cmhash needs features, so it accepts the same files holding feature
matrices and explains how to get them when they hold strings.
"""

from __future__ import annotations

from pathlib import Path

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.formats.matfile import mat_variables
from cmhash.data.formats.variables import ENCODE_HINT, ROLES, build, pick

DCHMT_FILES = {"image": "index.mat", "text": "caption.mat", "labels": "label.mat"}


def detect_dcmh(path: Path) -> bool:
    return path.suffix.lower() == ".mat" if path.is_file() else any(path.glob("*.mat"))


def load_dcmh(path: Path) -> CrossModalDataset:
    """One merged ``.mat`` file, or every ``.mat`` file of a directory, searched by role names."""
    files = [path] if path.is_file() else sorted(path.glob("*.mat"))
    if not files:
        raise DataError("no .mat files in this directory", source=str(path))
    variables = [v for f in files for v in mat_variables(f)]
    chosen = {role: pick(role, variables, where=str(path)) for role in ROLES}
    return build(chosen, name=path.stem if path.is_file() else path.name, source=str(path))


def detect_dchmt(path: Path) -> bool:
    return path.is_dir() and (path / "index.mat").exists() and (path / "label.mat").exists() \
        and ((path / "caption.mat").exists() or (path / "caption.txt").exists())


def load_dchmt(path: Path) -> CrossModalDataset:
    """``index.mat`` / ``caption.mat`` / ``label.mat``, each read for its own role."""
    if not path.is_dir():
        raise DataError("the dchmt format is a directory with index.mat, caption.mat and label.mat", source=str(path))
    if (path / "caption.txt").exists() and not (path / "caption.mat").exists():
        raise DataError(f"captions are raw text, not features; {ENCODE_HINT}", source=str(path / "caption.txt"))
    chosen = {}
    for role, fname in DCHMT_FILES.items():
        file = path / fname
        if not file.exists():
            raise DataError(f"missing {fname} (the dchmt layout needs index.mat, caption.mat, label.mat)",
                            source=str(path), field=role)
        chosen[role] = pick(role, mat_variables(file), where=str(file))
    return build(chosen, name=path.name, source=str(path))
