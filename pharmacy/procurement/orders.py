"""Creating orders: numbering, and transfer orders (planned, asked for by an officer or by routing)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select

from pharmacy.errors import OutOfStock, ValidationFailed
from pharmacy.inventory.domain import Cause, CauseType
from pharmacy.inventory.services import StockNeed, hold_all
from pharmacy.procurement.models import TransferOrder, TransferOrderLine
from pharmacy.unit_of_work import UnitOfWork


def order_number(prefix: str, today: date) -> str:
    """A number people can read out over the phone: PO-20261123-7F3A2C."""
    return f"{prefix}-{today:%Y%m%d}-{secrets.token_hex(3).upper()}"


def request_transfer(uow: UnitOfWork, consortium_id: int, from_site_id: int, to_site_id: int,
                     lines: Sequence[tuple[int, int, date | None]], *, reason: str = "shortage_cover",
                     prescription_id: int | None = None, run_id: int | None = None, note: str = "",
                     lots: Sequence[int | None] | None = None) -> TransferOrder:
    """Ask ``from_site`` to send stock to ``to_site``: lines of (drug, units, date the stock must last until),
    each from a named lot (``lots``) or first-expiry first-out. The units are held at the sending site from now
    until the order ships or is cancelled, so that neither a prescription nor the next plan counts them there
    (:class:`OutOfStock` if it cannot hold them all). Joins the caller's transaction."""
    order = TransferOrder(consortium_id=consortium_id, number=order_number("TO", uow.today()), run_id=run_id,
                          prescription_id=prescription_id, from_site_id=from_site_id, to_site_id=to_site_id,
                          reason=reason, status="requested", note=note, created_by=uow.principal.label,
                          created_at=uow.now())
    uow.session.add(order)
    uow.session.flush()
    needs = []
    for n, (drug_id, quantity, usable_until) in enumerate(lines):
        lot_id = lots[n] if lots else None
        uow.session.add(TransferOrderLine(consortium_id=consortium_id, order_id=order.id, drug_id=drug_id,
                                          lot_id=lot_id, quantity=quantity, usable_until=usable_until))
        needs.append(StockNeed(drug_id, quantity, usable_until or uow.today(), lot_id))
    hold_all(uow, from_site_id, needs, transfer_cause(order.id))
    return order


def transfer_cause(order_id: int) -> Cause:
    """A transfer order as the cause of its holds and movements."""
    return Cause(CauseType.TRANSFER, str(order_id))


def await_stock_transfer(uow: UnitOfWork, consortium_id: int, from_site_id: int, to_site_id: int,
                         lines: Sequence[tuple[int, int]], *, run_id: int | None = None, note: str = "",
                         ) -> TransferOrder:
    """A transfer of stock the sender does not have yet (lines of drug and units): it holds nothing and waits,
    and is asked for (its units held) once the stock arrives at the sender (:func:`ask_for_what_arrived`)."""
    order = TransferOrder(consortium_id=consortium_id, number=order_number("TO", uow.today()), run_id=run_id,
                          prescription_id=None, from_site_id=from_site_id, to_site_id=to_site_id,
                          reason="redistribution", status="awaiting_stock", note=note,
                          created_by=uow.principal.label, created_at=uow.now())
    uow.session.add(order)
    uow.session.flush()
    for drug_id, quantity in lines:
        uow.session.add(TransferOrderLine(consortium_id=consortium_id, order_id=order.id, drug_id=drug_id,
                                          lot_id=None, quantity=quantity, usable_until=None))
    return order


def ask_for_what_arrived(uow: UnitOfWork, site_id: int, drug_ids: Sequence[int]) -> list[int]:
    """Stock of ``drug_ids`` arrived at ``site_id``: each transfer from there that waited for it is asked for, its
    units held, once the site can hold all of them (oldest first); the others go on waiting. Joins the caller's
    transaction; returns the orders asked for."""
    waiting = uow.session.scalars(
        select(TransferOrder).where(
            TransferOrder.status == "awaiting_stock", TransferOrder.from_site_id == site_id,
            TransferOrder.id.in_(select(TransferOrderLine.order_id).where(TransferOrderLine.drug_id.in_(
                list(drug_ids)))))
        .order_by(TransferOrder.id).with_for_update().execution_options(populate_existing=True)).all()
    asked = []
    for order in waiting:
        lines = list(uow.session.scalars(select(TransferOrderLine).where(TransferOrderLine.order_id == order.id)))
        savepoint = uow.session.begin_nested()
        try:
            hold_all(uow, site_id, [StockNeed(line.drug_id, line.quantity, uow.today()) for line in lines],
                     transfer_cause(order.id))
        except (OutOfStock, ValidationFailed):
            savepoint.rollback()  # not all of it yet: it goes on waiting
            continue
        savepoint.commit()
        order.status = "requested"
        asked.append(order.id)
    return asked
