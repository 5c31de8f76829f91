"""``cmhash encode``: turn images and captions into a cmhash dataset with a CLIP model.

Inputs: an image folder with a CSV/JSONL manifest, or the raw files the field circulates
(``--from dchmt DIR``: index.mat / caption.mat or caption.txt / label.mat; ``--from dcmh PATH``:
DCMH's IAll / YAll / LAll). All go through the same resumable pipeline.
"""

from __future__ import annotations

import argparse
from collections import Counter

from cmhash.data.dataset import DataError

FROM = ("dchmt", "dcmh")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode images + captions with a local CLIP checkpoint into a dataset file",
                       description="Encode an image folder and a CSV/JSONL manifest (columns image, text, optional "
                                   "labels, id), or the DCHMT/MITH .mat triplet (--from dchmt DIR --image-root ROOT), "
                                   "or DCMH's raw image array (--from dcmh FILE_OR_DIR), into a .npz/.h5 dataset of "
                                   "L2-normalised CLIP embeddings. Resumable: rerun the same command after an "
                                   "interruption. Skipped and truncated rows are listed in OUT.report.csv. See "
                                   "docs/encoders.md and docs/datasets.md.")
    p.add_argument("--checkpoint", required=True, help="local directory with a CLIP-format checkpoint (no download)")
    p.add_argument("--images", help="folder the manifest's image paths are relative to (with --manifest)")
    p.add_argument("--manifest", help="CSV (with header) or JSONL manifest")
    p.add_argument("--from", dest="source", nargs=2, metavar=("LAYOUT", "PATH"),
                   help="read raw files instead of a manifest: 'dchmt DIR' (index.mat, caption.mat or caption.txt, "
                        "label.mat) or 'dcmh FILE_OR_DIR' (IAll, YAll, LAll)")
    p.add_argument("--image-root", help="with --from dchmt: the folder holding the images; it replaces the stored "
                                        "paths' common directory prefix")
    p.add_argument("--path-map", action="append", default=[], metavar="OLD=NEW",
                   help="with --from dchmt: replace the stored path prefix OLD by NEW (repeatable; instead of "
                        "--image-root)")
    p.add_argument("--captions", help="with --from dcmh: caption.mat or caption.txt to encode as the text side "
                                      "(default: keep YAll as the text features)")
    p.add_argument("--keys", action="append", default=[], metavar="ROLE=NAME",
                   help="with --from: the variable holding a role (image, text, labels) when it has an unusual name "
                        "(repeatable)")
    p.add_argument("--out", required=True, help="dataset file to write (.npz or .h5), atomically")
    p.add_argument("--batch-size", type=int, default=64, help="rows per encoder batch and per resumable chunk")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first unreadable image or empty caption instead of skipping and reporting it")
    p.set_defaults(func=run)


def pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    """``A=B`` command-line values as (A, B); the error names the option and the value."""
    out = []
    for value in values:
        if "=" not in value:
            raise DataError(f"{option} {value!r}: expected OLD=NEW form (e.g. {option} /path/flickr25k=/data/mir)",
                            field=option)
        out.append(tuple(value.split("=", 1)))
    return out


def open_source(args: argparse.Namespace):
    """The item source the arguments name; every mismatch of options is a DataError naming the option."""
    from cmhash.encoders import DchmtSource, DcmhSource, ManifestSource

    if args.source is None:
        if not (args.images and args.manifest):
            raise DataError("give --images and --manifest, or --from dchmt|dcmh PATH", field="--from")
        return ManifestSource(args.manifest, args.images)
    layout, path = args.source
    if layout not in FROM:
        raise DataError(f"--from {layout!r}: unknown layout (known: {', '.join(FROM)})", field="--from")
    if args.images or args.manifest:
        raise DataError("--images/--manifest do not go with --from", field="--from")
    keys = dict(pairs(args.keys, "--keys"))
    unknown = set(keys) - {"image", "text", "labels"}
    if unknown:
        raise DataError(f"--keys: unknown role {sorted(unknown)[0]!r} (roles: image, text, labels)", field="--keys")
    if layout == "dchmt":
        if args.captions:
            raise DataError("--captions goes with --from dcmh; the dchmt layout has its own captions", field="--captions")
        if args.image_root and args.path_map:
            raise DataError("give --image-root or --path-map, not both", field="--path-map")
        return DchmtSource(path, image_root=args.image_root, path_map=pairs(args.path_map, "--path-map"), keys=keys)
    if args.image_root or args.path_map:
        raise DataError("--image-root/--path-map go with --from dchmt (dcmh holds the images themselves)",
                        field="--image-root")
    return DcmhSource(path, captions=args.captions, keys=keys)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cmhash.encoders import ClipEncoder, encode_source

    console = Console(stderr=True)
    source = open_source(args)  # before loading the model: bad input fails in a second, not a minute
    missing = getattr(source, "missing", [])
    if missing:
        console.print(f"{len(missing)} of {len(source)} images are missing (first: item {missing[0]}, "
                      f"{source.image_path(missing[0])}); those rows will be skipped and listed in the report")
    encoder = ClipEncoder(args.checkpoint, device=args.device, batch_size=args.batch_size)
    summary = encode_source(source, args.out, encoder, strict=args.strict, progress=console.is_terminal)
    if summary.resumed_chunks:
        console.print(f"resumed: {summary.resumed_chunks} of {summary.chunks} chunks were already encoded")
    if summary.ignored_columns:
        console.print(f"ignored manifest columns: {', '.join(summary.ignored_columns)}")
    skipped = summary.count("skipped")
    print(f"encoded {len(summary.dataset)} of {summary.rows} rows with {encoder!r}: {summary.dataset.describe()}")
    if source.texts is None:
        print(f"text features: {source.text_record}")
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
