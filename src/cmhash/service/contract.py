"""Schemathesis against the app's own OpenAPI spec (used by the tests and ``benchmarks/bench_service.py``).

Checks every generated request's answer: no 5xx, status codes and bodies as the spec declares,
schema-valid requests accepted and invalid ones refused. Needs the ``test`` extra (schemathesis).
"""

from __future__ import annotations

from typing import Any


def run_contract(app: Any, cases_per_operation: int, headers: dict[str, str] | None = None,
                 seed: int = 0) -> tuple[int, list[str]]:
    """Generate up to ``cases_per_operation`` cases for every operation and validate each answer.

    Returns (operations run, failures as text). An upload's bytes cannot be constrained in OpenAPI
    (a binary string), so a generated file is rightly refused as "not a readable image": for
    multipart operations "schema-valid data is accepted" is not checked.
    """
    import schemathesis
    from hypothesis import HealthCheck, given, seed as hypothesis_seed, settings
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        uploads = "multipart/form-data" in str(operation.definition.raw.get("requestBody", ""))

        @hypothesis_seed(seed)
        @given(case=operation.as_strategy())
        @settings(max_examples=cases_per_operation, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)
        def check(case) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance] if uploads else [])

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - every operation runs; failures are reported together
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    return operations, failures
