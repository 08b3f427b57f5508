"""No consortium reaches another's data: every route of the OpenAPI document, tried with the other consortium's
ids in its path, its query and its body, reads and writes nothing of it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from pharmacy.db import Base
from tests.api.test_foundation import assert_problem
from tests.factories import World, add_drug, receive

pytestmark = pytest.mark.usefixtures("clock")

ROLES = ("admin", "procurement", "prescriber", "pharmacist")
# What only consortium B's data says: none of it may reach a caller of consortium A.
B_MARKERS = ("B-LEAD", "B-C1", "B-C2", "BSECRET", "B-LOT-SECRET", "B-RX-SECRET", "P-B-PATIENT", "BSUPPLIER",
             "b-hook.example")


@pytest.fixture
def other(client, world: World) -> dict[str, Any]:
    """Consortium B's rows of every kind a route takes an id of."""
    b = world.b
    drug = add_drug(client, b, "BSECRET", generic_name="秘密药", equivalence_group="b-group")
    movement = receive(client, b, "C1", drug["id"], "B-LOT-SECRET", "2027-06-30", 500).get_json()
    pharmacist = b.headers("pharmacist")
    reservation = client.post("/api/inventory/reservations", headers=pharmacist, json={
        "site_id": b.sites["C1"], "drug_id": drug["id"], "quantity": 5, "supply_until": "2026-12-01",
        "cause_type": "manual", "cause_id": "ward"}).get_json()[0]
    prescription = client.post("/api/prescriptions", headers=b.headers("prescriber"), json={
        "number": "B-RX-SECRET", "patient": {"ref": "P-B-PATIENT", "district": "D1"}, "issued_on": "2026-11-23",
        "items": [{"drug_code": "BSECRET", "quantity": 10, "supply_days": 5}]}).get_json()
    officer = b.headers("procurement")
    supplier = client.post("/api/suppliers", headers=officer, json={"code": "BSUPPLIER", "name": "乙供应商"}).get_json()
    offer = client.post("/api/offers", headers=officer, json={
        "supplier_id": supplier["id"], "drug_id": drug["id"], "pack_size": 24, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 10.0}]}).get_json()
    transfer = client.post("/api/transfer-orders", headers=officer, json={
        "from_site_id": b.sites["C1"], "to_site_id": b.sites["C2"],
        "lines": [{"drug_id": drug["id"], "quantity": 5}]}).get_json()
    hook = client.post("/api/webhooks", headers=b.headers("prescriber"),
                       json={"url": "https://b-hook.example/events"}).get_json()
    keys = client.get("/api/api-keys", headers=b.headers("admin")).get_json()
    user = client.post("/api/users", headers=b.headers("admin"),
                       json={"username": "b-user", "password": "a long password", "role": "admin"}).get_json()
    assert all(x.get("id") for x in (drug, movement, reservation, prescription, supplier, offer, hook, user))
    alert = _alert(client, b.consortium_id, b.sites["C1"], drug["id"])
    return {"site_id": b.sites["C1"], "drug_id": drug["id"], "lot_id": movement["lot_id"],
            "movement_id": movement["id"], "reservation_id": reservation["id"], "rx_id": prescription["id"],
            "item_id": prescription["items"][0]["id"], "supplier_id": supplier["id"], "offer_id": offer["id"],
            "order_id": transfer["order"]["id"], "subscription_id": hook["id"], "key_id": keys[0]["id"],
            "user_id": user["id"], "run_id": 1, "parcel_id": 1, "alert_id": alert,
            "request_id": f"{prescription['id']}-{prescription['items'][0]['id']}"}


def _alert(client, consortium_id: int, site_id: int, drug_id: int) -> int:
    from pharmacy.principal import system_for
    from pharmacy.procurement.models import Alert
    from pharmacy.procurement.services import raise_alert
    from pharmacy.unit_of_work import UnitOfWork

    uow = UnitOfWork(client.application.extensions["pharmacy_db"].session_factory, system_for(consortium_id),
                     client.application.config["CLOCK"])
    with uow:
        raise_alert(uow, consortium_id, "low_stock", "low_stock:b", site_id, drug_id, None, "B is low", uow.today())
        uow.commit()
        return int(uow.session.query(Alert.id).filter_by(key="low_stock:b").scalar())


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _id_of(name: str, ids: dict[str, Any]) -> Any:
    if name in ("nominated_pharmacy", "parent_id", "from_site_id", "to_site_id"):
        return ids["site_id"]
    if name == "substitute_drug_id":
        return ids["drug_id"]
    return ids.get(name)


def _sample(spec: dict[str, Any], schema: dict[str, Any], ids: dict[str, Any], name: str = "") -> Any:
    """A value the schema takes, with consortium B's id wherever an id goes."""
    schema = _resolve(spec, schema)
    if _id_of(name, ids) is not None and schema.get("type") == "integer":
        return _id_of(name, ids)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {prop: _sample(spec, sub, ids, prop) for prop, sub in (schema.get("properties") or {}).items()
                if not sub.get("readOnly")}
    if kind == "array":
        return [_sample(spec, schema.get("items", {}), ids, name)]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return max(1.0, schema.get("minimum", 1.0))
    if kind == "boolean":
        return True
    if schema.get("format") == "date":
        return "2026-11-24"
    if schema.get("format") == "url" or name == "url":
        return "https://a-hook.example/x"
    return "x" * max(1, schema.get("minLength", 1))


def _snapshot(connection, consortium_id: int) -> dict[str, list[Any]]:
    """Every row of the consortium, table by table."""
    rows = {}
    for table in Base.metadata.sorted_tables:
        if "consortium_id" in table.c:
            rows[table.name] = [tuple(map(str, r)) for r in connection.execute(
                text(f"SELECT * FROM {table.name} WHERE consortium_id = :c ORDER BY id"), {"c": consortium_id})]
    return rows


def _cross_references(connection) -> list[str]:
    """Rows that name a row of another consortium (a subscription to its site, a lot of its drug, ...)."""
    found = []
    for table in Base.metadata.sorted_tables:
        if "consortium_id" not in table.c:
            continue
        for key in table.foreign_keys:
            target = key.column.table
            if key.parent.name == "consortium_id" or "consortium_id" not in target.c:
                continue
            count = connection.execute(text(
                f"SELECT count(*) FROM {table.name} t JOIN {target.name} r ON t.{key.parent.name} = r.{key.column.name}"
                " WHERE t.consortium_id <> r.consortium_id")).scalar_one()
            if count:
                found.append(f"{table.name}.{key.parent.name}: {count}")
    return found


def test_no_route_reads_or_writes_another_consortiums_data(client, world: World, other, connection):
    spec = client.get("/openapi.json").get_json()
    before = _snapshot(connection, world.b.consortium_id)
    routes = attempts = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":
                continue
            routes += 1
            parameters = operation.get("parameters", []) + operations.get("parameters", [])
            url = path
            for parameter in parameters:
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", str(other[parameter["name"]]))
            query = {p["name"]: _id_of(p["name"], other) for p in parameters
                     if p["in"] == "query" and _id_of(p["name"], other) is not None}
            if path == "/fhir/MedicationDispense":
                query = {"prescription": other["rx_id"]}
            content = (operation.get("requestBody") or {}).get("content", {})
            body = _sample(spec, content["application/json"]["schema"], other) if "application/json" in content \
                else None
            if "application/fhir+json" in content:
                body = fhir_request_naming(world)
            for role in ROLES:
                for target, args, payload in [(url, query, body)]:
                    headers = {**world.a.headers(role), "If-Match": '"1"'}
                    if payload is not None and "application/fhir+json" in content:
                        headers["Content-Type"] = "application/fhir+json"
                    response = client.open(target, method=method.upper(), query_string=args, headers=headers,
                                           data=None if payload is None else json.dumps(payload),
                                           content_type=headers.get("Content-Type", "application/json"))
                    attempts += 1
                    said = response.get_data(as_text=True)
                    assert response.status_code < 500, (method, target, role, said)
                    sent = json.dumps(payload) + json.dumps(args)  # the caller's own words may come back
                    leaked = [marker for marker in B_MARKERS if marker in said and marker not in sent]
                    assert not leaked, (method, target, args, role, leaked)
                    assert _snapshot(connection, world.b.consortium_id) == before, (method, target, role)
                    assert not _cross_references(connection), (method, target, role, _cross_references(connection))
    print(f"cross-tenant walk: {routes} routes, {attempts} attempts with the other consortium's ids")
    assert routes == sum(1 for ops in spec["paths"].values() for m in ops if m != "parameters")
    assert routes >= 70 and attempts >= routes * len(ROLES)


def fhir_request_naming(world: World) -> dict[str, Any]:
    """A MedicationRequest naming consortium B's drug and pharmacy."""
    return {"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "identifier": [{"value": "A-RX-FOREIGN"}], "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"coding": [{"code": "BSECRET"}]}, "authoredOn": "2026-11-23",
            "dispenseRequest": {"performer": {"identifier": {"value": "B-C1"}}, "quantity": {"value": 5},
                                "expectedSupplyDuration": {"value": 3, "unit": "d"}}}


def test_a_webhook_for_another_consortiums_site_is_refused_as_not_found(client, world: World, connection):
    before = connection.execute(text("SELECT count(*) FROM webhook_subscriptions")).scalar_one()
    response = client.post("/api/webhooks", headers=world.a.headers("admin"),
                           json={"url": "https://a.example/hook", "site_id": world.b.sites["LEAD"]})
    problem = assert_problem(response, 422, "site_id", "not found")
    assert "site_id" in problem["errors"]
    assert connection.execute(text("SELECT count(*) FROM webhook_subscriptions")).scalar_one() == before
