"""The OpenAPI document describes what is sent and what is enforced, so a client generated from it works."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def spec(app) -> dict[str, Any]:
    return app.test_client().get("/openapi.json").get_json()


def schema_of(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def test_health_and_fhir_metadata_are_documented_as_public(spec):
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert spec["paths"]["/fhir/metadata"]["get"]["security"] == []
    assert "security" not in spec["paths"]["/api/sites"]["get"]  # the document's default: credentials


def test_enforced_constraints_are_documented(spec):
    password = schema_of(spec, "NewUser")["properties"]["password"]
    assert password["minLength"] == 10
    assert "pattern" in schema_of(spec, "NewUser")["properties"]["username"]
    assert "pattern" not in schema_of(spec, "User")["properties"]["username"]  # kept ones may predate the rule
    strength = schema_of(spec, "Drug")["properties"]["strength_amount"]
    assert strength["type"] == "number" and strength["minimum"] == 0 and strength["exclusiveMinimum"] is True
    assert schema_of(spec, "WebhookIn")["properties"]["url"]["format"] == "url"
    kinds = set(schema_of(spec, "MovementInput")["properties"]["kind"]["enum"])
    assert kinds and not kinds & {"receipt", "dispense", "reversal"}  # those are always refused there


def test_paging_and_other_headers_sent_are_documented_as_they_are(spec):
    header = spec["paths"]["/api/sites"]["get"]["responses"]["200"]["headers"]["X-Pagination"]
    assert header["schema"]["type"] == "string"
    assert "ETag" in spec["paths"]["/api/drugs/{drug_id}"]["get"]["responses"]["200"]["headers"]
    assert {"Location", "Idempotent-Replayed"} <= set(spec["paths"]["/api/prescriptions"]["post"]["responses"]["201"]
                                                      ["headers"])


def test_fhir_answers_and_errors_are_documented_as_fhir_json(spec):
    for path in ("/fhir/MedicationRequest", "/fhir"):
        operation = spec["paths"][path]["post"]
        assert "application/fhir+json" in operation["requestBody"]["content"]
        assert "application/fhir+json" in operation["responses"]["default"]["content"]
    assert list(spec["paths"]["/api/sites"]["get"]["responses"]["default"].values()) == \
        ["#/components/responses/DEFAULT_ERROR"]


def test_one_error_shape_whose_errors_are_an_object(spec):
    error = schema_of(spec, "Error")
    assert error["properties"]["errors"]["type"] == "object"
    assert set(error["required"]) == {"code", "status", "message"}


def _integers(spec: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]) -> list[tuple[str, Any]]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return []
        return _integers(spec, schema_of(spec, name), where, {*seen, name})
    if schema.get("readOnly"):
        return []
    if schema.get("type") == "integer":
        return [(where, schema)]
    found = []
    for name, sub in (schema.get("properties") or {}).items():
        found += _integers(spec, sub, f"{where}.{name}", seen)
    if "items" in schema:
        found += _integers(spec, schema["items"], f"{where}[]", seen)
    return found


def test_every_integer_the_api_takes_is_bounded_to_what_the_database_holds(spec):
    unbounded = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            parameters = operation.get("parameters", []) + operations.get("parameters", [])
            found = [(f"{method} {path} {p['name']}", p["schema"]) for p in parameters if "schema" in p
                     and p["schema"].get("type") == "integer"]
            for content in (operation.get("requestBody") or {}).get("content", {}).values():
                found += _integers(spec, content.get("schema", {}), f"{method} {path} body", set())
            unbounded += [where for where, schema in found if schema.get("maximum", 2**31) > 2**31 - 1]
    assert not unbounded, unbounded
