"""What the officer's pages read: a plan's lines by kind, filtered, sorted and paged with the names people know
(drugs, sites, suppliers, lots); purchase and transfer orders with what is outstanding and late; and where the
consortium's stock stands. Read only: nothing here writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from pharmacy.catalog.models import Drug
from pharmacy.clock import CONSORTIUM_TIMEZONE
from pharmacy.consortium.models import Site
from pharmacy.inventory.domain import CauseType, MovementKind
from pharmacy.inventory.models import Lot, Movement
from pharmacy.pagination import Page, PageRequest
from pharmacy.procurement.domain import OPEN_PURCHASE_ORDER_STATUSES, OPEN_TRANSFER_STATUSES, is_late
from pharmacy.procurement.models import (
    Offer,
    PlanLine,
    PlanRun,
    PurchaseOrder,
    PurchaseOrderLine,
    Supplier,
    TransferOrder,
    TransferOrderLine,
    TransferParcel,
)
from pharmacy.procurement.position import TRANSFER_DAYS, positions
from pharmacy.unit_of_work import UnitOfWork

# Plans ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanLineView:
    """A plan line as the plan page shows it: names, not ids (the ids stay for editing)."""

    id: int
    kind: str
    drug_id: int
    drug_code: str
    drug_name: str
    site_id: int
    site: str  # where the stock goes
    supplier: str | None
    from_site: str | None
    lot_id: int | None
    lot_number: str | None
    offer_id: int | None
    packs: int | None
    units: int
    price_per_pack: Decimal | None
    cost: Decimal
    why: str
    edited: bool
    reasons: tuple[dict[str, Any], ...] = ()  # the why as codes and figures (optimizer.plan.Reason)


PLAN_SORTS = {"drug": Drug.code, "site": Site.name, "packs": PlanLine.packs, "units": PlanLine.units,
              "cost": PlanLine.cost}


@dataclass(frozen=True)
class PlanLineFilter:
    kind: str = "purchase"
    site_id: int | None = None
    drug_id: int | None = None
    supplier_id: int | None = None
    sort: str = "-cost"


def _plan_lines(run_id: int, chosen: PlanLineFilter) -> Any:
    origin, supplier = aliased(Site), aliased(Supplier)
    stmt = (select(PlanLine, Drug.code, Drug.generic_name, Site.name, supplier.name, origin.name, Lot.lot_number)
            .join(Drug, Drug.id == PlanLine.drug_id).join(Site, Site.id == PlanLine.site_id)
            .outerjoin(supplier, supplier.id == PlanLine.supplier_id)
            .outerjoin(origin, origin.id == PlanLine.from_site_id)
            .outerjoin(Lot, Lot.id == PlanLine.lot_id)
            .where(PlanLine.run_id == run_id, PlanLine.kind == chosen.kind))
    if chosen.site_id is not None:
        stmt = stmt.where((PlanLine.site_id == chosen.site_id) | (PlanLine.from_site_id == chosen.site_id))
    if chosen.drug_id is not None:
        stmt = stmt.where(PlanLine.drug_id == chosen.drug_id)
    if chosen.supplier_id is not None:
        stmt = stmt.where(PlanLine.supplier_id == chosen.supplier_id)
    column = PLAN_SORTS.get(chosen.sort.lstrip("-"), PlanLine.cost)
    order = column.desc() if chosen.sort.startswith("-") else column.asc()
    return stmt.order_by(order, PlanLine.id)


def _line_view(row: Any) -> PlanLineView:
    line, code, name, site, supplier, origin, lot_number = row
    return PlanLineView(line.id, line.kind, line.drug_id, code, name, line.site_id, site, supplier, origin,
                        line.lot_id, lot_number, line.offer_id, line.packs, round(line.units), line.price_per_pack,
                        line.cost, line.why, line.edited, tuple(line.reasons or ()))


def plan_line_page(uow: UnitOfWork, run_id: int, chosen: PlanLineFilter, page: PageRequest | None,
                   ) -> Page[PlanLineView]:
    """One page of a plan's lines of a kind (every line without a page: an export), filtered by site (either
    end of a transfer), drug and supplier, sorted by drug, site, packs, units or cost (``-`` descending)."""
    with uow:
        uow.get(PlanRun, run_id, what="plan run")
        stmt = _plan_lines(run_id, chosen)
        total = uow.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        if page is not None:
            stmt = stmt.limit(page.page_size).offset((page.page - 1) * page.page_size)
        return Page([_line_view(row) for row in uow.session.execute(stmt)], total)


@dataclass(frozen=True)
class PlanChoices:
    """What a plan's lines can be filtered by: the sites, drugs and suppliers they name, and how many of each
    kind there are."""

    sites: list[tuple[int, str]]
    drugs: list[tuple[int, str]]
    suppliers: list[tuple[int, str]]
    counts: dict[str, int]


def plan_choices(uow: UnitOfWork, run_id: int) -> PlanChoices:
    with uow:
        lines = select(PlanLine).where(PlanLine.run_id == run_id).subquery()
        site_ids = select(lines.c.site_id).union(select(lines.c.from_site_id).where(lines.c.from_site_id.is_not(None)))
        sites = [(i, n) for i, n in uow.session.execute(
            select(Site.id, Site.name).where(Site.id.in_(site_ids)).order_by(Site.code))]
        drugs = [(i, f"{c} {n}") for i, c, n in uow.session.execute(
            select(Drug.id, Drug.code, Drug.generic_name).where(Drug.id.in_(select(lines.c.drug_id)))
            .order_by(Drug.code))]
        suppliers = [(i, n) for i, n in uow.session.execute(
            select(Supplier.id, Supplier.name).where(Supplier.id.in_(select(lines.c.supplier_id)))
            .order_by(Supplier.code))]
        counts: dict[str, int] = {k: int(v) for k, v in uow.session.execute(
            select(lines.c.kind, func.count()).group_by(lines.c.kind))}
        return PlanChoices(sites, drugs, suppliers, counts)


# Orders --------------------------------------------------------------------------------------------------

def _local_day(at: Any) -> date:
    return at.astimezone(CONSORTIUM_TIMEZONE).date()


@dataclass(frozen=True)
class OrderRow:
    """A purchase or transfer order in a list: who, what is still to come, and whether it is late."""

    kind: str  # purchase | transfer
    id: int
    number: str
    status: str
    party: str  # the supplier, or the sending site
    to: str  # the sites it delivers to
    created_at: Any
    created_by: str
    lines: int
    units: int
    outstanding: int
    expected_on: date | None  # the earliest day of what is still to come
    late: bool
    total: Decimal | None


@dataclass(frozen=True)
class OrderFilter:
    kind: str = "purchase"
    status: str | None = None
    supplier_id: int | None = None
    site_id: int | None = None
    late: bool = False
    run_id: int | None = None  # the plan run it was approved from


def order_rows(uow: UnitOfWork, chosen: OrderFilter, page: PageRequest | None) -> Page[OrderRow]:
    """Purchase or transfer orders, newest first, filtered by status, supplier, site (delivered to, or either end
    of a transfer) and lateness, each with what is still to come and when. Without a page: every one (an
    export)."""
    with uow:
        rows = _purchase_rows(uow, chosen) if chosen.kind == "purchase" else _transfer_rows(uow, chosen)
        if chosen.late:
            rows = [r for r in rows if r.late]
        if page is None:
            return Page(rows, len(rows))
        start = (page.page - 1) * page.page_size
        return Page(rows[start:start + page.page_size], len(rows))


def _purchase_rows(uow: UnitOfWork, chosen: OrderFilter) -> list[OrderRow]:
    today = uow.today()
    stmt = select(PurchaseOrder, Supplier.name).join(Supplier, Supplier.id == PurchaseOrder.supplier_id)
    if chosen.status:
        stmt = stmt.where(PurchaseOrder.status == chosen.status)
    if chosen.supplier_id is not None:
        stmt = stmt.where(PurchaseOrder.supplier_id == chosen.supplier_id)
    if chosen.run_id is not None:
        stmt = stmt.where(PurchaseOrder.run_id == chosen.run_id)
    if chosen.site_id is not None:
        stmt = stmt.where(PurchaseOrder.id.in_(select(PurchaseOrderLine.order_id)
                                               .where(PurchaseOrderLine.site_id == chosen.site_id)))
    orders = uow.session.execute(stmt.order_by(PurchaseOrder.id.desc())).all()
    lines: dict[int, list[tuple[PurchaseOrderLine, str]]] = defaultdict(list)
    for line, site in uow.session.execute(
            select(PurchaseOrderLine, Site.name).join(Site, Site.id == PurchaseOrderLine.site_id)
            .where(PurchaseOrderLine.order_id.in_([o.id for o, _ in orders])).order_by(Site.code)):
        lines[line.order_id].append((line, site))
    rows = []
    for order, supplier in orders:
        mine = lines[order.id]
        open_order = order.status in OPEN_PURCHASE_ORDER_STATUSES
        waiting = [line for line, _ in mine if open_order and line.received_units < line.units]
        expected = min((line.expected_on for line in waiting if line.expected_on), default=None)
        rows.append(OrderRow(
            "purchase", order.id, order.number, order.status, supplier, "、".join(dict.fromkeys(s for _, s in mine)),
            order.created_at, order.created_by, len(mine), sum(line.units for line, _ in mine),
            sum(line.units - line.received_units for line in waiting), expected,
            any(is_late(line.expected_on, line.units - line.received_units, today) for line in waiting), order.total))
    return rows


def transfer_expected_on(order: TransferOrder) -> date:
    """When a transfer is expected to arrive: the day after it was asked for (as positions count it)."""
    return _local_day(order.created_at) + timedelta(days=TRANSFER_DAYS)


def _transfer_rows(uow: UnitOfWork, chosen: OrderFilter) -> list[OrderRow]:
    today = uow.today()
    origin, target = aliased(Site), aliased(Site)
    stmt = (select(TransferOrder, origin.name, target.name).join(origin, origin.id == TransferOrder.from_site_id)
            .join(target, target.id == TransferOrder.to_site_id))
    if chosen.status:
        stmt = stmt.where(TransferOrder.status == chosen.status)
    if chosen.site_id is not None:
        stmt = stmt.where((TransferOrder.from_site_id == chosen.site_id) | (TransferOrder.to_site_id == chosen.site_id))
    if chosen.run_id is not None:
        stmt = stmt.where(TransferOrder.run_id == chosen.run_id)
    orders = uow.session.execute(stmt.order_by(TransferOrder.id.desc())).all()
    ids = [o.id for o, _, _ in orders]
    asked: dict[int, tuple[int, int]] = {i: (int(n), int(u)) for i, n, u in uow.session.execute(
        select(TransferOrderLine.order_id, func.count(), func.sum(TransferOrderLine.quantity))
        .where(TransferOrderLine.order_id.in_(ids)).group_by(TransferOrderLine.order_id))}
    arrived: dict[int, int] = {i: int(u) for i, u in uow.session.execute(
        select(TransferParcel.order_id, func.sum(TransferParcel.received + TransferParcel.lost))
        .where(TransferParcel.order_id.in_(ids)).group_by(TransferParcel.order_id))}
    rows = []
    for order, sender, receiver in orders:
        count, units = asked.get(order.id, (0, 0))
        outstanding = max(units - arrived.get(order.id, 0), 0) if order.status in OPEN_TRANSFER_STATUSES else 0
        expected = transfer_expected_on(order) if outstanding else None
        rows.append(OrderRow("transfer", order.id, order.number, order.status, sender, receiver, order.created_at,
                             order.created_by, count, units, outstanding, expected,
                             is_late(expected, outstanding, today), None))
    return rows


@dataclass(frozen=True)
class PurchaseLineView:
    line: PurchaseOrderLine
    site: str
    drug_code: str
    drug_name: str
    outstanding: int
    late: bool


@dataclass(frozen=True)
class Receipt:
    """Goods received against an order: a receipt movement, its lot and who booked it."""

    at: Any
    site: str
    drug_code: str
    drug_name: str
    lot_number: str
    expiry_date: date
    units: int
    actor: str


@dataclass(frozen=True)
class PurchaseOrderView:
    order: PurchaseOrder
    supplier: Supplier
    lines: list[PurchaseLineView]
    receipts: list[Receipt]

    @property
    def outstanding(self) -> int:
        return sum(line.outstanding for line in self.lines)

    @property
    def late(self) -> bool:
        return any(line.late for line in self.lines)


def purchase_order_view(uow: UnitOfWork, order_id: int) -> PurchaseOrderView:
    """A purchase order with its lines (what is still to come and whether it is late) and its receipts."""
    with uow:
        today = uow.today()
        order = uow.get(PurchaseOrder, order_id, what="purchase order")
        supplier = uow.get(Supplier, order.supplier_id, what="supplier")
        open_order = order.status in OPEN_PURCHASE_ORDER_STATUSES
        lines = []
        for line, site, code, name in uow.session.execute(
                select(PurchaseOrderLine, Site.name, Drug.code, Drug.generic_name)
                .join(Site, Site.id == PurchaseOrderLine.site_id).join(Drug, Drug.id == PurchaseOrderLine.drug_id)
                .where(PurchaseOrderLine.order_id == order.id).order_by(Site.code, Drug.code)):
            outstanding = line.units - line.received_units if open_order else 0
            lines.append(PurchaseLineView(line, site, code, name, outstanding,
                                          is_late(line.expected_on, outstanding, today)))
        receipts = [Receipt(m.at, site, code, name, lot, expiry, m.quantity, m.actor)
                    for m, site, code, name, lot, expiry in uow.session.execute(
                        select(Movement, Site.name, Drug.code, Drug.generic_name, Lot.lot_number, Lot.expiry_date)
                        .join(Site, Site.id == Movement.site_id).join(Drug, Drug.id == Movement.drug_id)
                        .join(Lot, Lot.id == Movement.lot_id)
                        .where(Movement.cause_type == CauseType.PURCHASE_ORDER.value,
                               Movement.cause_id == str(order.id), Movement.kind == MovementKind.RECEIPT.value)
                        .order_by(Movement.at, Movement.id))]
        return PurchaseOrderView(order, supplier, lines, receipts)


@dataclass(frozen=True)
class TransferLineView:
    line: TransferOrderLine
    drug_code: str
    drug_name: str
    lot_number: str | None
    shipped: int
    received: int
    lost: int
    outstanding: int


@dataclass(frozen=True)
class TransferOrderView:
    order: TransferOrder
    sender: Site
    receiver: Site
    lines: list[TransferLineView]
    parcels: list[tuple[TransferParcel, str]]  # each with its drug code
    expected_on: date | None
    late: bool

    @property
    def outstanding(self) -> int:
        return sum(line.outstanding for line in self.lines)


def transfer_order_view(uow: UnitOfWork, order_id: int) -> TransferOrderView:
    """A transfer order with its lines (asked, shipped, received, lost in transit, still to come), its parcels
    and whether it is late against the day it was expected."""
    with uow:
        order = uow.get(TransferOrder, order_id, what="transfer order")
        sender = uow.get(Site, order.from_site_id, what="site")
        receiver = uow.get(Site, order.to_site_id, what="site")
        parcels = [(parcel, code) for parcel, code in uow.session.execute(
            select(TransferParcel, Drug.code).join(Drug, Drug.id == TransferParcel.drug_id)
            .where(TransferParcel.order_id == order.id).order_by(TransferParcel.id))]
        by_line: dict[int, list[TransferParcel]] = defaultdict(list)
        for parcel, _ in parcels:
            by_line[parcel.line_id].append(parcel)
        open_order = order.status in OPEN_TRANSFER_STATUSES
        lines = []
        for line, code, name, lot_number in uow.session.execute(
                select(TransferOrderLine, Drug.code, Drug.generic_name, Lot.lot_number)
                .join(Drug, Drug.id == TransferOrderLine.drug_id).outerjoin(Lot, Lot.id == TransferOrderLine.lot_id)
                .where(TransferOrderLine.order_id == order.id).order_by(TransferOrderLine.id)):
            mine = by_line[line.id]
            shipped, received, lost = (sum(p.shipped for p in mine), sum(p.received for p in mine),
                                       sum(p.lost for p in mine))
            outstanding = max(line.quantity - received - lost, 0) if open_order else 0
            lines.append(TransferLineView(line, code, name, lot_number, shipped, received, lost, outstanding))
        outstanding = sum(line.outstanding for line in lines)
        expected = transfer_expected_on(order) if outstanding else None
        return TransferOrderView(order, sender, receiver, lines, parcels, expected,
                                 is_late(expected, outstanding, uow.today()))


# Stock across the consortium -----------------------------------------------------------------------------

@dataclass(frozen=True)
class StockRow:
    site_id: int
    site: str
    drug_id: int
    drug_code: str
    drug_name: str
    on_hand: int
    held: int
    available: int
    on_order: int
    in_transit: int
    position: int
    near_expiry: int  # of on hand, in lots expiring within the near-expiry window (still usable)
    expired: int


def stock_rows(uow: UnitOfWork, *, site_id: int | None = None, drug_id: int | None = None,
               near_expiry_days: int = 90, page: PageRequest | None = None) -> Page[StockRow]:
    """Where stock stands per site and drug (the inventory position, with what is near expiry), by site and drug
    code; a pharmacist's own site's. Without a page: every row (an export)."""
    with uow:
        if uow.principal.site_bound:
            site_id = uow.principal.site_id
        found = positions(uow, site_ids=[site_id] if site_id is not None else None,
                          drug_ids=[drug_id] if drug_id is not None else None)
        sites = dict(uow.session.execute(select(Site.id, Site.name)).all())
        codes = dict(uow.session.execute(select(Site.id, Site.code)).all())
        drugs = {i: (c, n) for i, c, n in uow.session.execute(
            select(Drug.id, Drug.code, Drug.generic_name).where(Drug.id.in_(sorted({d for _, d in found}))))}
        today = uow.today()
        near: dict[tuple[int, int], int] = {(s, d): int(q) for s, d, q in uow.session.execute(
            select(Lot.site_id, Lot.drug_id, func.sum(Lot.quantity))
            .where(Lot.quantity > 0, Lot.usable_on(today),
                   Lot.expiry_date <= today + timedelta(days=near_expiry_days))
            .group_by(Lot.site_id, Lot.drug_id))}
        rows = [StockRow(p.site_id, sites.get(p.site_id, ""), p.drug_id, *drugs.get(p.drug_id, ("", "")),
                         p.on_hand, p.held, p.available, p.on_order, p.in_transit, p.position,
                         near.get((p.site_id, p.drug_id), 0), p.expired)
                for p in found.values()]
        rows.sort(key=lambda r: (codes.get(r.site_id, ""), r.drug_code))
        if page is None:
            return Page(rows, len(rows))
        start = (page.page - 1) * page.page_size
        return Page(rows[start:start + page.page_size], len(rows))


@dataclass(frozen=True)
class ReasonNames:
    """The names people know for what plan reasons name by id: sites by code, lots (``L<id>``) by lot number,
    offers (``O<id>``) by their supplier."""

    sites: dict[str, str]
    lots: dict[str, str]
    offers: dict[str, str]


REASON_SITE_FACTS = ("site", "origin", "lot_site")


def reason_names(uow: UnitOfWork, reasons: Iterable[Iterable[Mapping[str, Any]]]) -> ReasonNames:
    """The names for every site, lot and offer the given lines' reasons name, in three queries at most."""
    lot_ids: set[int] = set()
    offer_ids: set[int] = set()
    for line in reasons:
        for reason in line:
            facts = reason.get("facts", {})
            for key, prefix, found in (("lot", "L", lot_ids), ("offer", "O", offer_ids)):
                named = str(facts.get(key, ""))
                if named.startswith(prefix) and named[1:].isdigit():
                    found.add(int(named[1:]))
    with uow:
        sites = dict(uow.session.execute(select(Site.code, Site.name)).all())
        lots = {f"L{i}": n for i, n in uow.session.execute(
            select(Lot.id, Lot.lot_number).where(Lot.id.in_(lot_ids))).all()} if lot_ids else {}
        offers = {f"O{i}": n for i, n in uow.session.execute(
            select(Offer.id, Supplier.name).join(Supplier, Supplier.id == Offer.supplier_id)
            .where(Offer.id.in_(offer_ids))).all()} if offer_ids else {}
    return ReasonNames(sites, lots, offers)
