"""One pack's trace code, scanned at several pharmacies at once, in real concurrent transactions: the database's
unique keys let exactly one of them have it (on PostgreSQL the others wait for it and are refused)."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pharmacy.catalog.services import create_drug
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.errors import Conflict
from pharmacy.inventory.models import Lot, Movement, TraceCode, TraceCodeDispense
from pharmacy.inventory.services import check_ledger, receive_stock
from pharmacy.prescriptions.domain import Kind
from pharmacy.prescriptions.services import (
    DispenseLine,
    ItemInput,
    PrescriptionInput,
    accept,
    dispense,
    get_prescription,
    prepare,
    submit_prescription,
)
from pharmacy.principal import SYSTEM, Principal, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import drug_data, site_data
from tests.integration.test_stock_races import _run_together

PHARMACIES = 6
CODE = "81000000000000000042"


def _consortium(factory):
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "SCAN", "scan")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("S-LEAD", "lead_hospital")).id
    pharmacies = [create_site(uow, consortium.id, site_data(f"S-C{i}", "community_health_centre", lead,
                                                            dispenses=True, lon=120.0 + i / 100)).id
                  for i in range(PHARMACIES)]
    drug = create_drug(uow, drug_data("PACKED", pack_size=10)).id
    return consortium.id, lead, pharmacies, drug


def _pharmacist(consortium_id: int, site_id: int) -> Principal:
    return Principal("api_key", site_id, f"pharmacist {site_id}", Role.PHARMACIST, consortium_id, site_id)


def test_the_same_code_dispensed_at_once_at_several_pharmacies_goes_to_one_patient_only(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium_id, lead, pharmacies, drug = _consortium(factory)
    uow = UnitOfWork(factory, system_for(consortium_id))
    for site in pharmacies:
        receive_stock(uow, site, drug, f"LOT-{site}", date(2030, 1, 1), 50)
    prescriber = Principal("api_key", 1, "his", Role.PRESCRIBER, consortium_id, lead)
    today = UnitOfWork(factory, prescriber).today()
    prepared = []
    for n, site in enumerate(pharmacies):
        data = PrescriptionInput(number=f"RX-{n}", patient_ref=f"P{n}", kind=Kind.ORDINARY, issued_on=today,
                                 valid_until=today, items=(ItemInput("PACKED", 10, 7),), nominated_site_id=site)
        rx = submit_prescription(UnitOfWork(factory, prescriber), data,
                                 hashlib.sha256(str(n).encode()).hexdigest()).prescription
        assert rx.pharmacy_site_id == site
        for step in (accept, prepare):
            step(UnitOfWork(factory, _pharmacist(consortium_id, site)), rx.id)
        item = get_prescription(UnitOfWork(factory, _pharmacist(consortium_id, site)), rx.id).items[0]
        prepared.append((site, rx.id, item.id))

    def give(index: int) -> str:
        site, rx_id, item_id = prepared[index]
        dispense(UnitOfWork(factory, _pharmacist(consortium_id, site)), rx_id,
                 [DispenseLine(item_id, trace_codes=(CODE,))])
        return "dispensed"

    results = _run_together(give, PHARMACIES)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    assert not unexpected, unexpected
    assert Counter("refused" if isinstance(r, Conflict) else r for r in results) == {
        "dispensed": 1, "refused": PHARMACIES - 1}
    assert all("was already dispensed at Site S-C" in str(r) for r in results if isinstance(r, Conflict))
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(TraceCode)) == 1
        assert session.scalar(select(func.count()).select_from(TraceCodeDispense)) == 1
        # The refused dispenses gave nothing: only one pharmacy's stock moved.
        assert session.scalar(select(func.count()).select_from(Movement).where(Movement.kind == "dispense")) == 1
        assert session.scalar(select(func.sum(Lot.quantity))) == PHARMACIES * 50 - 10
    assert check_ledger(UnitOfWork(factory, system_for(consortium_id))) == []


def test_the_same_code_received_at_once_at_several_pharmacies_belongs_to_one_lot(committed_app):
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium_id, _, pharmacies, drug = _consortium(factory)

    def take_in(index: int) -> str:
        site = pharmacies[index]
        receive_stock(UnitOfWork(factory, _pharmacist(consortium_id, site)), site, drug, f"LOT-{site}",
                      date(2030, 1, 1), 10, trace_codes=[CODE])
        return "received"

    results = _run_together(take_in, PHARMACIES)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    assert not unexpected, unexpected
    assert Counter("refused" if isinstance(r, Conflict) else r for r in results) == {
        "received": 1, "refused": PHARMACIES - 1}
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(TraceCode)) == 1
        assert session.scalar(select(func.count()).select_from(Lot)) == 1  # the refused receipts wrote nothing


def test_the_database_itself_refuses_a_code_dispensed_twice(committed_app):
    """Whatever a service forgets to check, a second dispense row for one code, or a second row for one code in
    one consortium, does not commit."""
    factory = committed_app.extensions["pharmacy_db"].session_factory
    consortium_id, _, pharmacies, drug = _consortium(factory)
    movement = receive_stock(UnitOfWork(factory, system_for(consortium_id)), pharmacies[0], drug, "L", date(2030, 1, 1),
                             10)
    with factory() as session:
        code = TraceCode(consortium_id=consortium_id, code=CODE, kind="national", lot_id=movement.lot_id,
                         drug_id=drug, site_id=pharmacies[0], source="receipt", actor="t")
        session.add(code)
        session.commit()
        for _ in range(2):
            session.add(TraceCodeDispense(consortium_id=consortium_id, trace_code_id=code.id,
                                          movement_id=movement.id, site_id=pharmacies[0], actor="t"))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(TraceCode(consortium_id=consortium_id, code=CODE, kind="national", lot_id=movement.lot_id,
                              drug_id=drug, site_id=pharmacies[1], source="receipt", actor="t"))
        with pytest.raises(IntegrityError):
            session.commit()
