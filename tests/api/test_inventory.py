"""Lots, the ledger, reservations, FEFO dispensing and counts over HTTP."""

from __future__ import annotations

from datetime import date

import pytest

from pharmacy.errors import OutOfStock
from pharmacy.inventory.domain import Cause, CauseType
from pharmacy.inventory.models import Lot, Reservation
from pharmacy.inventory.services import StockNeed, hold_all
from pharmacy.principal import system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_foundation import assert_problem
from tests.factories import World, add_drug, receive

# The clock fixture stands at 2026-11-23.
pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def amx(client, world: World) -> dict:
    return add_drug(client, world.a, "AMX250")


def stock(client, world: World, drug_id: int, site: str = "C1") -> dict:
    rows = client.get(f"/api/inventory/stock?site_id={world.a.sites[site]}&drug_id={drug_id}",
                      headers=world.a.headers("pharmacist")).get_json()
    return rows[0] if rows else {}


def ledger_is_consistent(client, world: World) -> bool:
    return client.get("/api/inventory/ledger-check", headers=world.a.headers("admin")).get_json()["consistent"]


def test_receipt_creates_a_lot_and_its_first_movement(client, world: World, amx):
    response = receive(client, world.a, "C1", amx["id"], "B2401", "2027-06-30", 240)
    assert response.status_code == 201
    movement = response.get_json()
    assert movement["kind"] == "receipt" and movement["quantity"] == 240 and movement["actor"].startswith("api_key")
    card = client.get(f"/api/inventory/lots/{movement['lot_id']}/movements",
                      headers=world.a.headers("procurement")).get_json()
    assert card["lot"]["quantity"] == 240 and [m["id"] for m in card["movements"]] == [movement["id"]]


def test_receipt_in_packs_is_kept_in_dispensing_units(client, world: World, amx):
    response = client.post("/api/inventory/receipts", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": amx["id"], "lot_number": "P1", "expiry_date": "2027-01-01",
        "quantity": 3, "unit": "pack"})
    assert response.get_json()["quantity"] == 3 * 24


@pytest.mark.parametrize(("change", "status", "field"), [
    ({"drug_id": 999999}, 422, "drug 999999 not found"),
    ({"quantity": -5}, 422, "quantity"),
    ({"quantity": 2.5}, 422, "quantity"),
    ({"quantity": "12"}, 422, "quantity"),
    ({"expiry_date": "2026-11-01"}, 422, "expired on 2026-11-01"),
    ({"expiry_date": "2027-02-30"}, 422, "expiry_date"),
    ({"reason_code": "found_it"}, 422, "reason code 'found_it'"),
    ({"unit": "crate"}, 422, "unit"),
])
def test_bad_receipts_are_refused_and_nothing_is_written(client, world: World, amx, change, status, field):
    body = {"site_id": world.a.sites["C1"], "drug_id": amx["id"], "lot_number": "B1", "expiry_date": "2027-06-30",
            "quantity": 10, **change}
    assert_problem(client.post("/api/inventory/receipts", json=body, headers=world.a.headers("pharmacist")),
                   status, field)
    assert stock(client, world, amx["id"]) == {}
    lots = client.get("/api/inventory/lots?include_empty=true", headers=world.a.headers("admin")).get_json()
    assert lots == []


def test_another_sites_stock_cannot_be_touched(client, world: World, amx):
    received = receive(client, world.a, "C2", amx["id"], "B1", "2027-06-30", 10, role="pharmacist_c2")
    lot_id = received.get_json()["lot_id"]
    assert_problem(receive(client, world.a, "C2", amx["id"], "B1", "2027-06-30", 10), 403, "may not act")
    assert_problem(client.post(f"/api/inventory/lots/{lot_id}/movements", headers=world.a.headers("pharmacist"),
                               json={"kind": "expiry_write_off", "quantity": -1, "reason_code": "damaged"}), 403)
    assert_problem(client.get(f"/api/inventory/lots/{lot_id}/movements", headers=world.b.headers("admin")), 404)
    assert stock(client, world, amx["id"], "C2")["on_hand"] == 10


def test_a_lot_number_cannot_change_its_expiry(client, world: World, amx):
    receive(client, world.a, "C1", amx["id"], "B1", "2027-06-30", 10)
    assert_problem(receive(client, world.a, "C1", amx["id"], "B1", "2027-09-30", 10), 409, "2027-06-30")


def test_a_mistake_is_undone_by_a_reversal_never_by_deletion(client, world: World, amx):
    movement = receive(client, world.a, "C1", amx["id"], "B1", "2027-06-30", 100).get_json()
    headers = world.a.headers("pharmacist")
    reversal = client.post(f"/api/inventory/movements/{movement['id']}/reverse", json={"note": "wrong drug"},
                           headers=headers)
    assert reversal.status_code == 201 and reversal.get_json()["quantity"] == -100
    assert reversal.get_json()["reverses_id"] == movement["id"]
    assert_problem(client.post(f"/api/inventory/movements/{movement['id']}/reverse", json={"note": "again"},
                               headers=headers), 409, "already been reversed")
    card = client.get(f"/api/inventory/lots/{movement['lot_id']}/movements", headers=headers).get_json()
    assert card["lot"]["quantity"] == 0 and len(card["movements"]) == 2
    assert ledger_is_consistent(client, world)


def test_reservations_hold_stock_and_dispensing_uses_them_first(client, world: World, amx):
    receive(client, world.a, "C1", amx["id"], "LATE", "2027-12-31", 50)
    receive(client, world.a, "C1", amx["id"], "EARLY", "2027-03-31", 30)
    headers = world.a.headers("pharmacist")
    request = {"site_id": world.a.sites["C1"], "drug_id": amx["id"], "supply_until": "2026-12-21",
               "cause_type": "manual", "cause_id": "RX-1"}
    held = client.post("/api/inventory/reservations", json={**request, "quantity": 40}, headers=headers).get_json()
    assert [(r["quantity"], r["status"]) for r in held] == [(30, "held"), (10, "held")]
    level = stock(client, world, amx["id"])
    assert (level["on_hand"], level["reserved"], level["usable"]) == (80, 40, 40)
    # Partial dispense: 25 now, the rest stays held.
    dispensed = client.post("/api/inventory/dispenses", json={**request, "quantity": 25}, headers=headers).get_json()
    assert [m["quantity"] for m in dispensed] == [-25]
    level = stock(client, world, amx["id"])
    assert (level["on_hand"], level["reserved"], level["usable"]) == (55, 15, 40)
    assert ledger_is_consistent(client, world)


def test_dispensing_beyond_usable_stock_says_how_much_there_is(client, world: World, amx):
    receive(client, world.a, "C1", amx["id"], "SOON", "2026-12-01", 500)
    receive(client, world.a, "C1", amx["id"], "OK", "2027-06-01", 8)
    response = client.post("/api/inventory/dispenses", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": amx["id"], "quantity": 20, "supply_until": "2026-12-21",
        "cause_type": "manual", "cause_id": "RX-2"})
    assert_problem(response, 409, "20 wanted, 8 usable")
    assert stock(client, world, amx["id"])["on_hand"] == 508


def test_another_lot_than_fefo_needs_a_reason_and_must_last(client, world: World, amx):
    early = receive(client, world.a, "C1", amx["id"], "EARLY", "2027-03-31", 30).get_json()["lot_id"]
    late = receive(client, world.a, "C1", amx["id"], "LATE", "2027-12-31", 30).get_json()["lot_id"]
    headers = world.a.headers("pharmacist")
    body = {"site_id": world.a.sites["C1"], "drug_id": amx["id"], "quantity": 10, "supply_until": "2026-12-21",
            "cause_type": "manual", "cause_id": "RX-3", "lots": [{"lot_id": late, "quantity": 10}]}
    assert_problem(client.post("/api/inventory/dispenses", json=body, headers=headers), 422, "needs a reason")
    done = client.post("/api/inventory/dispenses", json={**body, "lot_reason": "patient asked for one box"},
                       headers=headers)
    assert done.status_code == 201 and done.get_json()[0]["lot_id"] == late
    too_short = {**body, "supply_until": "2027-06-30", "lots": [{"lot_id": early, "quantity": 10}],
                 "lot_reason": "x"}
    assert_problem(client.post("/api/inventory/dispenses", json=too_short, headers=headers), 422, "expires on")


def test_stocktake_turns_differences_into_adjustments(client, world: World, amx):
    lot_a = receive(client, world.a, "C1", amx["id"], "A", "2027-03-31", 30).get_json()["lot_id"]
    lot_b = receive(client, world.a, "C1", amx["id"], "B", "2027-06-30", 20).get_json()["lot_id"]
    headers = world.a.headers("pharmacist")
    response = client.post("/api/inventory/stocktakes", headers=headers, json={
        "site_id": world.a.sites["C1"], "lines": [
            {"lot_id": lot_a, "counted": 28}, {"lot_id": lot_b, "counted": 20},
            {"drug_id": amx["id"], "lot_number": "FOUND", "expiry_date": "2027-08-31", "counted": 5}]})
    assert response.status_code == 201
    assert response.get_json()["lines_adjusted"] == 2
    assert stock(client, world, amx["id"])["on_hand"] == 28 + 20 + 5
    card = client.get(f"/api/inventory/lots/{lot_a}/movements", headers=headers).get_json()
    assert card["movements"][-1]["kind"] == "count_adjustment" and card["movements"][-1]["quantity"] == -2
    assert ledger_is_consistent(client, world)


def test_a_count_below_reserved_stock_is_refused_whole(client, world: World, amx):
    lot_a = receive(client, world.a, "C1", amx["id"], "A", "2027-03-31", 30).get_json()["lot_id"]
    lot_b = receive(client, world.a, "C1", amx["id"], "B", "2027-06-30", 20).get_json()["lot_id"]
    headers = world.a.headers("pharmacist")
    client.post("/api/inventory/reservations", headers=headers, json={
        "site_id": world.a.sites["C1"], "drug_id": amx["id"], "quantity": 25, "supply_until": "2026-12-21",
        "cause_type": "manual", "cause_id": "RX-4"})
    response = client.post("/api/inventory/stocktakes", headers=headers, json={
        "site_id": world.a.sites["C1"], "lines": [{"lot_id": lot_b, "counted": 19}, {"lot_id": lot_a, "counted": 10}]})
    assert_problem(response, 422, "25 are held", "releases 15: 15 held for manual RX-4")
    assert stock(client, world, amx["id"])["on_hand"] == 50


def test_write_offs_cannot_take_reserved_or_missing_stock(client, world: World, amx):
    lot = receive(client, world.a, "C1", amx["id"], "A", "2027-03-31", 10).get_json()["lot_id"]
    headers = world.a.headers("pharmacist")
    client.post("/api/inventory/reservations", headers=headers, json={
        "site_id": world.a.sites["C1"], "drug_id": amx["id"], "quantity": 6, "supply_until": "2026-12-21",
        "cause_type": "manual", "cause_id": "RX-5"})
    body = {"kind": "expiry_write_off", "quantity": -5, "reason_code": "damaged"}
    assert_problem(client.post(f"/api/inventory/lots/{lot}/movements", json=body, headers=headers), 409, "reserved")
    body = {"kind": "receipt", "quantity": 5, "reason_code": "purchase"}  # receipts have their own route
    assert_problem(client.post(f"/api/inventory/lots/{lot}/movements", json=body, headers=headers), 422, "kind")
    body = {"kind": "expiry_write_off", "quantity": -4, "reason_code": "damaged"}
    assert client.post(f"/api/inventory/lots/{lot}/movements", json=body, headers=headers).status_code == 201


def test_near_expiry_lists_lots_across_the_consortium_soonest_first(client, world: World, amx):
    receive(client, world.a, "C1", amx["id"], "SOON", "2026-12-15", 10)
    receive(client, world.a, "C2", amx["id"], "SOONER", "2026-12-01", 10, role="pharmacist_c2")
    receive(client, world.a, "C1", amx["id"], "LATER", "2027-09-01", 10)
    lots = client.get("/api/inventory/near-expiry?days=30", headers=world.a.headers("procurement")).get_json()
    assert [lot["lot_number"] for lot in lots] == ["SOONER", "SOON"]
    assert stock(client, world, amx["id"])["near_expiry"] == 10


def test_released_reservation_frees_the_stock(client, world: World, amx):
    receive(client, world.a, "C1", amx["id"], "A", "2027-03-31", 10)
    headers = world.a.headers("pharmacist")
    held = client.post("/api/inventory/reservations", headers=headers, json={
        "site_id": world.a.sites["C1"], "drug_id": amx["id"], "quantity": 10, "supply_until": "2026-12-21",
        "cause_type": "manual", "cause_id": "RX-6"}).get_json()
    released = client.post(f"/api/inventory/reservations/{held[0]['id']}/release", headers=headers)
    assert released.get_json()["status"] == "released"
    assert_problem(client.post(f"/api/inventory/reservations/{held[0]['id']}/release", headers=headers), 409)
    assert stock(client, world, amx["id"])["usable"] == 10


def test_movements_are_append_only_in_the_database(client, world: World, amx, connection):
    receive(client, world.a, "C1", amx["id"], "A", "2027-03-31", 10)
    from sqlalchemy import text

    for statement in ("UPDATE movements SET quantity = 99", "DELETE FROM movements"):
        nested = connection.begin_nested()
        with pytest.raises(Exception, match="append-only"):
            connection.execute(text(statement))
        nested.rollback()


def test_a_hold_of_several_needs_refused_for_one_short_leaves_every_lot_as_it_was(session_factory, client,
                                                                                 world: World, amx, clock):
    """All or none, and nothing changed by the none: routing tries the next pharmacy in the same transaction."""
    other = add_drug(client, world.a, "AML5")
    receive(client, world.a, "C1", amx["id"], "A1", "2027-06-30", 50)
    receive(client, world.a, "C1", other["id"], "B1", "2027-06-30", 5)
    site, until = world.a.sites["C1"], date(2026, 12, 21)
    cause = Cause(CauseType.MANUAL, "HOLD-1")
    uow = UnitOfWork(session_factory, system_for(world.a.consortium_id), clock)
    with uow:
        for needs in ([StockNeed(amx["id"], 30, until), StockNeed(other["id"], 10, until)],
                      # two needs of one drug share its lot: the second sees what the first takes
                      [StockNeed(amx["id"], 30, until), StockNeed(amx["id"], 30, until)]):
            with pytest.raises(OutOfStock):
                hold_all(uow, site, needs, cause)
            assert not [o for o in uow.session.new if isinstance(o, Reservation)]
            assert all(lot.reserved == 0 for lot in uow.session.identity_map.values() if isinstance(lot, Lot))
        held = hold_all(uow, site, [StockNeed(amx["id"], 20, until), StockNeed(amx["id"], 30, until)], cause)
        uow.commit()
    assert [r.quantity for r in held] == [20, 30]
    level = stock(client, world, amx["id"])
    assert (level["on_hand"], level["reserved"]) == (50, 50)
    assert stock(client, world, other["id"])["reserved"] == 0
    assert ledger_is_consistent(client, world)
