"""Bad input is refused before any service, with a 4xx that says what is wrong and where; nothing is written."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import text

from tests.api.test_fhir import FHIR, HL7_MEDRX0311, chlorthalidone, one_week  # noqa: F401 - fixtures
from tests.api.test_foundation import assert_problem
from tests.api.test_prescriptions import drugs, rx, send, stock  # noqa: F401 - fixtures and helpers
from tests.factories import World, add_drug, drug_data, receive

pytestmark = pytest.mark.usefixtures("clock")

INT4_PAST = 2**31
INT8_PAST = 2**63


def rows(connection, table: str) -> int:
    return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def amx(client, world: World) -> dict:
    return add_drug(client, world.a, "AMX250")


# --- strings ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["a\u0000b", "\ud800", "x\udfff"])
def test_a_nul_or_a_lone_surrogate_in_a_json_string_is_a_422_naming_the_field(client, world, connection, bad):
    before = rows(connection, "sites")
    body = {"code": "N1", "name": bad, "kind": "hospital", "parent_id": world.a.sites["LEAD"]}
    raw = json.dumps(body)  # keeps the escapes as JSON sends them
    problem = assert_problem(client.post("/api/sites", data=raw, content_type="application/json",
                                         headers=world.a.headers("admin")), 422, "name")
    assert "name" in problem["errors"]
    assert rows(connection, "sites") == before


def test_a_nul_in_a_nested_string_names_its_path(client, world, drugs):  # noqa: F811
    body = rx(items=[{"drug_code": "AML5\u0000", "quantity": 28, "supply_days": 7}])
    problem = assert_problem(send(client, world, body), 422, "items.0.drug_code")
    assert problem["errors"] == {"items": {"0": {"drug_code": ["contains a NUL character"]}}}


def test_a_nul_in_the_query_string_is_a_422_naming_the_parameter(client, world):
    problem = assert_problem(client.get("/api/drugs?q=amx%00", headers=world.a.headers("admin")), 422, "q")
    assert "q" in problem["errors"]["query"]


def test_a_nul_in_a_csv_upload_is_refused_naming_its_line(client, world, connection):
    before = rows(connection, "drugs")
    csv = ("code,generic_name,dosage_form,strength_amount,strength_unit,dispensing_unit,pack_size\n"
           "OK1,阿莫西林,capsule,250,mg,capsule,24\nBAD\u00002,x,capsule,250,mg,capsule,24\n")
    problem = assert_problem(client.post("/api/drugs/import", data=csv.encode(), content_type="text/csv",
                                         headers=world.a.headers("admin")), 422, "line 3")
    assert "3" in problem["errors"]["lines"]
    assert rows(connection, "drugs") == before


def test_a_nul_in_a_fhir_body_is_an_operation_outcome_naming_the_expression(client, world, chlorthalidone):  # noqa: F811
    body = one_week(copy.deepcopy(HL7_MEDRX0311))
    body["requester"]["display"] = "Patrick\u0000Pump"
    response = client.post("/fhir/MedicationRequest", data=json.dumps(body),
                           headers={**world.a.headers("prescriber"), "Content-Type": FHIR})
    assert response.status_code == 422 and response.mimetype == FHIR
    issues = response.get_json()["issue"]
    assert any(e == "requester.display" for issue in issues for e in issue.get("expression", []))


# --- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("big", [INT4_PAST, INT8_PAST, 2**70])
def test_an_id_in_a_body_past_what_the_database_holds_is_a_422_naming_it(client, world, amx, connection, big):
    before = rows(connection, "lots")
    body = {"site_id": world.a.sites["C1"], "drug_id": big, "lot_number": "L1", "expiry_date": "2027-06-30",
            "quantity": 10}
    problem = assert_problem(client.post("/api/inventory/receipts", json=body,
                                         headers=world.a.headers("pharmacist")), 422, "drug_id")
    assert "drug_id" in problem["errors"]
    assert rows(connection, "lots") == before


@pytest.mark.parametrize("path", [
    "/api/inventory/lots/2147483648/movements", "/api/sites/9223372036854775808",
    "/api/drugs/99999999999999999999999", "/api/prescriptions/2147483648",
])
def test_a_path_id_no_row_can_have_is_a_404(client, world, path):
    assert_problem(client.get(path, headers=world.a.headers("admin")), 404)


def test_dispensing_a_prescription_no_row_can_be_is_a_404(client, world):
    for rx_id in (INT4_PAST, INT8_PAST):
        assert_problem(client.post(f"/api/prescriptions/{rx_id}/dispense", json={},
                                   headers=world.a.headers("pharmacist")), 404)
    response = client.get(f"/fhir/MedicationRequest/{INT8_PAST}-1", headers=world.a.headers("prescriber"))
    assert response.status_code == 404 and response.get_json()["resourceType"] == "OperationOutcome"
    response = client.get(f"/fhir/MedicationDispense?prescription={INT8_PAST}", headers=world.a.headers("prescriber"))
    assert response.status_code == 404


def test_a_query_id_past_what_the_database_holds_is_a_422(client, world):
    problem = assert_problem(client.get(f"/api/inventory/lots?site_id={INT8_PAST}",
                                        headers=world.a.headers("admin")), 422, "site_id")
    assert "site_id" in problem["errors"]["query"]


def test_a_stocktake_line_with_a_fractional_lot_id_is_refused_and_no_lot_changes(client, world, amx, connection):
    lot = receive(client, world.a, "C1", amx["id"], "FIVE", "2027-06-30", 10).get_json()["lot_id"]
    moves = rows(connection, "movements")
    response = client.post("/api/inventory/stocktakes", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "lines": [{"lot_id": lot + 0.5, "counted": 3}]})
    problem = assert_problem(response, 422, "lines.0.lot_id")
    assert problem["errors"]["lines"]["0"]["lot_id"]
    assert rows(connection, "movements") == moves


def test_a_receipt_of_ten_million_packs_is_refused_before_it_overflows_the_lot(client, world, connection):
    drug = add_drug(client, world.a, "BIGPACK", pack_size=1000)
    before = rows(connection, "movements")
    response = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": drug["id"], "lot_number": "HUGE", "expiry_date": "2027-06-30",
        "quantity": 10_000_000, "unit": "pack"})
    problem = assert_problem(response, 422, "quantity")
    assert "quantity" in problem["errors"]
    assert rows(connection, "movements") == before


def test_a_lot_never_grows_past_what_the_database_holds(client, world, amx, connection):
    for _ in range(214):
        assert receive(client, world.a, "C1", amx["id"], "FULL", "2027-06-30", 10_000_000).status_code == 201
    response = receive(client, world.a, "C1", amx["id"], "FULL", "2027-06-30", 10_000_000)
    assert_problem(response, 422, "at most")


# --- structure -------------------------------------------------------------------------------------

@pytest.mark.parametrize("deep", ["[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000])
def test_json_nested_thousands_deep_is_refused_in_the_error_shape(client, world, deep):
    response = client.post("/api/sites", data=deep, content_type="application/json",
                           headers=world.a.headers("admin"))
    problem = assert_problem(response, 400, "nested")
    assert isinstance(problem.get("errors", {}), dict)
    fhir = client.post("/fhir/MedicationRequest", data=deep,
                       headers={**world.a.headers("prescriber"), "Content-Type": FHIR})
    assert fhir.status_code == 400 and fhir.get_json()["resourceType"] == "OperationOutcome"


def test_a_body_past_the_size_limit_is_a_413_in_the_error_shape(app, client, world):
    limit = app.config["MAX_JSON_BYTES"]
    body = json.dumps({**drug_data("LARGE"), "manufacturer": "x" * limit})
    assert_problem(client.post("/api/drugs", data=body, content_type="application/json",
                               headers=world.a.headers("admin")), 413, "at most")


def test_malformed_json_is_a_400_whose_errors_are_an_object(client, world):
    problem = assert_problem(client.post("/api/sites", data="{not json", content_type="application/json",
                                         headers=world.a.headers("admin")), 400, "JSON")
    assert isinstance(problem["errors"], dict) and "body" in problem["errors"]


def test_a_tier_without_its_price_is_a_422_naming_it(client, world, amx):
    headers = world.a.headers("procurement")
    supplier = client.post("/api/suppliers", json={"code": "S1", "name": "华东医药"}, headers=headers).get_json()
    response = client.post("/api/offers", headers=headers, json={
        "supplier_id": supplier["id"], "drug_id": amx["id"], "pack_size": 24, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0}, {"min_packs": 10, "price_per_pack": 2.0}]})
    problem = assert_problem(response, 422, "tiers.0.price_per_pack")
    assert "price_per_pack" in problem["errors"]["tiers"]["0"]


# --- FHIR ------------------------------------------------------------------------------------------

def _fhir(client, world, body):
    return client.post("/fhir/MedicationRequest", data=json.dumps(body),
                       headers={**world.a.headers("prescriber"), "Content-Type": FHIR})


@pytest.mark.parametrize(("where", "change"), [
    ("identifier", lambda b: b["identifier"][0].__setitem__("value", "9" * 100_000)),
    ("requester.display", lambda b: b["requester"].__setitem__("display", "P" * 100_000)),
    ("dispenseRequest.quantity", lambda b: b["dispenseRequest"]["quantity"].__setitem__("value", 2**31)),
    ("dosageInstruction", lambda b: b["dosageInstruction"][0].__setitem__("text", "d" * 501)),
])
def test_fhir_strings_and_quantities_have_the_json_apis_limits(client, world, chlorthalidone, connection, where,  # noqa: F811
                                                               change):
    before = rows(connection, "prescriptions")
    body = one_week(copy.deepcopy(HL7_MEDRX0311))
    change(body)
    response = _fhir(client, world, body)
    assert response.status_code == 422, response.get_json()
    outcome = response.get_json()
    assert any(e.startswith(where) for issue in outcome["issue"] for e in issue.get("expression", []))
    assert rows(connection, "prescriptions") == before
