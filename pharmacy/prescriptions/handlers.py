"""How prescriptions react to what happens elsewhere in the domain (see :mod:`pharmacy.events`)."""

from __future__ import annotations

from pharmacy.events import StockArrived, handles
from pharmacy.prescriptions.services import resume_awaiting
from pharmacy.unit_of_work import UnitOfWork


@handles(StockArrived)
def move_on_prescriptions_waiting(uow: UnitOfWork, event: StockArrived) -> None:
    """Stock arrived at a pharmacy: the prescriptions waiting there for it are held their stock and move on."""
    resume_awaiting(uow, event.site_id, event.drug_ids, first=event.prescription_id)
