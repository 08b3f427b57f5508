"""Concurrent clients over HTTP, in real concurrent transactions: locks are taken in one global order (two-drug
prescriptions listed in opposite orders never deadlock into an error a client sees), receipts creating the same new
lot all land in it, and retries racing under one Idempotency-Key book once."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from sqlalchemy import func, select

from pharmacy.accounts.services import create_api_key
from pharmacy.catalog.services import create_drug
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.inventory.models import Lot, Reservation
from pharmacy.inventory.services import check_ledger, receive_stock
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import drug_data, site_data
from tests.integration.test_stock_races import _run_together

CLIENTS = 8
ROUNDS = 6
LOTS_PER_DRUG = 3


def _consortium(factory: Any) -> tuple[dict[str, str], int]:
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "LOCKS", "locks")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("K-LEAD", "lead_hospital")).id
    pharmacy = create_site(uow, consortium.id, site_data("K-C1", "community_health_centre", lead,
                                                         dispenses=True)).id
    for code in ("AML5", "MET5"):
        drug = create_drug(uow, drug_data(code)).id
        for n in range(LOTS_PER_DRUG):  # several lots each, so one request locks several rows per drug
            receive_stock(uow, pharmacy, drug, f"{code}-{n}", date(2030, 1, 1 + n), 1000)
    keys = {"prescriber": create_api_key(uow, consortium.id, "his", Role.PRESCRIBER, lead)[1],
            "pharmacist": create_api_key(uow, consortium.id, "pharmacy", Role.PHARMACIST, pharmacy)[1]}
    return keys, consortium.id


def test_two_drug_prescriptions_in_opposite_orders_never_fail_a_client(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    keys, consortium_id = _consortium(factory)
    prescriber = {"Authorization": f"Bearer {keys['prescriber']}"}
    pharmacist = {"Authorization": f"Bearer {keys['pharmacist']}"}
    today = UnitOfWork(factory, SYSTEM).today().isoformat()

    def client_life(index: int) -> list[int]:
        client = committed_app.test_client()
        order = ("AML5", "MET5") if index % 2 == 0 else ("MET5", "AML5")
        statuses = []
        for n in range(ROUNDS):
            body = {"number": f"RX-{index}-{n}", "kind": "ordinary", "issued_on": today,
                    "patient": {"ref": f"P{index}", "district": "D1"},
                    "items": [{"drug_code": code, "quantity": 3 + i, "supply_days": 7} for i, code in enumerate(order)]}
            response = client.post("/api/prescriptions", json=body, headers=prescriber)
            statuses.append(response.status_code)
            if response.status_code != 201:
                continue
            rx = response.get_json()["id"]
            for step in ("accept", "prepare", "dispense", "hand-over"):
                payload = {"items": []} if step == "dispense" else None
                statuses.append(client.post(f"/api/prescriptions/{rx}/{step}", json=payload,
                                            headers=pharmacist).status_code)
        return statuses

    results = _run_together(client_life, CLIENTS)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    answered = Counter(code for statuses in results for code in statuses)
    assert answered == {201: CLIENTS * ROUNDS, 200: CLIENTS * ROUNDS * 4}, answered

    with factory() as session:
        held = session.scalar(select(func.count()).select_from(Reservation).where(Reservation.status == "held"))
        on_hand = session.scalar(select(func.sum(Lot.quantity)))
    assert held == 0
    assert on_hand == 2 * LOTS_PER_DRUG * 1000 - CLIENTS * ROUNDS * (3 + 4)
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []


def _receiving_site(factory: Any) -> tuple[str, int, int, int]:
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "RECV", "receiving")
    uow = UnitOfWork(factory, system_for(consortium.id))
    site = create_site(uow, consortium.id, site_data("R-LEAD", "lead_hospital", dispenses=True)).id
    drug = create_drug(uow, drug_data("AML5")).id
    key = create_api_key(uow, consortium.id, "pharmacy", Role.PHARMACIST, site)[1]
    return key, consortium.id, site, drug


def test_concurrent_receipts_of_one_new_lot_all_land_in_it(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    key, consortium_id, site, drug = _receiving_site(factory)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"site_id": site, "drug_id": drug, "lot_number": "NEW-1", "expiry_date": "2030-01-01", "quantity": 10}

    def receive(index: int) -> int:
        return committed_app.test_client().post("/api/inventory/receipts", json=body, headers=headers).status_code

    for _ in range(6):  # a new lot number each round, received by four clients at once
        body["lot_number"] = f"NEW-{_}"
        assert _run_together(receive, 4) == [201] * 4
    with factory() as session:
        lots = session.execute(select(Lot.lot_number, Lot.quantity).order_by(Lot.lot_number)).all()
    assert lots == [(f"NEW-{n}", 40) for n in range(6)]
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []


def test_retries_racing_under_one_key_book_once(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    key, consortium_id, site, drug = _receiving_site(factory)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "delivery-2026-12-02"}
    body = {"site_id": site, "drug_id": drug, "lot_number": "R-1", "expiry_date": "2030-01-01", "quantity": 10}

    def receive(index: int) -> tuple[int, bool]:
        response = committed_app.test_client().post("/api/inventory/receipts", json=body, headers=headers)
        return response.status_code, response.headers.get("Idempotent-Replayed") == "true"

    results = _run_together(receive, 6)
    assert sorted(results) == [(201, False)] + [(201, True)] * 5
    with factory() as session:
        assert session.execute(select(Lot.quantity)).scalars().all() == [10]
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []


def test_a_stocktake_recorded_while_dispensing_runs_on_the_lot_keeps_both(committed_app):
    """Counts against a book quantity read before the dispenses: every dispense and every counted difference
    stays on the lot, whatever the order the transactions commit in."""
    from pharmacy.inventory.domain import CauseType
    from pharmacy.inventory.services import Cause, CountLine, dispense_stock, record_stocktake
    from pharmacy.principal import Principal

    factory = committed_app.extensions["pharmacy_db"].session_factory
    _, consortium_id, site, drug = _receiving_site(factory)
    lot = receive_stock(UnitOfWork(factory, system_for(consortium_id)), site, drug, "COUNTED", date(2030, 1, 1),
                        1000).lot_id
    pharmacist = Principal("api_key", 1, "pharmacy", Role.PHARMACIST, consortium_id, site)
    today = UnitOfWork(factory, SYSTEM).today()

    def work(index: int) -> int:
        if index % 2 == 0:  # a dispense of 7
            dispense_stock(UnitOfWork(factory, pharmacist), site, drug, 7, today, Cause(CauseType.MANUAL, f"w{index}"))
            return -7
        # A count sheet made when the lot held 1000, which found 3 units fewer than that.
        record_stocktake(UnitOfWork(factory, pharmacist), site, [CountLine(997, lot_id=lot, book=1000)])
        return -3

    changes = _run_together(work, 12)
    assert all(isinstance(c, int) for c in changes), changes
    with factory() as session:
        assert session.scalar(select(Lot.quantity).where(Lot.id == lot)) == 1000 + sum(changes) == 1000 - 6 * 7 - 6 * 3
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []
