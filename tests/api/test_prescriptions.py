"""The prescription flow over HTTP: intake, routing, review, dispensing, jobs and events."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pharmacy.inventory.services import check_ledger
from pharmacy.prescriptions.services import expire_uncollected, prepare_due_installments
from pharmacy.prescriptions.webhooks import Outcome, deliver_due, sign
from pharmacy.principal import SYSTEM
from pharmacy.procurement.services import release_expired_reservations
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_foundation import assert_problem
from tests.factories import World, add_drug, receive

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou

NEAR_C1 = {"ref": "P-7f3a", "district": "D1", "latitude": 30.26, "longitude": 120.14}


@pytest.fixture
def drugs(client, world: World) -> dict[str, dict]:
    made = {
        "AML5": add_drug(client, world.a, "AML5", generic_name="氨氯地平片", dosage_form="tablet", strength_amount="5",
                         dispensing_unit="tablet", pack_size=28, equivalence_group="amlodipine-5"),
        "AML5B": add_drug(client, world.a, "AML5B", generic_name="氨氯地平片", dosage_form="tablet",
                          strength_amount="5", dispensing_unit="tablet", pack_size=7, equivalence_group="amlodipine-5"),
        "MTF": add_drug(client, world.a, "MTF500", generic_name="二甲双胍片", dosage_form="tablet",
                        strength_amount="500", dispensing_unit="tablet", pack_size=48),
        "DZP": add_drug(client, world.a, "DZP2.5", generic_name="地西泮片", controlled_class="psychotropic_2"),
    }
    return made


def stock(client, world: World, site: str, drug: dict, lot: str, expiry: str, quantity: int) -> None:
    role = {"C1": "pharmacist", "C2": "pharmacist_c2"}.get(site)
    if role is None:  # sites without a pharmacist key in the test world: receive as the system would
        from datetime import date

        from pharmacy.inventory.services import receive_stock
        from pharmacy.principal import system_for

        factory = client.application.extensions["pharmacy_db"].session_factory
        receive_stock(UnitOfWork(factory, system_for(world.a.consortium_id), client.application.config["CLOCK"]),
                      world.a.sites[site], drug["id"], lot, date.fromisoformat(expiry), quantity)
        return
    assert receive(client, world.a, site, drug["id"], lot, expiry, quantity, role=role).status_code == 201


def rx(number: str = "RX-1", items: list | None = None, **extra) -> dict:
    body = {"number": number, "patient": NEAR_C1, "prescriber": "Dr. Wang", "issued_on": "2026-11-23",
            "valid_until": "2026-11-25",
            "items": items or [{"drug_code": "AML5", "quantity": 28, "supply_days": 7}]}
    body.update(extra)
    return body


def send(client, world: World, body: dict, key: str | None = None):
    headers = world.a.headers("prescriber")
    if key:
        headers["Idempotency-Key"] = key
    return client.post("/api/prescriptions", json=body, headers=headers)


def act(client, world: World, rx_id: int, action: str, body: dict | None = None, role: str = "pharmacist"):
    return client.post(f"/api/prescriptions/{rx_id}/{action}", json=body or {}, headers=world.a.headers(role))


def usable(client, world: World, site: str, drug: dict) -> dict:
    rows = client.get(f"/api/inventory/stock?site_id={world.a.sites[site]}&drug_id={drug['id']}",
                      headers=world.a.headers("admin")).get_json()
    return rows[0] if rows else {"on_hand": 0, "reserved": 0, "usable": 0}


def factory(client):
    return client.application.extensions["pharmacy_db"].session_factory


# --- intake and routing ----------------------------------------------------------------------------

def test_routes_to_the_grassroots_pharmacy_near_the_patient_and_reserves_stock(client, world, drugs):
    for site in ("C1", "C2", "LEAD"):
        stock(client, world, site, drugs["AML5"], f"L-{site}", "2027-06-30", 100)
    response = send(client, world, rx())
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["status"] == "routed" and body["pharmacy_site_id"] == world.a.sites["C1"]
    assert body["routing"]["reason"].startswith("A-C1: can fill every item")
    assert "in the patient's district (D1)" in body["routing"]["reason"]
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 28
    assert response.headers["Location"] == f"/api/prescriptions/{body['id']}"


def test_a_nominated_pharmacy_that_can_fill_wins(client, world, drugs):
    for site in ("C1", "C2"):
        stock(client, world, site, drugs["AML5"], f"L-{site}", "2027-06-30", 100)
    body = send(client, world, rx(nominated_pharmacy=world.a.sites["C2"])).get_json()
    assert body["pharmacy_site_id"] == world.a.sites["C2"]
    assert "nominated by the prescriber" in body["routing"]["reason"]


def test_lots_that_expire_before_the_supply_ends_do_not_count(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "SHORT", "2026-11-27", 500)  # expires in 4 days of a 7-day supply
    stock(client, world, "C2", drugs["AML5"], "LONG", "2027-06-30", 100)
    body = send(client, world, rx()).get_json()
    assert body["pharmacy_site_id"] == world.a.sites["C2"]


def test_local_and_national_codes_are_read(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    client.post("/api/local-codes", headers=world.a.headers("admin"),
                json={"site_id": world.a.sites["LEAD"], "local_code": "HIS-7781", "drug_id": drugs["AML5"]["id"]})
    body = send(client, world, rx(items=[{"drug_code": "HIS-7781", "quantity": 14, "supply_days": 7}])).get_json()
    assert body["items"][0]["drug_code"] == "AML5"


def test_no_site_with_stock_waits_for_a_transfer_from_the_member_with_most_surplus(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 10)
    stock(client, world, "H2", drugs["AML5"], "L2", "2027-06-30", 40)
    stock(client, world, "LEAD", drugs["AML5"], "L3", "2027-06-30", 190)
    # Nobody holds 200; the patient's nearest pharmacy waits, and the lead hospital has the 190 it lacks.
    body = send(client, world, rx(items=[{"drug_code": "AML5", "quantity": 200, "supply_days": 7}])).get_json()
    assert body["status"] == "awaiting_stock" and body["pharmacy_site_id"] == world.a.sites["C1"]
    assert "transfer of 190 AML5 requested from A-LEAD" in body["status_reason"]
    # Nobody has the surplus for 500: a shortage is recorded for procurement, and the response says so.
    bigger = send(client, world, rx("RX-2", items=[{"drug_code": "AML5", "quantity": 500, "supply_days": 7}]))
    assert "shortage of 490 recorded for procurement" in bigger.get_json()["status_reason"]


def test_stock_arriving_puts_an_awaiting_prescription_back_in_the_worklist(client, world, drugs):
    rx_id = send(client, world, rx()).get_json()["id"]
    assert act(client, world, rx_id, "stock-arrived").status_code == 409  # nothing arrived yet
    stock(client, world, "C1", drugs["AML5"], "NEW", "2027-06-30", 50)
    arrived = act(client, world, rx_id, "stock-arrived")
    assert arrived.get_json()["status"] == "routed"
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 28


def test_policy_failures_are_itemised_and_nothing_is_written(client, world, drugs):
    body = rx(valid_until="2026-12-01", items=[
        {"drug_code": "NOPE", "quantity": 1, "supply_days": 1},
        {"drug_code": "DZP2.5", "quantity": 20, "supply_days": 10}])
    problem = assert_problem(send(client, world, body), 422, "rule")
    errors = problem["errors"]
    assert set(errors) == {"valid_until", "items"} and set(errors["items"]) == {"0", "1"}
    assert set(errors["items"]["0"]) == {"drug"} and set(errors["items"]["1"]) == {"supply_days"}
    assert client.get("/api/prescriptions", headers=world.a.headers("admin")).get_json() == []


def test_bad_input_names_the_field(client, world, drugs):
    body = rx(items=[{"drug_code": "AML5", "quantity": 2.5, "supply_days": "a week"}])
    problem = assert_problem(send(client, world, body), 422)
    assert set(problem["errors"]["items"]["0"]) == {"quantity", "supply_days"}
    assert_problem(client.post("/api/prescriptions", json=rx(), headers=world.a.headers("pharmacist")), 403)


# --- idempotency -----------------------------------------------------------------------------------

def test_a_retry_with_the_same_key_returns_the_first_result(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    first = send(client, world, rx(), key="k-1")
    again = send(client, world, rx(), key="k-1")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 28  # reserved once
    assert_problem(send(client, world, rx(prescriber="Dr. Li"), key="k-1"), 409, "different content")


def test_the_same_number_from_the_same_hospital_is_the_same_prescription(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    first = send(client, world, rx()).get_json()
    assert send(client, world, rx()).get_json()["id"] == first["id"]
    listed = client.get("/api/prescriptions", headers=world.a.headers("admin")).get_json()
    assert len(listed) == 1


# --- pharmacy work ---------------------------------------------------------------------------------

def test_review_prepare_dispense_fefo_and_hand_over(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "LATE", "2027-12-31", 100)
    stock(client, world, "C1", drugs["AML5"], "EARLY", "2027-03-31", 20)
    rx_id = send(client, world, rx()).get_json()["id"]
    assert act(client, world, rx_id, "accept").get_json()["status"] == "accepted"
    assert act(client, world, rx_id, "prepare").get_json()["status"] == "prepared"
    dispensed = act(client, world, rx_id, "dispense").get_json()
    assert dispensed["status"] == "dispensed"
    assert [(d["lot_number"], d["quantity"]) for d in dispensed["dispenses"]] == [("LATE", 8), ("EARLY", 20)] \
        or sorted((d["lot_number"], d["quantity"]) for d in dispensed["dispenses"]) == [("EARLY", 20), ("LATE", 8)]
    done = act(client, world, rx_id, "hand-over").get_json()
    assert done["status"] == "completed" and done["dispenses"][0]["handed_over_at"]
    level = usable(client, world, "C1", drugs["AML5"])
    assert (level["on_hand"], level["reserved"]) == (92, 0)
    assert check_ledger(UnitOfWork(factory(client), SYSTEM)) == []


def test_partial_dispense_then_the_rest(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    act(client, world, rx_id, "accept")
    act(client, world, rx_id, "prepare")
    item = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()["items"][0]
    part = act(client, world, rx_id, "dispense", {"items": [{"item_id": item["id"], "quantity": 10}]}).get_json()
    assert part["status"] == "partially_dispensed" and part["items"][0]["dispensed_this_issue"] == 10
    assert_problem(act(client, world, rx_id, "dispense", {"items": [{"item_id": item["id"], "quantity": 19}]}),
                   422, "18 left")
    assert_problem(act(client, world, rx_id, "cancel", role="prescriber"), 409, "dispensing has started")
    rest = act(client, world, rx_id, "dispense").get_json()
    assert rest["status"] == "dispensed" and rest["items"][0]["dispensed_this_issue"] == 28
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0


def test_substitution_only_within_the_group_and_where_allowed(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    stock(client, world, "C1", drugs["AML5B"], "B1", "2027-06-30", 100)
    stock(client, world, "C1", drugs["MTF"], "M1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    act(client, world, rx_id, "accept")
    act(client, world, rx_id, "prepare")
    item = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()["items"][0]
    outside = {"items": [{"item_id": item["id"], "substitute_drug_id": drugs["MTF"]["id"],
                          "substitution_reason": "out of AML5"}]}
    assert_problem(act(client, world, rx_id, "dispense", outside), 422, "equivalence group")
    inside = {"items": [{"item_id": item["id"], "substitute_drug_id": drugs["AML5B"]["id"],
                         "substitution_reason": "patient prefers the smaller pack"}]}
    done = act(client, world, rx_id, "dispense", inside).get_json()
    assert done["dispenses"][0]["drug_code"] == "AML5B" and done["dispenses"][0]["substituted"] is True
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0  # the original's hold is released
    # Read again, the dispense still names the substitute given, not the drug prescribed.
    again = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("prescriber")).get_json()
    assert [(d["drug_code"], d["substituted"]) for d in again["dispenses"]] == [("AML5B", True)]
    assert [i["drug_code"] for i in again["items"]] == ["AML5"]
    fhir = client.get(f"/fhir/MedicationDispense?prescription={rx_id}", headers=world.a.headers("prescriber"))
    assert fhir.get_json()["entry"][0]["resource"]["substitution"]["wasSubstituted"] is True


def test_substitution_is_refused_when_the_prescriber_did_not_allow_it(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    stock(client, world, "C1", drugs["AML5B"], "B1", "2027-06-30", 100)
    body = rx(items=[{"drug_code": "AML5", "quantity": 28, "supply_days": 7, "substitution_allowed": False}])
    rx_id = send(client, world, body).get_json()["id"]
    act(client, world, rx_id, "accept")
    act(client, world, rx_id, "prepare")
    item = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()["items"][0]
    line = {"items": [{"item_id": item["id"], "substitute_drug_id": drugs["AML5B"]["id"], "substitution_reason": "x"}]}
    assert_problem(act(client, world, rx_id, "dispense", line), 422, "did not allow substitution")


def test_a_returned_prescription_is_routed_elsewhere_never_back(client, world, drugs):
    for site in ("C1", "C2"):
        stock(client, world, site, drugs["AML5"], f"L-{site}", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    returned = act(client, world, rx_id, "return", {"reason_code": "staff", "note": "pharmacist away"}).get_json()
    assert returned["status"] == "routed" and returned["pharmacy_site_id"] == world.a.sites["C2"]
    assert returned["routing"]["returned_from"] == [world.a.sites["C1"]]
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0
    assert usable(client, world, "C2", drugs["AML5"])["reserved"] == 28
    # C1 no longer holds it: it is not even visible there.
    assert_problem(client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")), 404)


def test_reject_goes_back_to_the_prescriber_with_a_reason(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    assert_problem(act(client, world, rx_id, "reject", {"reason_code": "vibes"}), 422, "reason_code")
    rejected = act(client, world, rx_id, "reject", {"reason_code": "interaction", "note": "with warfarin"})
    assert rejected.get_json()["status"] == "rejected"
    events = client.get("/api/prescription-events", headers=world.a.headers("prescriber")).get_json()["events"]
    assert events[-1]["status"] == "rejected" and "interaction: with warfarin" in events[-1]["payload"]["reason"]
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0


def test_illegal_steps_are_409_naming_the_current_state(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    assert_problem(act(client, world, rx_id, "dispense"), 409, "routed")
    assert_problem(act(client, world, rx_id, "hand-over"), 409, "routed")


def test_cancel_before_dispensing_releases_the_stock(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    act(client, world, rx_id, "accept")
    assert act(client, world, rx_id, "cancel", {"note": "changed therapy"}, role="prescriber").get_json()["status"] \
        == "cancelled"
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0


def test_only_the_holding_pharmacy_sees_and_works_a_prescription(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    assert_problem(client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist_c2")), 404)
    assert_problem(act(client, world, rx_id, "accept", role="pharmacist_c2"), 404)
    assert_problem(client.get(f"/api/prescriptions/{rx_id}", headers=world.b.headers("admin")), 404)
    worklist = client.get("/api/prescriptions?status=routed", headers=world.a.headers("pharmacist")).get_json()
    assert [p["id"] for p in worklist] == [rx_id]
    counts = client.get("/api/prescriptions/worklist-counts", headers=world.a.headers("pharmacist")).get_json()
    assert counts == {"routed": 1}


# --- jobs ------------------------------------------------------------------------------------------

def test_uncollected_prescriptions_expire_and_release_their_stock(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx(valid_until="2026-11-24")).get_json()["id"]
    job = UnitOfWork(factory(client), SYSTEM, clock)
    assert expire_uncollected(job) == 0
    clock.advance(days=1)
    assert expire_uncollected(UnitOfWork(factory(client), SYSTEM, clock)) == 0  # still valid on its last day
    clock.advance(days=1)
    assert expire_uncollected(UnitOfWork(factory(client), SYSTEM, clock)) == 1
    body = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("prescriber")).get_json()
    assert body["status"] == "expired" and usable(client, world, "C1", drugs["AML5"])["reserved"] == 0


def held_per_lot(client, world: World) -> dict[str, int]:
    lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    return {lot["lot_number"]: lot["reserved"] for lot in lots}


def two_days() -> dict:
    """Valid until 2026-11-26, for two days' supply: stock expiring on 2026-11-25 may be held for it."""
    return rx(items=[{"drug_code": "AML5", "quantity": 28, "supply_days": 2}], valid_until="2026-11-26")


def test_stock_held_on_a_lot_that_expires_is_held_again_from_the_sites_next_lot(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "SOON", "2026-11-25", 28)  # lasts the 2 days' supply, and no longer
    stock(client, world, "C1", drugs["AML5"], "LATER", "2027-06-30", 100)
    rx_id = send(client, world, two_days()).get_json()["id"]
    assert held_per_lot(client, world) == {"SOON": 28, "LATER": 0}  # first-expiry first-out
    clock.advance(days=2)  # 2026-11-25: the lot is still good today
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 0
    clock.advance(days=1)
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 28
    assert held_per_lot(client, world) == {"SOON": 0, "LATER": 28}
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 0  # nothing moves again
    body = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert body["status"] == "routed"
    check_ledger(UnitOfWork(factory(client), SYSTEM, clock))


def test_stock_held_on_a_lot_that_expires_is_released_when_the_site_cannot_hold_all_of_it_again(
        client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "SOON", "2026-11-25", 28)
    rx_id = send(client, world, two_days()).get_json()["id"]
    stock(client, world, "C1", drugs["AML5"], "LATER", "2027-06-30", 20)  # came later, and too little
    clock.advance(days=3)
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 28
    assert held_per_lot(client, world) == {"SOON": 0, "LATER": 0}  # the pharmacy sees it short
    body = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert body["status"] == "routed"


def test_stock_held_on_an_expired_lot_of_a_drug_retired_since_is_released_and_the_job_goes_on(
        client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "SOON", "2026-11-25", 28)
    stock(client, world, "C1", drugs["AML5"], "LATER", "2027-06-30", 100)
    send(client, world, two_days())
    admin = world.a.headers("admin")
    etag = client.get(f"/api/drugs/{drugs['AML5']['id']}", headers=admin).headers["ETag"]
    assert client.patch(f"/api/drugs/{drugs['AML5']['id']}", json={"active": False},
                        headers={**admin, "If-Match": etag}).status_code == 200
    clock.advance(days=3)
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 28
    assert held_per_lot(client, world) == {"SOON": 0, "LATER": 0}


def test_long_prescription_installments_are_reserved_before_they_fall_due(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 200)
    body = rx(kind="long", items=[{"drug_code": "AML5", "quantity": 28, "supply_days": 28, "repeats": 2,
                                   "interval_days": 28}])
    created = send(client, world, body).get_json()
    assert created["issues_total"] == 3
    rx_id = created["id"]
    for action in ("accept", "prepare", "dispense", "hand-over"):
        act(client, world, rx_id, action)
    waiting = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert waiting["status"] == "scheduled" and waiting["issue"] == 2 and waiting["next_due_on"] == "2026-12-21"
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 0
    clock.advance(days=24)  # 4 days before it is due: not yet, with 3 days' notice
    assert prepare_due_installments(UnitOfWork(factory(client), SYSTEM, clock), notice_days=3) == 0
    clock.advance(days=1)
    assert prepare_due_installments(UnitOfWork(factory(client), SYSTEM, clock), notice_days=3) == 1
    ready = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert ready["status"] == "accepted" and "issue 2 of 3 due on 2026-12-21" in ready["status_reason"]
    assert usable(client, world, "C1", drugs["AML5"])["reserved"] == 28
    told = client.get("/api/prescription-events", headers=world.a.headers("pharmacist")).get_json()["events"]
    assert told[-1]["type"] == "issue_due" and told[-1]["payload"]["issue"] == 2


# --- events and webhooks ---------------------------------------------------------------------------

def test_the_prescriber_polls_status_changes_with_a_cursor(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    page = client.get("/api/prescription-events", headers=world.a.headers("prescriber")).get_json()
    assert [e["status"] for e in page["events"]] == ["routed"]
    act(client, world, rx_id, "accept")
    later = client.get(f"/api/prescription-events?after={page['next_cursor']}",
                       headers=world.a.headers("prescriber")).get_json()
    assert [(e["type"], e["status"]) for e in later["events"]] == [("accept", "accepted")]
    assert client.get("/api/prescription-events", headers=world.b.headers("admin")).get_json()["events"] == []


def test_webhooks_are_signed_retried_with_backoff_and_carry_a_stable_id(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    made = client.post("/api/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=world.a.headers("prescriber"))
    assert made.status_code == 201
    secret = made.get_json()["secret"]
    send(client, world, rx())
    calls: list[tuple[bytes, dict]] = []

    def flaky(url: str, body: bytes, headers: dict) -> Outcome:
        calls.append((body, headers))
        return Outcome(len(calls) >= 3, "HTTP 503" if len(calls) < 3 else "HTTP 200")

    job = lambda: deliver_due(UnitOfWork(factory(client), SYSTEM, clock), flaky)  # noqa: E731
    assert job() == {"delivered": 0, "retrying": 1, "failed": 0}
    assert job() == {"delivered": 0, "retrying": 0, "failed": 0}  # backing off: not due yet
    clock.advance(seconds=31)
    assert job()["retrying"] == 1
    clock.advance(seconds=61)
    assert job()["delivered"] == 1
    ids = {h["X-Event-Id"] for _, h in calls}
    assert len(ids) == 1 and [h["X-Delivery-Attempt"] for _, h in calls] == ["1", "2", "3"]
    body, headers = calls[-1]
    assert headers["X-Signature"] == sign(secret, headers["X-Timestamp"], body)
    clock.advance(hours=2)
    assert job()["delivered"] == 0  # delivered once, never again


def test_webhook_urls_must_be_http(client, world):
    assert_problem(client.post("/api/webhooks", json={"url": "ftp://x/y"}, headers=world.a.headers("prescriber")), 422)


def test_every_step_is_in_the_audit_trail(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    act(client, world, rx_id, "accept")
    entries = client.get(f"/api/audit?object_type=Prescription&object_id={rx_id}",
                         headers=world.a.headers("admin")).get_json()
    assert any("status: routed -> accepted" in e["summary"] for e in entries)


def test_clock_fixture_is_in_force(clock):
    assert clock.today().isoformat() == "2026-11-23" and clock.now() + timedelta(0) == clock.at


def test_every_row_is_stamped_with_the_services_clock_not_the_machines(client, world, drugs, clock):
    """The service stands at 2026-11-23 (the machine's date is another): what it writes says so, the rows
    stamped by their column's default (a prescription's creation, its status changes, the audit trail) too."""
    from sqlalchemy import func, select

    from pharmacy.audit import AuditEntry
    from pharmacy.inventory.models import Movement
    from pharmacy.prescriptions.models import Prescription, PrescriptionEvent

    clock.advance(hours=-30)  # far from any machine's now, whatever day the suite runs
    with factory(client)() as db:
        audited_before = db.scalar(select(func.max(AuditEntry.id))) or 0
    stock(client, world, "C1", drugs["AML5"], "LOT-A", "2027-12-31", 100)
    rx_id = send(client, world, rx(issued_on="2026-11-22")).get_json()["id"]
    for action in ("accept", "prepare", "dispense", "hand-over"):
        assert act(client, world, rx_id, action).status_code == 200
    with factory(client)() as db:
        stamps = [*db.scalars(select(Prescription.created_at)), *db.scalars(select(PrescriptionEvent.at)),
                  *db.scalars(select(Movement.at)),
                  *db.scalars(select(AuditEntry.at).where(AuditEntry.id > audited_before))]
    assert len(stamps) > 10 and set(stamps) == {clock.now()}
