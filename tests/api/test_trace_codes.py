"""Trace codes (药品追溯码) scanned at receiving and dispensing: each code belongs to one lot, and a code dispensed
anywhere in the consortium is refused saying where and when; the codes go with the dispense, in the API and FHIR.
A controlled drug is handed over only after a second pharmacist has confirmed it."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.medicationdispense import MedicationDispense

from tests.api.test_prescriptions import act, rx, send, stock
from tests.api.test_prescriptions import drugs as drugs  # a fixture
from tests.factories import World, receive

pytestmark = pytest.mark.usefixtures("clock")
GTIN = "06901234567892"


def national(n: int) -> str:
    return f"8{n:019d}"


def prepared(client, world: World, number: str, quantity: int = 28, code: str = "AML5", site: str = "C1") -> int:
    body = send(client, world, rx(number, items=[{"drug_code": code, "quantity": quantity, "supply_days": 7}],
                                  nominated_pharmacy=world.a.sites[site])).get_json()
    assert body["pharmacy_site_id"] == world.a.sites[site], body
    role = "pharmacist" if site == "C1" else "pharmacist_c2"
    for step in ("accept", "prepare"):
        assert act(client, world, body["id"], step, role=role).status_code == 200
    return int(body["id"])


def dispense(client, world: World, rx_id: int, codes: list[str], role: str = "pharmacist"):
    view = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers(role)).get_json()
    return act(client, world, rx_id, "dispense", {"items": [{"item_id": view["items"][0]["id"],
                                                             "trace_codes": codes}]}, role=role)


def test_codes_scanned_at_dispensing_go_with_the_dispense_in_the_api_and_in_fhir(client, world, drugs) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = prepared(client, world, "RX-T1", quantity=56)  # two packs of 28
    given = dispense(client, world, rx_id, [national(1), f"]d201{GTIN}1727063010L1\x1d21SN-9"])
    assert given.status_code == 200, given.get_json()
    assert given.get_json()["dispenses"][0]["trace_codes"] == [national(1), f"(01){GTIN}(21)SN-9"]
    assert given.get_json()["dispenses"][0]["by"] == "api_key:test pharmacist"
    found = client.get(f"/fhir/MedicationDispense?prescription={rx_id}", headers=world.a.headers("prescriber"))
    resource = found.get_json()["entry"][0]["resource"]
    MedicationDispense.model_validate(resource)
    assert [e["valueIdentifier"]["value"] for e in resource["extension"]] == [national(1), f"(01){GTIN}(21)SN-9"]


def test_a_code_dispensed_before_anywhere_in_the_consortium_is_refused_with_where_and_when(client, world,
                                                                                         drugs, clock) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    stock(client, world, "C2", drugs["AML5"], "L2", "2027-06-30", 100)
    first = prepared(client, world, "RX-T2")
    assert dispense(client, world, first, [national(7)]).status_code == 200
    clock.advance(hours=3)
    again = prepared(client, world, "RX-T3", site="C2")
    refused = dispense(client, world, again, [national(7)], role="pharmacist_c2")
    assert refused.status_code == 409
    assert refused.get_json()["message"] == (
        f"trace code {national(7)} was already dispensed at Site A-C1 on 2026-11-23 12:00: the same pack twice "
        "points at resold or fake drugs")
    after = client.get(f"/api/prescriptions/{again}", headers=world.a.headers("pharmacist_c2")).get_json()
    assert after["status"] == "prepared" and after["dispenses"] == []  # nothing was given
    # Another consortium is another world: its pharmacies never hear of this code.
    assert client.get("/api/prescriptions", headers=world.b.headers("pharmacist")).get_json() == []


def test_a_code_received_into_a_lot_belongs_to_it(client, world, drugs) -> None:
    response = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": drugs["AML5"]["id"], "lot_number": "L1",
        "expiry_date": "2027-06-30", "quantity": 56, "trace_codes": [national(1), national(2)]})
    assert response.status_code == 201, response.get_json()
    receive(client, world.a, "C1", drugs["AML5"]["id"], "L0", "2027-01-31", 28)  # expires first: FEFO gives it
    # Received once, a code is not received again, here or at another site.
    twice = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist_c2"), json={
        "site_id": world.a.sites["C2"], "drug_id": drugs["AML5"]["id"], "lot_number": "L9",
        "expiry_date": "2027-06-30", "quantity": 28, "trace_codes": [national(2)]})
    assert twice.status_code == 409 and "was received at Site A-C1 on 2026-11-23 12:00 as a pack of lot L1" in \
        twice.get_json()["message"]
    # More codes than packs, or a GS1 code printing another lot, are refused.
    too_many = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": drugs["AML5"]["id"], "lot_number": "L3",
        "expiry_date": "2027-06-30", "quantity": 28, "trace_codes": [national(3), national(4)]})
    assert too_many.status_code == 422
    assert "2 trace codes scanned for 1 packs received" in too_many.get_json()["message"]
    other_lot = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": drugs["AML5"]["id"], "lot_number": "L3",
        "expiry_date": "2027-06-30", "quantity": 28, "trace_codes": [f"(01){GTIN}(10)L4(21)1"]})
    assert other_lot.status_code == 422 and "prints lot L4, not L3" in other_lot.get_json()["message"]
    # Dispensed first-expiry first-out from L0, a pack of L1 in hand is the wrong lot.
    rx_id = prepared(client, world, "RX-T4")
    wrong = dispense(client, world, rx_id, [national(1)])
    assert wrong.status_code == 422
    assert "is a pack of lot L1, which this dispense does not take" in wrong.get_json()["message"]


def test_unreadable_codes_are_refused_each_named_where_it_is(client, world, drugs) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = prepared(client, world, "RX-T5", quantity=56)
    refused = dispense(client, world, rx_id, ["6901234567892", national(1), national(1)])
    assert refused.status_code == 422
    errors = refused.get_json()["errors"]["items"]["0"]["trace_codes"]
    assert "product's barcode" in errors["0"][0] and "scanned twice" in errors["2"][0]


def test_a_controlled_drug_is_handed_over_only_after_a_second_pharmacist_confirms_it(client, world, drugs,
                                                                                     app) -> None:
    from pharmacy.accounts.services import create_api_key
    from pharmacy.principal import Role, system_for
    from pharmacy.unit_of_work import UnitOfWork

    stock(client, world, "C1", drugs["DZP"], "D1", "2027-06-30", 100)
    rx_id = prepared(client, world, "RX-T6", quantity=6, code="DZP2.5")
    assert act(client, world, rx_id, "dispense").status_code == 200
    refused = act(client, world, rx_id, "hand-over")
    assert refused.status_code == 409
    assert refused.get_json()["message"] == ("DZP2.5 地西泮片 is a controlled drug: a second pharmacist confirms it "
                                             "before it is handed over")
    # The pharmacist who dispensed cannot be the second one.
    assert act(client, world, rx_id, "second-check").status_code == 409
    uow = UnitOfWork(app.extensions["pharmacy_db"].session_factory, system_for(world.a.consortium_id))
    _, second = create_api_key(uow, world.a.consortium_id, "second pharmacist", Role.PHARMACIST, world.a.sites["C1"])
    checked = client.post(f"/api/prescriptions/{rx_id}/second-check", json={},
                          headers={"Authorization": f"Bearer {second}"})
    assert checked.status_code == 200, checked.get_json()
    assert checked.get_json()["dispenses"][0]["checked_by"] == "api_key:second pharmacist"
    handed = act(client, world, rx_id, "hand-over").get_json()
    assert handed["status"] == "completed" and handed["dispenses"][0]["handed_over_by"] == "api_key:test pharmacist"
    # Drugs that are not controlled need no second check.
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    plain = prepared(client, world, "RX-T7")
    act(client, world, plain, "dispense")
    assert act(client, world, plain, "hand-over").status_code == 200


def test_an_acknowledged_alert_leaves_the_open_list_saying_who_and_when(client, world, drugs, clock, app) -> None:
    from pharmacy.principal import system_for
    from pharmacy.procurement.services import raise_near_expiry_alerts
    from pharmacy.unit_of_work import UnitOfWork

    stock(client, world, "C1", drugs["AML5"], "SOON", "2027-01-10", 40)
    jobs = UnitOfWork(app.extensions["pharmacy_db"].session_factory, system_for(world.a.consortium_id), clock)
    assert raise_near_expiry_alerts(jobs, 90) == 1
    open_ = client.get("/api/alerts?open=true", headers=world.a.headers("pharmacist")).get_json()
    assert [a["message"] for a in open_] == ["40 units of AML5 lot SOON at A-C1 expire in 48 days"]
    assert client.post(f"/api/alerts/{open_[0]['id']}/acknowledge",
                       headers=world.a.headers("pharmacist_c2")).status_code == 403  # another site's
    taken = client.post(f"/api/alerts/{open_[0]['id']}/acknowledge", headers=world.a.headers("pharmacist")).get_json()
    assert taken["acknowledged_by"] == "api_key:test pharmacist" and taken["acknowledged_at"].startswith("2026-11-23")
    assert client.get("/api/alerts?open=true", headers=world.a.headers("pharmacist")).get_json() == []
    assert client.post(f"/api/alerts/{open_[0]['id']}/acknowledge",
                       headers=world.a.headers("pharmacist")).status_code == 409
    # Taken in hand, it stays quiet, and is raised again once the lot comes within 30 days of its expiry.
    clock.advance(days=3)
    assert raise_near_expiry_alerts(jobs, 90) == 0
    clock.advance(days=16)
    assert raise_near_expiry_alerts(jobs, 90) == 1  # 30 days left: within a month of its expiry
    clock.advance(days=1)
    assert raise_near_expiry_alerts(jobs, 90) == 0  # still open: brought up to date, not raised twice
    assert [a["message"] for a in client.get("/api/alerts?open=true", headers=world.a.headers("pharmacist")
                                             ).get_json()] == ["40 units of AML5 lot SOON at A-C1 expire in 28 days"]
