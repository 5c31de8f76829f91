"""Schemathesis against the app's own OpenAPI spec: no 5xx, and every answer matches the spec.

A bounded run here (about 100 generated cases over all operations); `benchmarks/bench_service.py
--fuzz` runs a longer one. Writes are exercised with the API key, on a private copy of the index.
"""

from __future__ import annotations

import shutil

import pytest

from cmhash.service import Retriever
from cmhash.service.app import create_app
from cmhash.service.contract import run_contract

KEY = "contract-key"
CASES_PER_OPERATION = 10  # x 10 operations: about 100 cases


@pytest.fixture(scope="module")
def app(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    for path in corpus.root.glob("index.npz*"):
        shutil.copy(path, root / path.name)
    with Retriever.open(corpus.model, root / "index.npz", checkpoint=corpus.clip) as retriever:
        yield create_app(retriever, api_key=KEY, image_root=corpus.images)


def test_api_keeps_its_contract(app):
    operations, failures = run_contract(app, CASES_PER_OPERATION, {"X-API-Key": KEY})
    assert operations >= 10
    assert not failures, "\n\n".join(failures)
