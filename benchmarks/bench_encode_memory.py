"""Peak resident memory of `cmhash encode --from dcmh` on a raw 4-D uint8 image array; prints a Markdown table.

Usage: .venv/bin/python benchmarks/bench_encode_memory.py [--items 2000 8000] [--size 224] [--layouts v73 v5]
                                                         [--checkpoint CLIP_DIR] [--batch-size 64]

For each item count and layout it writes an ``IAll`` array as MATLAB holds DCMH's (height x width x 3
x items, uint8; v7.3 = HDF5 stored transposed, written slice by slice; v5 = an uncompressed
``save -v6`` file), with ``LAll`` (24 labels) and ``YAll`` (1,386 tags), into a temporary directory,
then runs ``cmhash encode --from dcmh`` in a child process and reads the child's peak resident set
size (``VmHWM``, read by the child itself as it finishes). The encoder is a small random CLIP (2 layers, width 32,
224x224 input, 32x32 patches, built offline) unless ``--checkpoint`` names a real one: the figure is
what the pipeline holds (torch, the model, one chunk of images, the output features), not a big
model's weights. The claim checked: memory does not grow with the size of the image array.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io

MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
WRITE_CHUNK = 200


def images(rng: np.random.Generator, start: int, stop: int, size: int) -> np.ndarray:
    """Items start..stop as MATLAB's size x size x 3 x n uint8 block: smooth noise, so they differ."""
    coarse = rng.integers(0, 256, size=(stop - start, 8, 8, 3), dtype=np.uint8)
    block = coarse.repeat(size // 8 + 1, axis=1).repeat(size // 8 + 1, axis=2)[:, :size, :size]
    return np.ascontiguousarray(np.moveaxis(block, 0, -1))


def side_variables(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    labels = (rng.random((n, 24)) < 0.1).astype(np.float64)
    labels[np.arange(n), rng.integers(0, 24, n)] = 1
    return {"LAll": labels, "YAll": (rng.random((n, 1386)) < 0.01).astype(np.float64)}


def write_v73(path: Path, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w", userblock_size=512) as f:
        iall = f.create_dataset("IAll", shape=(n, 3, size, size), dtype=np.uint8)
        iall.attrs["MATLAB_class"] = np.bytes_("uint8")
        for start in range(0, n, WRITE_CHUNK):
            stop = min(start + WRITE_CHUNK, n)
            iall[start:stop] = images(rng, start, stop, size).T
        for name, value in side_variables(rng, n).items():
            f.create_dataset(name, data=value.T).attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as f:
        f.write(MATLAB_HEADER)


def write_v5(path: Path, n: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    iall = np.concatenate([images(rng, s, min(s + WRITE_CHUNK, n), size) for s in range(0, n, WRITE_CHUNK)], axis=-1)
    scipy.io.savemat(path, {"IAll": iall, **side_variables(rng, n)})


#: Runs the command in the child and prints its peak resident set size. VmHWM of /proc/self/status
#: belongs to the process's own address space; getrusage's ru_maxrss would not do: after a vfork
#: (what subprocess uses) it starts from the parent's peak, which here holds the generated array.
CHILD = ("import sys; from cmhash.cli import main; rc = main(sys.argv[1:]); "
         "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))); sys.exit(rc)")


def peak_rss_mib(arguments: list[str]) -> tuple[float, float]:
    """(peak resident MiB, seconds) of ``cmhash ARGUMENTS`` run in a child process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *arguments], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cmhash {' '.join(arguments)} failed:\n{done.stdout}\n{done.stderr}")
    kib = int(next(line for line in done.stdout.splitlines() if line.startswith("VmHWM")).split()[1])
    return kib / 1024, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[2000, 8000])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--layouts", nargs="+", default=["v73", "v5"], choices=["v73", "v5"])
    parser.add_argument("--checkpoint", help="a CLIP checkpoint directory (default: a small random CLIP)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cmhash-bench-encode-"))
    try:
        checkpoint = args.checkpoint
        if checkpoint is None:
            from cmhash.encoders.testing import build_tiny_clip
            checkpoint = str(build_tiny_clip(work / "clip", image_size=args.size, patch_size=32))
        rows = []
        for n in args.items:
            for layout in args.layouts:
                data = work / f"iall-{layout}-{n}.mat"
                (write_v73 if layout == "v73" else write_v5)(data, n, args.size, args.seed)
                out = work / f"out-{layout}-{n}.npz"
                command = ["encode", "--from", "dcmh", str(data),
                           "--checkpoint", checkpoint, "--out", str(out), "--batch-size", str(args.batch_size),
                           "--device", "cpu"]
                peak, seconds = peak_rss_mib(command)
                rows.append((n, layout, data.stat().st_size / 2**20, peak, seconds))
                data.unlink()
                out.unlink()
    finally:
        shutil.rmtree(work)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, batch size {args.batch_size}, "
          f"{args.size}x{args.size} images, {'small random CLIP' if args.checkpoint is None else args.checkpoint}\n")
    print("| items | file | IAll file size | peak resident memory | time |")
    print("|---:|---|---:|---:|---:|")
    for n, layout, size, peak, seconds in rows:
        name = "MATLAB v7.3 (HDF5)" if layout == "v73" else "MATLAB v5/v6, uncompressed"
        print(f"| {n:,} | {name} | {size:,.0f} MiB | {peak:,.0f} MiB | {seconds:.0f} s |")


if __name__ == "__main__":
    main()
