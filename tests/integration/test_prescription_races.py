"""Many prescriptions routed and dispensed at once against scarce stock, in real concurrent transactions."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date

from sqlalchemy import func, select

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
