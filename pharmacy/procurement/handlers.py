"""How procurement reacts to what happens elsewhere in the domain (see :mod:`pharmacy.events`)."""

from __future__ import annotations

import logging

from pharmacy.errors import OutOfStock
from pharmacy.events import StockArrived, StockRequested, handles
from pharmacy.prescriptions.models import Shortage
from pharmacy.procurement.orders import ask_for_what_arrived, request_transfer
from pharmacy.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@handles(StockRequested)
def transfer_for_prescription(uow: UnitOfWork, event: StockRequested) -> None:
    """A pharmacy asked another member for stock for a prescription: a transfer order, its units held at the
    sender. Taken there meanwhile by another prescription, the need is recorded as a shortage instead."""
    savepoint = uow.session.begin_nested()
    try:
        request_transfer(uow, event.consortium_id, event.from_site_id, event.to_site_id,
                         [(event.drug_id, event.units, event.usable_until)], reason="shortage_cover",
                         prescription_id=event.prescription_id)
    except OutOfStock:
        savepoint.rollback()
        log.info("stock asked of site %s for prescription %s was taken meanwhile: recorded as a shortage",
                 event.from_site_id, event.prescription_id)
        uow.session.add(Shortage(consortium_id=event.consortium_id, site_id=event.to_site_id, drug_id=event.drug_id,
                                 quantity=event.units, prescription_id=event.prescription_id, created_at=uow.now()))
    else:
        savepoint.commit()


@handles(StockArrived)
def send_on_what_was_waited_for(uow: UnitOfWork, event: StockArrived) -> None:
    """Stock arrived at a site: the transfers from there that waited for it are asked for (after the
    prescriptions waiting there have been held theirs: patients first)."""
    ask_for_what_arrived(uow, event.site_id, event.drug_ids)
