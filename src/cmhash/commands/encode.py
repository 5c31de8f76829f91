"""``cmhash encode``: turn an image folder and a caption manifest into a cmhash dataset with a CLIP model."""

from __future__ import annotations

import argparse
from collections import Counter


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode images + captions with a local CLIP checkpoint into a dataset file",
                       description="Encode an image folder and a CSV/JSONL manifest (columns image, text, optional "
                                   "labels, id) into a .npz/.h5 dataset of L2-normalised CLIP embeddings. "
                                   "Resumable: rerun the same command after an interruption. Skipped and truncated "
                                   "rows are listed in OUT.report.csv. See docs/encoders.md.")
    p.add_argument("--checkpoint", required=True, help="local directory with a CLIP-format checkpoint (no download)")
    p.add_argument("--images", required=True, help="folder the manifest's image paths are relative to")
    p.add_argument("--manifest", required=True, help="CSV (with header) or JSONL manifest")
    p.add_argument("--out", required=True, help="dataset file to write (.npz or .h5), atomically")
    p.add_argument("--batch-size", type=int, default=64, help="rows per encoder batch and per resumable chunk")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first unreadable image or empty caption instead of skipping and reporting it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cmhash.encoders import ClipEncoder, encode_manifest, read_manifest

    console = Console(stderr=True)
    manifest = read_manifest(args.manifest)  # before loading the model: bad input fails in a second, not a minute
    encoder = ClipEncoder(args.checkpoint, device=args.device, batch_size=args.batch_size)
    summary = encode_manifest(manifest, args.images, args.out, encoder, strict=args.strict,
                              progress=console.is_terminal)
    if summary.resumed_chunks:
        console.print(f"resumed: {summary.resumed_chunks} of {summary.chunks} chunks were already encoded")
    if summary.ignored_columns:
        console.print(f"ignored manifest columns: {', '.join(summary.ignored_columns)}")
    skipped = summary.count("skipped")
    print(f"encoded {len(summary.dataset)} of {summary.rows} rows with {encoder!r}: {summary.dataset.describe()}")
    print(f"wrote {summary.dataset_path}" + (f" and label names {summary.labels_path}" if summary.labels_path else ""))
    if skipped:
        reasons = Counter(i.reason.split(" (")[0] for i in summary.issues if i.action == "skipped")
        print(f"skipped {skipped} rows (" + ", ".join(f"{n} {r}" for r, n in reasons.most_common()) + ")")
    if summary.count("truncated"):
        print(f"truncated {summary.count('truncated')} captions to {encoder.max_length} tokens (kept)")
    if summary.issues:
        print(f"row-by-row list: {summary.report_path}")
    if summary.unlabeled:
        print(f"{summary.unlabeled} encoded rows have no label")
    if not summary.dataset.num_labels:
        print("no labels column: the dataset has 0 label columns (searchable, not usable for supervised training)")
    return 0
