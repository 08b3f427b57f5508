"""Every operation of the OpenAPI document, called as each role with data schemathesis makes from the document:
no answer is a server error, and every answer is what the document says (status, content type, headers, body).

Bounded so the suite stays quick: ``SCHEMATHESIS_EXAMPLES`` examples per operation and role (default 10)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from schemathesis.specs.openapi import checks as openapi_checks

from tests.factories import World

pytestmark = pytest.mark.usefixtures("clock")

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
ROLES = ("admin", "prescriber", "pharmacist", "procurement")
CONFORMANCE = [openapi_checks.response_schema_conformance, openapi_checks.content_type_conformance,
               openapi_checks.response_headers_conformance, openapi_checks.status_code_conformance]


def _failures(error: BaseException) -> list[str]:
    if isinstance(error, BaseExceptionGroup):
        return [line for sub in error.exceptions for line in _failures(sub)]
    return [" | ".join(line for line in str(error).splitlines() if line.strip())[:400]]


def run_operation(operation: Any, role: str, headers: dict[str, str], calls: Counter[str], server_errors: list[str],
                  mismatches: list[str]) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        calls[role] += 1
        response = case.call(headers=headers)
        try:
            case.validate_response(response, checks=[checks.not_a_server_error])
        except (Exception, BaseExceptionGroup) as error:
            server_errors.extend(f"{role} {operation.label}: {f}" for f in _failures(error))
        try:
            case.validate_response(response, checks=CONFORMANCE)
        except (Exception, BaseExceptionGroup) as error:
            mismatches.extend(f"{role} {operation.label}: {f}" for f in _failures(error))

    call()


def test_no_server_error_and_no_answer_unlike_the_document_for_any_role(app, client, world: World) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    calls: Counter[str] = Counter()
    server_errors: list[str] = []
    mismatches: list[str] = []
    for role in ROLES:
        for result in schema.get_all_operations():
            run_operation(result.ok(), role, world.a.headers(role), calls, server_errors, mismatches)
    figures = (f"schemathesis: {sum(calls.values())} calls ({', '.join(f'{r} {n}' for r, n in calls.items())}), "
               f"{len(server_errors)} server errors, {len(mismatches)} schema mismatches")
    print(figures)
    assert not server_errors, "\n".join(server_errors[:20])
    assert not mismatches, "\n".join(mismatches[:20])
    assert sum(calls.values()) >= len(ROLES) * 80  # every operation was called for every role
