"""Regenerate src/cmhash/data/assets/wiki.npz from the Wiki .mat (float32, compressed).

Usage: python benchmarks/make_wiki_asset.py [path/to/wiki.mat]   (default: ../shared/data/wiki/wiki.mat)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cmhash.data import load_dataset, save_dataset

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MAT = ROOT.parent / "shared" / "data" / "wiki" / "wiki.mat"
ASSET = ROOT / "src" / "cmhash" / "data" / "assets" / "wiki.npz"
# The ten Wikipedia categories in label-column order (Rasiwasia et al., 2010).
CATEGORIES = ("art & architecture", "biology", "geography & places", "history", "literature & theatre",
              "media", "music", "royalty & nobility", "sport & recreation", "warfare")


def main(mat: Path = DEFAULT_MAT) -> None:
    dataset = load_dataset(mat, format="wiki")
    dataset.name = "wiki"
    dataset.label_names = CATEGORIES
    save_dataset(dataset, ASSET)
    print(f"{dataset.describe()} -> {ASSET} ({ASSET.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_MAT)
