"""The Wiki ``.mat`` and other MAT files that carry their own split as ``I_tr``/``T_tr``/``L_tr``, ...

Variables (names case-insensitive): ``I_tr``, ``T_tr``, ``L_tr`` (training pairs), ``I_te``,
``T_te``, ``L_te`` (test pairs = queries) and optionally ``I_db``, ``T_db``, ``L_db`` (a separate
retrieval database, as in the DJSRH/JDSH feature files). Without ``*_db`` the training pairs
are also the database (the Wiki protocol). Other variables (Wiki's ``sampleInds``) are ignored.
"""

from __future__ import annotations

from pathlib import Path

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.formats.matfile import mat_variables
from cmhash.data.formats.variables import Variable, build, stack

PREFIXES = {"image": "I", "text": "T", "labels": "L"}


def _part(variables: dict[str, Variable], suffix: str) -> dict[str, Variable] | None:
    names = {role: f"{p}_{suffix}".lower() for role, p in PREFIXES.items()}
    if not any(n in variables for n in names.values()):
        return None
    for role, n in names.items():
        if n not in variables:
            raise DataError(f"missing variable {PREFIXES[role]}_{suffix}", source=next(iter(variables.values())).source,
                            field=f"{PREFIXES[role]}_{suffix}")
    return {role: variables[n] for role, n in names.items()}


def detect_splitmat(path: Path) -> bool:
    if not (path.is_file() and path.suffix.lower() == ".mat"):
        return False
    names = {v.name.lower() for v in mat_variables(path)}
    return {"i_tr", "i_te"} <= names


def load_splitmat(path: Path) -> CrossModalDataset:
    """Train and test (and database) blocks stacked; splits point at the blocks."""
    variables = {v.name.lower(): v for v in mat_variables(path)}
    parts = {suffix: _part(variables, suffix) for suffix in ("tr", "te", "db")}
    for suffix in ("tr", "te"):
        if parts[suffix] is None:
            raise DataError(f"missing variables I_{suffix}, T_{suffix}, L_{suffix}", source=str(path),
                            field=f"I_{suffix}")
    blocks = {s: build(p, name=path.stem, source=str(path)) for s, p in parts.items() if p is not None}
    stacked, rows = stack(list(blocks.values()), name=path.stem, source=str(path))
    rows = dict(zip(blocks, rows))
    return stacked.with_splits(train=rows["tr"], query=rows["te"], database=rows.get("db", rows["tr"]))
