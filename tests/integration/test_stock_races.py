"""Real concurrent transactions on one scarce lot (PostgreSQL row locks; SQLite serialises writers)."""

from __future__ import annotations

import threading
from datetime import date

from sqlalchemy import func, select

from pharmacy.catalog.services import create_drug
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.errors import OutOfStock
from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.models import Lot, Movement, Reservation
from pharmacy.inventory.services import Cause, check_ledger, dispense_stock, hold_stock, receive_stock
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import drug_data, site_data

WORKERS = 12
SCARCE = 10
EACH = 3
SUPPLY_UNTIL = date(2027, 1, 31)


def _setup(factory) -> tuple[int, int, int]:
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "RACE", "race")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("R-LEAD", "lead_hospital", dispenses=True)).id
    drug = create_drug(uow, drug_data("SCARCE")).id
    receive_stock(uow, lead, drug, "ONLY", date(2027, 12, 31), SCARCE)
    return consortium.id, lead, drug


def _run_together(target, count: int) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except Exception as error:  # collected and judged by the test
            results[index] = error

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _pharmacist(consortium_id: int, site_id: int):
    from pharmacy.principal import Principal

    return Principal("api_key", 1, "race pharmacist", Role.PHARMACIST, consortium_id, site_id)


def test_concurrent_reserve_and_dispense_never_gives_a_unit_twice(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium_id, site, drug = _setup(factory)
    principal = _pharmacist(consortium_id, site)

    def reserve_then_dispense(index: int) -> int:
        cause = Cause(CauseType.MANUAL, f"RX-{index}")
        if index % 3 == 2:  # a third dispense straight away, racing the reservations
            moved = dispense_stock(UnitOfWork(factory, principal), site, drug, EACH, SUPPLY_UNTIL, cause)
            return -sum(m.quantity for m in moved)
        hold_stock(UnitOfWork(factory, principal), site, drug, EACH, SUPPLY_UNTIL, cause)
        moved = dispense_stock(UnitOfWork(factory, principal), site, drug, EACH, SUPPLY_UNTIL, cause)
        return -sum(m.quantity for m in moved)

    results = _run_together(reserve_then_dispense, WORKERS)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, OutOfStock)]
    assert not unexpected, unexpected
    given = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert len(given) == SCARCE // EACH and len(refused) == WORKERS - len(given)

    with factory() as session:
        lot = session.scalars(select(Lot).where(Lot.drug_id == drug)).one()
        dispensed = -session.scalar(select(func.sum(Movement.quantity)).where(Movement.kind == "dispense"))
        held = session.scalar(select(func.count()).select_from(Reservation).where(Reservation.status == "held"))
    assert lot.quantity == SCARCE - sum(given) >= 0
    assert dispensed == sum(given)
    assert lot.reserved == 0 and held == 0
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []


def test_concurrent_reservations_never_hold_more_than_the_lot(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium_id, site, drug = _setup(factory)
    principal = _pharmacist(consortium_id, site)

    def reserve(index: int) -> int:
        held = hold_stock(UnitOfWork(factory, principal), site, drug, 2, SUPPLY_UNTIL,
                          Cause(CauseType.MANUAL, f"RX-{index}"))
        return sum(r.quantity for r in held)

    results = _run_together(reserve, WORKERS)
    assert sum(r for r in results if isinstance(r, int)) == SCARCE
    assert all(isinstance(r, int | OutOfStock) for r in results)
    with factory() as session:
        lot = session.scalars(select(Lot).where(Lot.drug_id == drug)).one()
    assert lot.reserved == SCARCE and lot.quantity == SCARCE
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []
