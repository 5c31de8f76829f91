"""Schemathesis against the app's own OpenAPI spec: no 5xx, and every answer matches the spec.

A bounded run here (about 100 generated cases over all operations); `benchmarks/bench_service.py
--fuzz` runs a longer one. Writes are exercised with the API key, on a private copy of the index.
"""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from schemathesis.specs.openapi.checks import positive_data_acceptance

from cmhash.service import Retriever
from cmhash.service.app import create_app

KEY = "contract-key"
CASES_PER_OPERATION = 10  # x 10 operations: about 100 cases


@pytest.fixture(scope="module")
def app(corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    for path in corpus.root.glob("index.npz*"):
        shutil.copy(path, root / path.name)
    with Retriever.open(corpus.model, root / "index.npz", checkpoint=corpus.clip) as retriever:
        yield create_app(retriever, api_key=KEY, image_root=corpus.images)


def run_contract(app, cases_per_operation: int, headers: dict[str, str]) -> list[str]:
    """Generate cases for every operation of the app's spec and validate each answer; returns the failures."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=cases_per_operation, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, derandomize=True)
        def check(case) -> None:
            # An upload's bytes cannot be constrained in OpenAPI (a binary string): a generated file is
            # rightly refused as "not a readable image", so for uploads "valid data accepted" is not checked.
            uploads = "multipart/form-data" in str(operation.definition.raw.get("requestBody", ""))
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance] if uploads else [])

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - every operation is run; failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    return failures


def test_api_keeps_its_contract(app):
    failures = run_contract(app, CASES_PER_OPERATION, {"X-API-Key": KEY})
    assert not failures, "\n\n".join(failures)
