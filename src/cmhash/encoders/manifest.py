"""The encode manifest: one row per image-caption pair, as CSV (with a header) or JSON Lines.

Columns: ``image`` (path relative to the image folder), ``text`` (caption or tags; in JSONL a list
of strings is joined with spaces), optional ``id`` (integer, unique; default: the row number) and
optional ``labels``. Labels are either names, ``"dog;cat"`` (or a JSON list of strings), or a 0/1
vector written as a JSON list, ``[0,1,1]`` (in a CSV cell too). Names build a vocabulary, sorted,
one label column per name. An empty labels value means "no label" (a zero row). Without a labels
column the labels matrix has zero columns: such data can be indexed and searched, not used for
supervised training. Missing images or captions are not errors here: the encoder reports them per row.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmhash.data.dataset import DataError

REQUIRED = ("image", "text")
OPTIONAL = ("id", "labels")


@dataclass(frozen=True)
class Manifest:
    """Parsed manifest rows; ``digest`` (SHA-256 of the file) keys resumable work to this exact file."""

    source: str
    images: list[str]
    texts: list[str]
    ids: np.ndarray
    labels: np.ndarray
    label_names: list[str] | None
    digest: str
    ignored_columns: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.images)


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Parse a ``.csv`` or ``.jsonl``/``.ndjson`` manifest; DataError naming the file, row and field on bad input."""
    path = Path(path)
    src = str(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc})", source=src) from exc
    if path.suffix == ".csv":
        records = _csv_records(text, src)
    elif path.suffix in (".jsonl", ".ndjson"):
        records = _jsonl_records(text, src)
    else:
        raise DataError(f"unknown manifest suffix {path.suffix!r} (use .csv or .jsonl)", source=src)
    if not records:
        raise DataError("manifest has no rows", source=src)
    columns = {key for record in records for key in record}
    for col in REQUIRED:
        if col not in columns:
            raise DataError(f"missing column (has {sorted(columns)})", source=src, field=col)
    labels, names = (_label_matrix([r.get("labels") for r in records], src) if "labels" in columns
                     else (np.zeros((len(records), 0), dtype=np.uint8), None))
    return Manifest(
        source=src,
        images=[_string(r.get("image"), i, "image", src) for i, r in enumerate(records)],
        texts=[_string(r.get("text"), i, "text", src) for i, r in enumerate(records)],
        ids=_ids(records, src) if "id" in columns else np.arange(len(records), dtype=np.int64),
        labels=labels,
        label_names=names,
        digest=hashlib.sha256(raw).hexdigest(),
        ignored_columns=tuple(sorted(columns - set(REQUIRED) - set(OPTIONAL))),
    )


def _csv_records(text: str, src: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    records = list(reader)
    for i, record in enumerate(records):
        if None in record:
            raise DataError(f"row {i} has more cells than the header", source=src)
    return records


def _jsonl_records(text: str, src: str) -> list[dict[str, Any]]:
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {lineno}: invalid JSON ({exc})", source=src) from exc
        if not isinstance(record, dict):
            raise DataError(f"line {lineno}: expected a JSON object, got {type(record).__name__}", source=src)
        records.append(record)
    return records


def _string(value: Any, row: int, fld: str, src: str) -> str:
    """A cell as text; missing becomes "" (reported as a skipped row later, not an error)."""
    if value is None:
        return ""
    if isinstance(value, list) and fld == "text" and all(isinstance(v, str) for v in value):
        return " ".join(value)
    if not isinstance(value, str):
        raise DataError(f"row {row}: expected a string, got {value!r}", source=src, field=fld)
    return value


def _ids(records: list[dict[str, Any]], src: str) -> np.ndarray:
    ids = []
    for i, record in enumerate(records):
        value = record.get("id")
        if isinstance(value, int) and not isinstance(value, bool):
            ids.append(value)
        elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
            ids.append(int(value))
        else:
            raise DataError(f"row {i}: id must be an integer, got {value!r}", source=src, field="id")
    ids = np.array(ids, dtype=np.int64)
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"ids are not unique (e.g. {values[counts > 1][:5].tolist()})", source=src, field="id")
    return ids


def _label_matrix(values: list[Any], src: str) -> tuple[np.ndarray, list[str] | None]:
    """(N, C) uint8 labels and the names of the columns (None when given as 0/1 vectors)."""
    parsed = [_parse_labels(v, i, src) for i, v in enumerate(values)]
    kinds = {kind for kind, _ in parsed if kind}
    if len(kinds) > 1:
        raise DataError("labels mix names and 0/1 vectors across rows; use one form", source=src, field="labels")
    if kinds == {"vector"}:
        width = next(len(items) for kind, items in parsed if kind)
        for i, (kind, items) in enumerate(parsed):
            if kind and len(items) != width:
                raise DataError(f"row {i}: 0/1 vector has {len(items)} entries, earlier rows have {width}",
                                source=src, field="labels")
        return np.array([items if kind else [0] * width for kind, items in parsed], dtype=np.uint8), None
    names = sorted({name for _, items in parsed for name in items})
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(parsed), len(names)), dtype=np.uint8)
    for i, (_, items) in enumerate(parsed):
        matrix[i, [column[name] for name in items]] = 1
    return matrix, names


def _parse_labels(value: Any, row: int, src: str) -> tuple[str | None, list]:
    """("names", [...]), ("vector", [0/1, ...]) or (None, []) for an empty value."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"row {row}: labels look like a JSON list but do not parse ({exc})",
                            source=src, field="labels") from exc
    if value is None or value == "" or value == []:
        return None, []
    if isinstance(value, str):
        names = [name.strip() for name in value.split(";")]
        return ("names", [n for n in names if n]) if any(names) else (None, [])
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "names", [v.strip() for v in value if v.strip()]
    if isinstance(value, list) and all(isinstance(v, (int, bool)) and v in (0, 1) for v in value):
        return "vector", [int(v) for v in value]
    raise DataError(f"row {row}: labels must be 'name;name', a list of names or a 0/1 list, got {value!r}",
                    source=src, field="labels")
