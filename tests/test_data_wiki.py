"""The embedded Wiki asset: loads offline with the standard split and equals the source .mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from cmhash.data import load_wiki

WIKI_MAT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wiki" / "wiki.mat"


def test_embedded_wiki_has_the_standard_split():
    ds = load_wiki()
    assert ds.name == "wiki" and len(ds) == 2866 and ds.dims == (128, 10) and ds.num_labels == 10
    assert ds.splits["train"].tolist() == ds.splits["database"].tolist() == list(range(2173))
    assert ds.splits["query"].tolist() == list(range(2173, 2866))
    assert np.all(ds.labels.sum(axis=1) == 1)  # single-label


@pytest.mark.skipif(not WIKI_MAT.exists(), reason=f"{WIKI_MAT} not present")
def test_embedded_wiki_equals_the_mat_file():
    mat = scipy.io.loadmat(WIKI_MAT)
    ds = load_wiki()
    for field, prefix in (("image", "I"), ("text", "T"), ("labels", "L")):
        expected = np.vstack([mat[f"{prefix}_tr"], mat[f"{prefix}_te"]]).astype(getattr(ds, field).dtype)
        np.testing.assert_array_equal(getattr(ds, field), expected)
