"""The embedded Wiki asset: loads offline with the standard split, its content matches a recorded
checksum (always checked, so a clean clone without the source .mat still tests the asset), and it
equals the source .mat where that file is present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cmhash.data import load_wiki

# sha256 of image (float32), text (float32), labels (uint8), row-major, in the standard order
# (training rows then query rows): the content of the published wiki.mat (checked below where present).
WIKI_CONTENT_SHA256 = "0b020050ddf8cfa350e190e4e873c6dfe7a145153548f851e236af309bb60ca6"


def wiki_mat() -> Path | None:
    """The source .mat: $CMHASH_WIKI_MAT, or shared/data/wiki/wiki.mat beside any folder above the repo."""
    if os.environ.get("CMHASH_WIKI_MAT"):
        return Path(os.environ["CMHASH_WIKI_MAT"])
    for parent in Path(__file__).resolve().parents[1].parents:
        candidate = parent / "shared" / "data" / "wiki" / "wiki.mat"
        if candidate.exists():
            return candidate
    return None


def content_sha256(image: np.ndarray, text: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    for array, dtype in ((image, np.float32), (text, np.float32), (labels, np.uint8)):
        h.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return h.hexdigest()


def test_embedded_wiki_has_the_standard_split():
    ds = load_wiki()
    assert ds.name == "wiki" and len(ds) == 2866 and ds.dims == (128, 10) and ds.num_labels == 10
    assert ds.splits["train"].tolist() == ds.splits["database"].tolist() == list(range(2173))
    assert ds.splits["query"].tolist() == list(range(2173, 2866))
    assert np.all(ds.labels.sum(axis=1) == 1)  # single-label


def test_embedded_wiki_content_matches_the_recorded_checksum():
    ds = load_wiki()
    assert content_sha256(ds.image, ds.text, ds.labels) == WIKI_CONTENT_SHA256


@pytest.mark.skipif(wiki_mat() is None, reason="wiki.mat not found (set CMHASH_WIKI_MAT); the checksum test "
                                                "above still checks the asset")
def test_embedded_wiki_equals_the_mat_file():
    mat = scipy.io.loadmat(wiki_mat())
    ds = load_wiki()
    expected = {}
    for field, prefix in (("image", "I"), ("text", "T"), ("labels", "L")):
        expected[field] = np.vstack([mat[f"{prefix}_tr"], mat[f"{prefix}_te"]]).astype(getattr(ds, field).dtype)
        np.testing.assert_array_equal(getattr(ds, field), expected[field])
    assert content_sha256(expected["image"], expected["text"], expected["labels"]) == WIKI_CONTENT_SHA256
