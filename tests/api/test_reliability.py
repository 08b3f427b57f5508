"""Jobs that survive any row, lot numbers that mean one lot, and stock requests that a retry never books twice."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from pharmacy.inventory.domain import normalise_lot_number
from pharmacy.inventory.models import Reservation
from pharmacy.inventory.services import check_ledger
from pharmacy.principal import SYSTEM
from pharmacy.procurement.services import release_expired_reservations
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_foundation import assert_problem
from tests.api.test_prescriptions import factory, held_per_lot, rx, send, stock
from tests.factories import World, add_drug, receive

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou


@pytest.fixture
def drugs(client, world: World) -> dict[str, dict]:
    return {"AML5": add_drug(client, world.a, "AML5", generic_name="氨氯地平片", dosage_form="tablet",
                             strength_amount="5", dispensing_unit="tablet", pack_size=28),
            "MTF": add_drug(client, world.a, "MTF500", generic_name="二甲双胍片", dosage_form="tablet",
                            strength_amount="500", dispensing_unit="tablet", pack_size=48)}


def hold_by_hand(client, world: World, drug: dict, quantity: int, reference: str, key: str | None = None):
    headers = world.a.headers("pharmacist") | ({"Idempotency-Key": key} if key else {})
    return client.post("/api/inventory/reservations", headers=headers, json={
        "site_id": world.a.sites["C1"], "drug_id": drug["id"], "quantity": quantity, "supply_until": "2026-12-21",
        "cause_type": "manual", "cause_id": reference})


# Holds carry typed causes, and the release job judges each by its own kind -------------------------------

def test_the_release_job_frees_a_closed_prescriptions_stock_beside_a_wards_manual_hold(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    assert hold_by_hand(client, world, drugs["AML5"], 10, "ward-0").status_code == 201
    rx_id = send(client, world, rx()).get_json()["id"]
    assert held_per_lot(client, world) == {"L1": 38}
    # The prescription closes while the job that releases its stock is down: only the job can free it now.
    with factory(client)() as session:
        session.execute(text("UPDATE prescriptions SET status = 'cancelled' WHERE id = :id"), {"id": rx_id})
        session.commit()
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 28
    assert held_per_lot(client, world) == {"L1": 10}  # the ward's hold has a live cause of its own: it stays
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 0
    assert check_ledger(UnitOfWork(factory(client), SYSTEM, clock)) == []


def test_a_hold_names_its_prescription_by_row_and_a_manual_hold_by_its_reference(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    rx_id = send(client, world, rx()).get_json()["id"]
    hold_by_hand(client, world, drugs["AML5"], 5, "recall 2026-17")
    with factory(client)() as session:
        holds = {(r.cause_type.value, r.prescription_id, r.reference) for r in session.scalars(select(Reservation))}
    assert holds == {("prescription", rx_id, None), ("manual", None, "recall 2026-17")}
    listed = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert listed[0]["reserved"] == 33


def test_a_prescriptions_hold_cannot_be_made_by_hand(client, world, drugs):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    response = client.post("/api/inventory/reservations", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": drugs["AML5"]["id"], "quantity": 5, "supply_until": "2026-12-21",
        "cause_type": "prescription", "cause_id": "RX-1"})
    assert response.status_code == 422
    assert held_per_lot(client, world) == {"L1": 0}


def test_one_hold_that_cannot_be_released_is_skipped_and_the_job_releases_the_rest(client, world, drugs, clock):
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    stock(client, world, "C1", drugs["MTF"], "M1", "2027-06-30", 100)
    first = send(client, world, rx("RX-1")).get_json()["id"]
    second = send(client, world, rx("RX-2", items=[{"drug_code": "MTF500", "quantity": 20, "supply_days": 7}]))
    with factory(client)() as session:
        session.execute(text("UPDATE prescriptions SET status = 'cancelled' WHERE id IN (:a, :b)"),
                        {"a": first, "b": second.get_json()["id"]})
        # A damaged row: the lot's count of held units lost this hold, so releasing it would go below zero.
        session.execute(text("UPDATE lots SET reserved = 0 WHERE lot_number = 'L1'"))
        session.commit()
    assert release_expired_reservations(UnitOfWork(factory(client), SYSTEM, clock)) == 20
    assert held_per_lot(client, world) == {"L1": 0, "M1": 0}
    with factory(client)() as session:
        still = session.scalars(select(Reservation).where(Reservation.status == "held")).all()
    assert [(r.prescription_id, r.quantity) for r in still] == [(first, 28)]  # kept for a person to look at


# Lot numbers: one spelling, so that look-alikes are one lot ---------------------------------------------

@pytest.mark.parametrize("spelling", ["L2024-01 ", "l2024-01", "L２０２４-01", "L2024\u200b-01", "L2024\u201101",
                                      "L2024\u00a0-01".replace("\u00a0-", "-"), "  L2024－01", "L2024\u201301"])
def test_lot_numbers_that_only_look_different_are_one_spelling(spelling):
    assert normalise_lot_number(spelling) == "L2024-01"


def test_look_alike_lot_numbers_received_are_one_lot(client, world, drugs):
    for spelling in ["L2024-01", "L2024-01 ", "l2024-01", "L２０２４-01", "L2024\u200b-01", "L2024\u201101"]:
        assert receive(client, world.a, "C1", drugs["AML5"]["id"], spelling, "2027-06-30", 10).status_code == 201
    lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [(lot["lot_number"], lot["quantity"]) for lot in lots] == [("L2024-01", 60)]


def test_a_lot_number_of_only_invisible_characters_is_refused(client, world, drugs):
    response = receive(client, world.a, "C1", drugs["AML5"]["id"], "\u200b \u200b", "2027-06-30", 10)
    assert_problem(response, 422, "lot number")


# Retries of stock requests: the same Idempotency-Key books once ---------------------------------------

def receipt(world: World, drug: dict, quantity: int = 10) -> dict:
    return {"site_id": world.a.sites["C1"], "drug_id": drug["id"], "lot_number": "R1", "expiry_date": "2027-06-30",
            "quantity": quantity}


def test_a_receipt_sent_again_with_its_key_is_booked_once_and_answered_as_the_first_time(client, world, drugs):
    headers = world.a.headers("pharmacist") | {"Idempotency-Key": "delivery-7"}
    first = client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"]), headers=headers)
    again = client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"]), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [lot["quantity"] for lot in lots] == [10]


def test_the_same_key_for_a_different_request_is_refused_and_books_nothing(client, world, drugs):
    headers = world.a.headers("pharmacist") | {"Idempotency-Key": "delivery-8"}
    client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"]), headers=headers)
    other = client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"], 99), headers=headers)
    assert_problem(other, 409, "different request")
    lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [lot["quantity"] for lot in lots] == [10]


def test_a_refused_request_remembers_nothing_and_its_key_may_be_sent_again(client, world, drugs):
    headers = world.a.headers("pharmacist") | {"Idempotency-Key": "delivery-9"}
    bad = {**receipt(world, drugs["AML5"]), "expiry_date": "2026-11-01"}  # expired: refused
    assert client.post("/api/inventory/receipts", json=bad, headers=headers).status_code == 422
    assert client.post("/api/inventory/receipts", json=bad, headers=headers).status_code == 422
    assert client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"]),
                       headers=world.a.headers("pharmacist") | {"Idempotency-Key": "delivery-10"}).status_code == 201


def test_a_manual_movement_and_a_hold_sent_again_are_booked_once(client, world, drugs):
    lot = receive(client, world.a, "C1", drugs["AML5"]["id"], "W1", "2027-06-30", 50).get_json()["lot_id"]
    headers = world.a.headers("pharmacist") | {"Idempotency-Key": "write-off-1"}
    body = {"kind": "expiry_write_off", "quantity": -5, "reason_code": "damaged"}
    for _ in range(3):
        assert client.post(f"/api/inventory/lots/{lot}/movements", json=body, headers=headers).status_code == 201
    for _ in range(2):
        assert hold_by_hand(client, world, drugs["AML5"], 7, "ward-3", key="hold-1").status_code == 201
    listed = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [(lot["quantity"], lot["reserved"]) for lot in listed] == [(45, 7)]


def test_a_dispense_sent_again_with_its_key_is_given_once_and_answered_with_its_movements(client, world, drugs):
    lot = receive(client, world.a, "C1", drugs["AML5"]["id"], "D1", "2027-06-30", 50).get_json()["lot_id"]
    headers = world.a.headers("pharmacist") | {"Idempotency-Key": "dispense-1"}
    body = {"site_id": world.a.sites["C1"], "drug_id": drugs["AML5"]["id"], "quantity": 14,
            "supply_until": "2026-11-30", "cause_type": "manual", "cause_id": "ward-3"}
    first = client.post("/api/inventory/dispenses", json=body, headers=headers)
    again = client.post("/api/inventory/dispenses", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    given = first.get_json()
    assert [(m["lot_id"], m["quantity"]) for m in given] == [(lot, -14)]
    card = client.get(f"/api/inventory/lots/{lot}/movements", headers=world.a.headers("pharmacist")).get_json()
    # The answer names the movement written, by its id, the first time and every time after.
    assert given[0]["id"] == card["movements"][-1]["id"] and again.get_json() == given
    assert card["lot"]["quantity"] == 36


def test_keys_belong_to_the_account_that_sent_them(client, world, drugs):
    key = {"Idempotency-Key": "same-key"}
    c1 = client.post("/api/inventory/receipts", json=receipt(world, drugs["AML5"]),
                     headers=world.a.headers("pharmacist") | key)
    c2 = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist_c2") | key,
                     json={**receipt(world, drugs["AML5"]), "site_id": world.a.sites["C2"]})
    assert c1.status_code == c2.status_code == 201 and "Idempotent-Replayed" not in c2.headers


# Scheduled jobs run consortium by consortium ----------------------------------------------------------

def test_jobs_run_once_per_consortium_each_seeing_only_its_own_rows(client, world, drugs, clock):
    from pharmacy.consortium.models import Site
    from pharmacy.scheduler import each_consortium

    database = client.application.extensions["pharmacy_db"]
    seen: list[tuple[int | None, set[int]]] = []

    def census(uow: UnitOfWork) -> int:
        with uow:
            consortia = {site.consortium_id for site in uow.session.scalars(select(Site))}
        seen.append((uow.principal.consortium_id, consortia))
        return len(consortia)

    assert each_consortium(database, clock, census) == 2
    assert (world.a.consortium_id, {world.a.consortium_id}) in seen
    assert (world.b.consortium_id, {world.b.consortium_id}) in seen


def test_a_job_failing_for_one_consortium_still_runs_for_the_others_and_says_which(client, world, clock):
    from pharmacy.scheduler import JobFailed, each_consortium

    database = client.application.extensions["pharmacy_db"]
    ran: list[int | None] = []

    def work(uow: UnitOfWork) -> int:
        if uow.principal.consortium_id == world.a.consortium_id:
            raise RuntimeError("a row this job cannot read")
        ran.append(uow.principal.consortium_id)
        return 1

    with pytest.raises(JobFailed, match=f"consortium {world.a.consortium_id}: RuntimeError: a row this job"):
        each_consortium(database, clock, work)
    assert ran == [world.b.consortium_id]
