"""Inventory position: what a site can count on for a drug, computed in one place.

    on hand - held + on order + in transit

On hand is what the lots hold; held is what is reserved (for prescriptions, for transfers promised to other
sites, by hand); available is the unheld part of the lots usable today; on order is what open purchase orders
still have to deliver (each line from its expected day: the order's day plus the offer's lead time, or the date
the supplier promised); in transit is what other members send: shipped and not yet arrived, or asked for and held
for it at the sender (the units the sender holds for the order: a hold lost meanwhile is not counted, since it
may not come). Forecasts, low-stock alerts and plans reason from it, so a unit is never counted twice (at
the sender and at the receiver, or on a shelf and on an order) nor forgotten.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select

from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.models import Lot, Reservation
from pharmacy.procurement.domain import OPEN_PURCHASE_ORDER_STATUSES, TransferStatus
from pharmacy.procurement.models import (
    PurchaseOrder,
    PurchaseOrderLine,
    TransferOrder,
    TransferOrderLine,
    TransferParcel,
)
from pharmacy.unit_of_work import UnitOfWork

Key = tuple[int, int]  # (site, drug)


@dataclass(frozen=True)
class Incoming:
    """Units on their way to a site: a purchase order's line, a transfer shipped, or a transfer asked for (held at
    the sender). ``expiry_date`` is known for transfers (the lot's), not for goods still to be made up."""

    kind: str  # purchase_order | in_transit | transfer_requested | transfer_awaiting
    order_id: int
    order_number: str
    units: int
    expected_on: date
    from_site_id: int | None = None
    expiry_date: date | None = None
    # Which row it is, as a plan names it: P<purchase-order line>, S<parcel shipped>, H<hold at the sender>,
    # A<line of a transfer awaiting its stock>.
    source: str = ""


@dataclass(frozen=True)
class Position:
    site_id: int
    drug_id: int
    on_hand: int = 0
    expired: int = 0  # of on hand: lots no longer usable today
    held_for_prescriptions: int = 0
    held_for_transfers: int = 0
    held_by_hand: int = 0
    available: int = 0  # usable today and not held
    incoming: tuple[Incoming, ...] = field(default_factory=tuple)
    # Units this site will send on as soon as they reach it (a plan's move of packs it buys, or of stock another
    # transfer brings): promised, though not yet held.
    promised_out: int = 0

    @property
    def held(self) -> int:
        return self.held_for_prescriptions + self.held_for_transfers + self.held_by_hand

    @property
    def on_order(self) -> int:
        return sum(i.units for i in self.incoming if i.kind == "purchase_order")

    @property
    def in_transit(self) -> int:
        return sum(i.units for i in self.incoming if i.kind != "purchase_order")

    @property
    def position(self) -> int:
        """What the site can count on: available now, and on order and in transit, less what it has promised to
        send on once it arrives."""
        return self.available + self.on_order + self.in_transit - self.promised_out

    def arriving_by(self, day: date) -> int:
        """Units on their way that are expected by ``day`` and stay here."""
        return max(0, sum(i.units for i in self.incoming if i.expected_on <= day) - self.promised_out)


# A transfer asked for is held at the sender and expected the day after; a shipped one any time now.
TRANSFER_DAYS = 1


def positions(uow: UnitOfWork, *, site_ids: Iterable[int] | None = None,
              drug_ids: Iterable[int] | None = None) -> dict[Key, Position]:
    """The position of every site and drug with stock, holds or stock on its way (of the given sites and drugs),
    in a few queries whatever their number."""
    with uow:
        today = uow.today()
        sites = sorted(set(site_ids)) if site_ids is not None else None
        drugs = sorted(set(drug_ids)) if drug_ids is not None else None

        def only(stmt: Any, site_column: Any, drug_column: Any) -> Any:
            """``stmt`` for the sites and drugs asked for."""
            if sites is not None:
                stmt = stmt.where(site_column.in_(sites))
            if drugs is not None:
                stmt = stmt.where(drug_column.in_(drugs))
            return stmt

        usable = Lot.usable_on(today)
        facts: dict[Key, dict[str, object]] = defaultdict(dict)
        for site_id, drug_id, on_hand, available, expired in uow.session.execute(only(
                select(Lot.site_id, Lot.drug_id, func.sum(Lot.quantity),
                       func.sum(case((usable, Lot.quantity - Lot.reserved), else_=0)),
                       func.sum(case((usable, 0), else_=Lot.quantity)))
                .group_by(Lot.site_id, Lot.drug_id), Lot.site_id, Lot.drug_id)):
            facts[(site_id, drug_id)].update(on_hand=int(on_hand), available=int(available), expired=int(expired))
        held_as = {CauseType.PRESCRIPTION: "held_for_prescriptions", CauseType.TRANSFER: "held_for_transfers",
                   CauseType.MANUAL: "held_by_hand"}
        for site_id, drug_id, cause_type, units in uow.session.execute(only(
                select(Reservation.site_id, Reservation.drug_id, Reservation.cause_type, func.sum(Reservation.quantity))
                .where(Reservation.status == "held")
                .group_by(Reservation.site_id, Reservation.drug_id, Reservation.cause_type),
                Reservation.site_id, Reservation.drug_id)):
            facts[(site_id, drug_id)][held_as[cause_type]] = int(units)
        incoming: dict[Key, list[Incoming]] = defaultdict(list)
        for line, order in uow.session.execute(only(
                select(PurchaseOrderLine, PurchaseOrder).join(PurchaseOrder,
                                                              PurchaseOrder.id == PurchaseOrderLine.order_id)
                .where(PurchaseOrder.status.in_(sorted(OPEN_PURCHASE_ORDER_STATUSES)),
                       PurchaseOrderLine.received_units < PurchaseOrderLine.units)
                .order_by(PurchaseOrderLine.id), PurchaseOrderLine.site_id, PurchaseOrderLine.drug_id)):
            incoming[(line.site_id, line.drug_id)].append(Incoming(
                "purchase_order", order.id, order.number, line.units - line.received_units,
                line.expected_on or today, source=f"P{line.id}"))
        for parcel, order in uow.session.execute(only(
                select(TransferParcel, TransferOrder).join(TransferOrder, TransferOrder.id == TransferParcel.order_id)
                .where(TransferOrder.status.in_([TransferStatus.SHIPPED.value,
                                                 TransferStatus.PARTIALLY_RECEIVED.value]),
                       TransferParcel.received + TransferParcel.lost < TransferParcel.shipped)
                .order_by(TransferParcel.id), TransferOrder.to_site_id, TransferParcel.drug_id)):
            incoming[(order.to_site_id, parcel.drug_id)].append(Incoming(
                "in_transit", order.id, order.number, parcel.shipped - parcel.received - parcel.lost, today,
                order.from_site_id, parcel.expiry_date, f"S{parcel.id}"))
        # Asked for and not yet shipped: the units held for the order at the sender, lot by lot.
        for reservation, lot, order in uow.session.execute(only(
                select(Reservation, Lot, TransferOrder).join(Lot, Lot.id == Reservation.lot_id)
                .join(TransferOrder, TransferOrder.id == Reservation.transfer_order_id)
                .where(Reservation.status == "held", TransferOrder.status == TransferStatus.REQUESTED.value)
                .order_by(Reservation.id), TransferOrder.to_site_id, Reservation.drug_id)):
            incoming[(order.to_site_id, reservation.drug_id)].append(Incoming(
                "transfer_requested", order.id, order.number, reservation.quantity,
                today + timedelta(days=TRANSFER_DAYS), order.from_site_id, lot.expiry_date, f"H{reservation.id}"))
        # Awaiting their stock at the sender: promised there, expected here a day after the sender's stock comes.
        promised: dict[Key, int] = defaultdict(int)
        awaiting = list(uow.session.execute(only(
            select(TransferOrderLine, TransferOrder).join(TransferOrder, TransferOrder.id == TransferOrderLine.order_id)
            .where(TransferOrder.status == TransferStatus.AWAITING_STOCK.value).order_by(TransferOrderLine.id),
            TransferOrder.to_site_id, TransferOrderLine.drug_id)))
        awaiting_out = uow.session.execute(only(
            select(TransferOrderLine, TransferOrder).join(TransferOrder, TransferOrder.id == TransferOrderLine.order_id)
            .where(TransferOrder.status == TransferStatus.AWAITING_STOCK.value), TransferOrder.from_site_id,
            TransferOrderLine.drug_id))
        for line, order in awaiting_out:
            promised[(order.from_site_id, line.drug_id)] += line.quantity
        for line, order in awaiting:
            coming = [i.expected_on for i in incoming.get((order.from_site_id, line.drug_id), [])]
            incoming[(order.to_site_id, line.drug_id)].append(Incoming(
                "transfer_awaiting", order.id, order.number, line.quantity,
                min(coming, default=today) + timedelta(days=TRANSFER_DAYS), order.from_site_id, None, f"A{line.id}"))
        return {key: Position(key[0], key[1], **facts.get(key, {}),  # type: ignore[arg-type]
                              incoming=tuple(sorted(incoming.get(key, ()), key=lambda i: (i.expected_on, i.order_id))),
                              promised_out=promised.get(key, 0))
                for key in sorted(set(facts) | set(incoming) | set(promised))}
