"""Items -> cmhash dataset file (the library side of ``cmhash encode``), for every input layout.

The items come from an :class:`~cmhash.encoders.sources.ItemSource`: a manifest and an image folder,
the DCHMT/MITH ``.mat`` triplet, or DCMH's raw image array; this one pipeline encodes them all.

Resumable: rows are encoded in chunks of ``encoder.batch_size``; each chunk is written atomically to
``<out>.work/`` together with a key (what identifies the inputs, model fingerprint, chunk size), so
a restarted run re-uses every finished chunk whose key matches and redoes the rest. The dataset file
is written atomically at the end and the work directory is then removed.

Nothing is dropped silently: rows with a missing/unreadable image or an empty caption are skipped
and listed (and captions longer than the model's limit are kept truncated and listed) in
``<out>.report.csv`` (columns row, id, image, action, reason; ``row`` counts data rows from 0).
With ``strict`` the first such skip stops the run with a DataError instead.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cmhash.data.dataset import CrossModalDataset, DataError
from cmhash.data.native import save_dataset
from cmhash.encoders.manifest import Manifest
from cmhash.encoders.sources import ItemSource, ManifestSource
from cmhash.io import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from cmhash.encoders.clip import ClipEncoder

CHUNK_FORMAT = 2  # bump when the chunk file layout changes, so old work directories are not reused
REPORT_COLUMNS = ("row", "id", "image", "action", "reason")


@dataclass(frozen=True)
class Issue:
    """One reported row: ``action`` is ``skipped`` (not in the dataset) or ``truncated`` (kept)."""

    row: int
    id: int
    image: str
    action: str
    reason: str


@dataclass(frozen=True)
class EncodeSummary:
    """What a run produced, for the command to print."""

    dataset: CrossModalDataset
    dataset_path: Path
    report_path: Path
    labels_path: Path | None
    rows: int
    issues: list[Issue]
    chunks: int
    resumed_chunks: int
    ignored_columns: tuple[str, ...]

    def count(self, action: str) -> int:
        return sum(issue.action == action for issue in self.issues)

    @property
    def unlabeled(self) -> int:
        """Encoded rows with no label, when the manifest has labels at all."""
        return int((self.dataset.labels.sum(axis=1) == 0).sum()) if self.dataset.num_labels else 0


def output_paths(out: str | os.PathLike) -> dict[str, Path]:
    """Where a run writes: the dataset, the row report, the label names, the encoder record (which
    checkpoint made the features, so search can refuse queries from another encoder), and the
    resumable work directory."""
    out = Path(out)
    return {"dataset": out, "report": out.with_name(out.name + ".report.csv"),
            "labels": out.with_name(out.name + ".labels.json"), "encoder": out.with_name(out.name + ".encoder.json"),
            "work": out.with_name(out.name + ".work")}


def encode_manifest(manifest: Manifest | str | os.PathLike, images_dir: str | os.PathLike, out: str | os.PathLike,
                    encoder: "ClipEncoder", *, strict: bool = False, progress: bool = True) -> EncodeSummary:
    """Encode every row of the manifest (parsed, or a path) with ``encoder`` and write the dataset to ``out``.

    ``out`` is ``.npz`` or ``.h5``; ``progress`` shows a progress bar on stderr.
    """
    _check_out(out)
    return encode_source(ManifestSource(manifest, images_dir), out, encoder, strict=strict, progress=progress)


def encode_source(source: ItemSource, out: str | os.PathLike, encoder: "ClipEncoder", *, strict: bool = False,
                  progress: bool = True) -> EncodeSummary:
    """Encode every item of ``source`` with ``encoder`` and write the dataset to ``out`` (see the module docstring)."""
    _check_out(out)
    paths = output_paths(out)
    key = _work_key(source, encoder)
    paths["work"].mkdir(parents=True, exist_ok=True)
    chunks, resumed = [], 0
    columns = (TextColumn("encoding"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeRemainingColumn())
    bar = Progress(*columns, console=Console(stderr=True), disable=not progress)
    with bar, ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # threads overlap image decoding
        task = bar.add_task("encode", total=len(source))
        for start in range(0, len(source), encoder.batch_size):
            rows = np.arange(start, min(start + encoder.batch_size, len(source)))
            file = paths["work"] / f"chunk_{start // encoder.batch_size:06d}.npz"
            chunk = _load_chunk(file, key)
            if chunk is None:
                chunk = _encode_chunk(source, rows, encoder, pool, strict)
                _save_chunk(file, key, chunk)
            else:
                resumed += 1
            chunks.append(chunk)
            bar.advance(task, len(rows))
    return _finish(source, chunks, paths, encoder, resumed)


def _check_out(out: str | os.PathLike) -> None:
    if Path(out).suffix not in (".npz", ".h5", ".hdf5"):
        raise ValueError(f"{out}: unknown dataset suffix (use .npz or .h5)")


def _work_key(source: ItemSource, encoder: "ClipEncoder") -> str:
    parts = {"format": CHUNK_FORMAT, "inputs": source.identity(), "model": encoder.fingerprint,
             "chunk_size": encoder.batch_size}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _encode_chunk(source: ItemSource, rows: np.ndarray, encoder: "ClipEncoder", pool: ThreadPoolExecutor,
                  strict: bool) -> dict[str, np.ndarray]:
    """Encode the usable rows of one chunk; the others come back as (row, reason) skips."""
    captions = [source.caption_problem(int(r)) for r in rows]
    images = source.read_images(rows, pool)
    reasons = [caption or (image if isinstance(image, str) else "") for caption, image in zip(captions, images)]
    skipped = [(int(r), reason) for r, reason in zip(rows, reasons) if reason]
    if strict and skipped:
        row, reason = skipped[0]
        raise DataError(f"row {row} (id {source.ids[row]}): {reason}; run without --strict to skip and report "
                        "such rows", source=source.source)
    kept = np.array([r for r, reason in zip(rows, reasons) if not reason], dtype=np.int64)
    if source.texts is not None:
        text, truncated = encoder.encode_texts([source.texts[r] for r in kept], return_truncated=True)
    else:
        text, truncated = source.text_features(kept).astype(np.float32), np.zeros(len(kept), dtype=bool)
    return {"kept": kept, "image": encoder.encode_images([img for img, reason in zip(images, reasons) if not reason]),
            "text": text, "truncated": truncated,
            "skipped_rows": np.array([r for r, _ in skipped], dtype=np.int64),
            "skipped_reasons": np.array([reason for _, reason in skipped], dtype=str)}


def _save_chunk(file: Path, key: str, chunk: dict[str, np.ndarray]) -> None:
    with atomic_path(file) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=np.array(key), **chunk)


def _load_chunk(file: Path, key: str) -> dict[str, np.ndarray] | None:
    """A finished chunk of this exact run, or None (absent, or left by a run on other inputs)."""
    if not file.exists():
        return None
    with np.load(file, allow_pickle=False) as z:
        if str(z["key"]) != key:
            return None
        return {k: z[k] for k in z.files if k != "key"}


def _finish(source: ItemSource, chunks: list[dict[str, np.ndarray]], paths: dict[str, Path],
            encoder: "ClipEncoder", resumed: int) -> EncodeSummary:
    """Write report, label names and dataset (each atomically), then drop the work directory."""
    kept = np.concatenate([c["kept"] for c in chunks])
    truncated = kept[np.concatenate([c["truncated"] for c in chunks]).astype(bool)]
    issues = sorted(
        [_issue(source, int(r), "skipped", str(reason))
         for c in chunks for r, reason in zip(c["skipped_rows"], c["skipped_reasons"])]
        + [_issue(source, int(r), "truncated", f"caption longer than {encoder.max_length} tokens")
           for r in truncated],
        key=lambda issue: issue.row)
    _write_report(paths["report"], issues)
    if not len(kept):
        raise DataError(f"no row could be encoded (all {len(source)} skipped; see {paths['report']})",
                        source=source.source)
    image, text = _stack_and_drop(chunks, "image"), _stack_and_drop(chunks, "text")
    dataset = CrossModalDataset(image, text, source.labels[kept], source.ids[kept], name=paths["dataset"].stem,
                                source=source.source)
    labels_path = None
    if source.label_names is not None:
        labels_path = paths["labels"]
        atomic_write_text(labels_path, json.dumps(source.label_names, indent=0, ensure_ascii=False) + "\n")
    record = {"fingerprint": encoder.fingerprint, "checkpoint": str(encoder.checkpoint_dir),
              "image_dim": encoder.image_dim, "text_dim": int(text.shape[1]), "text": source.text_record}
    atomic_write_text(paths["encoder"], json.dumps(record, indent=1) + "\n")
    save_dataset(dataset, paths["dataset"])
    shutil.rmtree(paths["work"])
    return EncodeSummary(dataset, paths["dataset"], paths["report"], labels_path, len(source), issues,
                         len(chunks), resumed, source.ignored_columns)


def _stack_and_drop(chunks: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    """One array of every chunk, stacked; each chunk's copy is dropped once copied, so the features are
    never held twice (they are most of what an encode run holds: 0.8 GB for NUS-WIDE with ViT-B/32)."""
    first = chunks[0][key]
    out = np.empty((sum(len(c[key]) for c in chunks), *first.shape[1:]), dtype=first.dtype)
    start = 0
    for chunk in chunks:
        part = chunk.pop(key)
        out[start:start + len(part)] = part
        start += len(part)
    return out


def _issue(source: ItemSource, row: int, action: str, reason: str) -> Issue:
    return Issue(row, int(source.ids[row]), source.image_name(row), action, reason)


def _write_report(path: Path, issues: list[Issue]) -> None:
    """Always written (header only when clean), so a stale report never outlives the run it described."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(REPORT_COLUMNS)
        writer.writerows([issue.row, issue.id, issue.image, issue.action, issue.reason] for issue in issues)
