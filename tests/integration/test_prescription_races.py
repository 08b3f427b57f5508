"""Many prescriptions routed and dispensed at once against scarce stock, in real concurrent transactions."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select, text

from pharmacy.catalog.services import create_drug
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.inventory.models import Lot, Movement, Reservation
from pharmacy.inventory.services import check_ledger, receive_stock
from pharmacy.prescriptions.domain import Kind
from pharmacy.prescriptions.models import Dispense, Prescription
from pharmacy.prescriptions.services import (
    ItemInput,
    PrescriptionInput,
    accept,
    dispense,
    hand_over,
    prepare,
    submit_prescription,
)
from pharmacy.principal import SYSTEM, Principal, Role, system_for
from pharmacy.procurement.models import TransferOrderLine
from pharmacy.unit_of_work import UnitOfWork
from tests.conftest import POSTGRES
from tests.factories import drug_data, site_data
from tests.integration.test_stock_races import _run_together

PRESCRIPTIONS = 20
PER_SITE = 20
EACH = 7


def test_concurrent_intake_and_dispensing_never_reserve_or_give_a_unit_twice(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "RUSH", "rush")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("U-LEAD", "lead_hospital")).id
    pharmacies = [create_site(uow, consortium.id, site_data(f"U-C{i}", "community_health_centre", lead,
                                                            dispenses=True, lon=120.0 + i / 100)).id
                  for i in range(3)]
    drug = create_drug(uow, drug_data("SCARCE")).id
    for site in pharmacies:
        receive_stock(uow, site, drug, f"LOT-{site}", date(2030, 1, 1), PER_SITE)
    prescriber = Principal("api_key", 1, "his", Role.PRESCRIBER, consortium.id, lead)
    today = UnitOfWork(factory, prescriber).today()

    def prescribe_and_dispense(index: int) -> str:
        data = PrescriptionInput(number=f"RX-{index}", patient_ref=f"P{index}", kind=Kind.ORDINARY, issued_on=today,
                                 valid_until=today, items=(ItemInput("SCARCE", EACH, 7),), patient_district="D1")
        intake = submit_prescription(UnitOfWork(factory, prescriber), data,
                                     hashlib.sha256(str(index).encode()).hexdigest())
        rx = intake.prescription
        if rx.status != "routed":
            return rx.status
        pharmacist = Principal("api_key", 2, "pharm", Role.PHARMACIST, consortium.id, rx.pharmacy_site_id)
        for step in (accept, prepare, dispense, hand_over):
            step(UnitOfWork(factory, pharmacist), rx.id)
        return "completed"

    results = _run_together(prescribe_and_dispense, PRESCRIPTIONS)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors
    outcome = Counter(results)
    fillable = len(pharmacies) * (PER_SITE // EACH)
    assert outcome == {"completed": fillable, "awaiting_stock": PRESCRIPTIONS - fillable}

    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Prescription)) == PRESCRIPTIONS  # nothing lost
        dispensed_units = session.scalar(select(func.sum(Dispense.quantity)))
        moved_out = -session.scalar(select(func.sum(Movement.quantity)).where(Movement.kind == "dispense"))
        on_hand = session.scalar(select(func.sum(Lot.quantity)))
        held_for_prescriptions = session.scalar(select(func.count()).select_from(Reservation).where(
            Reservation.status == "held", Reservation.prescription_id.is_not(None)))
        # What the prescriptions left waiting asked other members for stays held there for its transfer.
        held_for_transfers = session.scalar(select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.status == "held", Reservation.transfer_order_id.is_not(None)))
        requested = session.scalar(select(func.coalesce(func.sum(TransferOrderLine.quantity), 0)))
        negative = session.scalar(select(func.count()).select_from(Lot).where(Lot.quantity < 0))
    assert dispensed_units == moved_out == fillable * EACH
    assert on_hand == len(pharmacies) * PER_SITE - fillable * EACH
    assert held_for_prescriptions == 0 and negative == 0
    assert held_for_transfers == requested
    assert check_ledger(UnitOfWork(factory, system_for(consortium.id))) == []


def _waiting_on(conn, blocker_pid: int, timeout: float = 10.0) -> int:
    """The backend that waits for a lock ``blocker_pid`` holds, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE :blocker = ANY(pg_blocking_pids(pid))"),
                               {"blocker": blocker_pid}).scalars().first()
        conn.rollback()  # the server's activity is read as of a transaction's first look: look again in a new one
        if waiting is not None:
            return int(waiting)
        time.sleep(0.02)
    raise AssertionError(f"nothing came to wait for backend {blocker_pid}")


@pytest.mark.skipif(not POSTGRES, reason="lock waits and deadlocks between real transactions are PostgreSQL's")
def test_routing_that_finds_its_stock_taken_holds_no_lock_while_it_tries_the_next_pharmacy(committed_app):
    # The nominated pharmacy's stock is taken while the prescription waits for its lots; it is then held at the
    # other pharmacy, whose lots another transaction holds and which next asks for the first pharmacy's lots. Tried
    # with the first pharmacy's lots still locked, that is a cycle the database breaks by failing one of the two.
    database = committed_app.extensions["pharmacy_db"]
    factory = database.session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "RACE", "race")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("R-LEAD", "lead_hospital")).id
    first, second = (create_site(uow, consortium.id, site_data(f"R-C{i}", "community_health_centre", lead,
                                                               dispenses=True, lon=120.0 + i / 100)).id
                     for i in range(2))
    drug = create_drug(uow, drug_data("RACED")).id
    for site in (first, second):
        receive_stock(uow, site, drug, f"LOT-{site}", date(2030, 1, 1), PER_SITE)
    prescriber = Principal("api_key", 1, "his", Role.PRESCRIBER, consortium.id, lead)
    today = UnitOfWork(factory, prescriber).today()
    data = PrescriptionInput(number="RX-RACED", patient_ref="P1", kind=Kind.ORDINARY, issued_on=today,
                             valid_until=today, items=(ItemInput("RACED", EACH, 7),), patient_district="D1",
                             nominated_site_id=first)
    lots_at = "SELECT id FROM lots WHERE site_id = :site AND drug_id = :drug FOR UPDATE"
    with database.engine.connect() as other, database.engine.connect() as taker, \
            database.engine.connect() as watcher:
        other_pid = other.execute(text("SELECT pg_backend_pid()")).scalar_one()
        taker_pid = taker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        other.execute(text(lots_at), {"site": second, "drug": drug})  # the other transaction holds the second's lots
        taker.execute(text("UPDATE lots SET reserved = quantity WHERE site_id = :site AND drug_id = :drug"),
                      {"site": first, "drug": drug})  # the first's stock is being taken, not yet committed
        submitted: list = []
        thread = threading.Thread(target=lambda: submitted.append(_outcome(
            lambda: submit_prescription(UnitOfWork(factory, prescriber), data, "raced").prescription)))
        thread.start()
        _waiting_on(watcher, taker_pid)  # the prescription waits for the first pharmacy's lots
        taker.commit()  # taken: the first pharmacy has nothing left for it
        _waiting_on(watcher, other_pid)  # it waits for the second pharmacy's lots now
        asked = _outcome(lambda: other.execute(text(lots_at), {"site": first, "drug": drug}).all())
        other.commit()
        thread.join(timeout=30)
    assert not isinstance(asked, Exception), asked  # the first pharmacy's lots were free: no deadlock
    [rx] = submitted
    assert not isinstance(rx, Exception), rx
    assert (rx.status, rx.pharmacy_site_id) == ("routed", second)
    with factory() as session:
        held = session.execute(select(Reservation.site_id, func.sum(Reservation.quantity)).where(
            Reservation.status == "held").group_by(Reservation.site_id)).all()
    assert held == [(second, EACH)]


def _outcome(work):
    try:
        return work()
    except Exception as error:  # judged by the test
        return error
