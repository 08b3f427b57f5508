"""Use cases of procurement: suppliers and offers, demand forecasts, purchase-order receipts, transfer orders,
and alerts. Plan runs are in :mod:`pharmacy.procurement.plan_runs`."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select

from pharmacy import audit
from pharmacy.catalog.models import Drug
from pharmacy.clock import local, local_text
from pharmacy.consortium.models import Site
from pharmacy.csv_import import read_csv
from pharmacy.errors import Conflict, DomainError, Message, NotFound, ValidationFailed
from pharmacy.events import StockArrived
from pharmacy.inventory.domain import TRANSIT_LOSS_REASONS, CauseType, MovementKind, expiry_band, usable_on
from pharmacy.inventory.models import Lot, Movement, Reservation
from pharmacy.inventory.services import (
    Cause,
    book_transit_loss,
    hold_stock,
    lock_stock,
    receive_stock,
    release_stock,
    send_stock,
)
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.prescriptions.domain import OPEN_STATUSES, Status
from pharmacy.prescriptions.models import Prescription, PrescriptionItem
from pharmacy.procurement.domain import (
    OPEN_PURCHASE_ORDER_STATUSES,
    OPEN_TRANSFER_STATUSES,
    Forecast,
    alert_step,
    base_unit_price,
    check_transfer_action,
    forecast,
    installments_due,
    money,
    price,
    received_status,
    tier_price,
)
from pharmacy.procurement.models import (
    Alert,
    Offer,
    OfferDeliveryCost,
    OfferTier,
    PurchaseOrder,
    PurchaseOrderLine,
    Supplier,
    TransferOrder,
    TransferOrderLine,
    TransferParcel,
)
from pharmacy.procurement.orders import order_number, request_transfer, transfer_cause
from pharmacy.procurement.position import Position, positions
from pharmacy.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
LOCAL = ZoneInfo("Asia/Shanghai")

# Suppliers and offers -----------------------------------------------------------------------------------


def create_supplier(uow: UnitOfWork, code: str, name: str) -> Supplier:
    """Register a distribution company; its code is unique in the consortium."""
    with uow:
        if uow.session.scalars(select(Supplier).where(Supplier.code == code)).first():
            raise Conflict(Message("supplier %(code)s exists already", code=code), {"code": code})
        supplier = Supplier(consortium_id=uow.principal.consortium_id, code=code, name=name, active=True,
                            created_at=uow.now())
        uow.session.add(supplier)
        uow.commit()
        return supplier


def update_supplier(uow: UnitOfWork, supplier_id: int, changes: Mapping[str, Any]) -> Supplier:
    """Rename a supplier, or stop buying from it (``active`` false) and take it up again."""
    with uow:
        supplier = uow.get(Supplier, supplier_id, what="supplier")
        for name, value in changes.items():
            setattr(supplier, name, value)
        uow.commit()
        return supplier


def list_suppliers(uow: UnitOfWork, page: PageRequest) -> Page[Supplier]:
    with uow:
        return fetch_page(uow.session, select(Supplier).order_by(Supplier.code), page)


def _site_ids_by_code(uow: UnitOfWork, codes: Sequence[str]) -> dict[str, int]:
    return dict(uow.session.execute(select(Site.code, Site.id).where(Site.code.in_(list(codes)))).all())


def _offer_values(uow: UnitOfWork, data: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check an offer's references and turn delivery costs by site code into costs by site id."""
    drug = uow.session.get(Drug, data["drug_id"])
    if drug is None or drug.consortium_id != uow.principal.consortium_id:
        raise NotFound(Message("%(where)s: drug %(id)s not found", where=Message.word(where), id=data["drug_id"]))
    if not drug.active:
        raise ValidationFailed(Message("%(where)s: drug %(drug)s is retired", where=Message.word(where),
                                       drug=drug.code), {"drug_id": data["drug_id"]})
    costs: Mapping[str, Decimal] = data.get("delivery_costs") or {}
    ids = _site_ids_by_code(uow, list(costs))
    unknown = sorted(set(costs) - set(ids))
    if unknown:
        raise ValidationFailed(Message("%(where)s: no site with code %(codes)s", where=Message.word(where),
                                       codes=unknown), {"delivery_costs": unknown})
    return _offer_rows({**data, "delivery_costs": {ids[code]: cost for code, cost in costs.items()}})


def _offer_rows(values: Mapping[str, Any]) -> dict[str, Any]:
    """An offer's values as its columns and rows: price tiers and per-site delivery costs as their own rows,
    every amount a Decimal."""
    rows = {k: v for k, v in values.items() if k not in ("tiers", "delivery_costs")}
    rows["order_cost"] = money(values.get("order_cost") or 0)
    if values.get("default_delivery_cost") is not None:
        rows["default_delivery_cost"] = price(values["default_delivery_cost"])
    rows["tiers"] = [OfferTier(min_packs=int(t["min_packs"]), price_per_pack=price(t["price_per_pack"]))
                     for t in values["tiers"]]
    rows["site_delivery"] = [OfferDeliveryCost(site_id=int(site_id), cost_per_pack=price(cost))
                             for site_id, cost in sorted((values.get("delivery_costs") or {}).items())]
    return rows


def _same_terms(offer: Offer, rows: Mapping[str, Any]) -> bool:
    """Whether an offer already has these terms (an import of the same file changes nothing)."""
    def tiers(items: Sequence[OfferTier]) -> list[tuple[int, Decimal]]:
        return [(t.min_packs, price(t.price_per_pack)) for t in items]

    def costs(items: Sequence[OfferDeliveryCost]) -> list[tuple[int, Decimal]]:
        return sorted((d.site_id, price(d.cost_per_pack)) for d in items)

    plain = {k: v for k, v in rows.items() if k not in ("tiers", "site_delivery")}
    return (all(getattr(offer, k) == v for k, v in plain.items()) and tiers(offer.tiers) == tiers(rows["tiers"])
            and costs(offer.site_delivery) == costs(rows["site_delivery"]))


def create_offer(uow: UnitOfWork, data: Mapping[str, Any]) -> Offer:
    """Record a supplier's price list for a drug (tiers, minimum order, capacity, lead time, delivery)."""
    with uow:
        uow.get(Supplier, data["supplier_id"], what="supplier")
        values = _offer_values(uow, data, "offer")
        offer = Offer(consortium_id=uow.principal.consortium_id, **values)
        uow.session.add(offer)
        try:
            uow.flush()
        except Exception as error:
            if "uq_offers" in str(error) or "UNIQUE" in str(error).upper():
                raise Conflict(Message("this supplier already has an offer for this drug from that date"),
                               {"valid_from": str(data["valid_from"])}) from None
            raise
        uow.commit()
        return offer


def update_offer(uow: UnitOfWork, offer_id: int, data: Mapping[str, Any]) -> Offer:
    """Change an offer's terms (pack size, tiers, lead time, capacity, costs, delivery, validity); its supplier,
    drug and start date say which offer it is and stay. Orders already placed keep the prices they were placed at."""
    with uow:
        offer = uow.get(Offer, offer_id, for_update=True, what="offer")
        values = _offer_values(uow, {**data, "drug_id": offer.drug_id}, "offer")
        values.pop("drug_id", None)
        values.pop("supplier_id", None)
        values.pop("valid_from", None)
        if data.get("valid_until") is not None and data["valid_until"] < offer.valid_from:
            raise ValidationFailed(Message("the offer ends before it starts"),
                                   {"valid_until": str(data["valid_until"])})
        before = _terms_said(offer)  # read before the rows are replaced
        values.setdefault("default_delivery_cost", None)
        # The old price and delivery rows go first: a new row for the same tier or site would collide with them.
        offer.tiers.clear()
        offer.site_delivery.clear()
        uow.flush()
        for name, value in values.items():
            setattr(offer, name, value)
        uow.flush()
        after = _terms_said(offer)
        if after != before:
            audit.record(uow.session, "edit", "Offer", offer.id, f"terms: {before} -> {after}")
        uow.commit()
        return offer


def _terms_said(offer: Offer) -> str:
    """An offer's prices and delivery costs in a line, for the audit trail (they are rows of their own)."""
    tiers = ";".join(f"{t.min_packs}:{t.price_per_pack}" for t in offer.tiers)
    costs = ";".join(f"{d.site_id}:{d.cost_per_pack}" for d in offer.site_delivery)
    return f"tiers {tiers}" + (f", delivery {costs}" if costs else "")


def retire_offer(uow: UnitOfWork, offer_id: int, active: bool = False) -> Offer:
    """Stop buying on an offer (plans and orders no longer use it; it stays on record), or take it up again."""
    with uow:
        offer = uow.get(Offer, offer_id, for_update=True, what="offer")
        offer.active = active
        uow.commit()
        return offer


def get_offer(uow: UnitOfWork, offer_id: int) -> Offer:
    with uow:
        return uow.get(Offer, offer_id, what="offer")


def list_offers(uow: UnitOfWork, page: PageRequest, *, drug_id: int | None = None, supplier_id: int | None = None,
                valid_on: date | None = None, active: bool | None = None) -> Page[Offer]:
    with uow:
        stmt = select(Offer).order_by(Offer.drug_id, Offer.supplier_id, Offer.valid_from)
        if active is not None:
            stmt = stmt.where(Offer.active.is_(active))
        if drug_id is not None:
            stmt = stmt.where(Offer.drug_id == drug_id)
        if supplier_id is not None:
            stmt = stmt.where(Offer.supplier_id == supplier_id)
        if valid_on is not None:
            stmt = stmt.where(Offer.valid_from <= valid_on, Offer.valid_until >= valid_on)
        return fetch_page(uow.session, stmt, page)


OFFER_CSV_COLUMNS = ["supplier_code", "supplier_name", "drug_code", "pack_size", "tiers", "lead_time_days",
                     "capacity_packs", "order_cost", "default_delivery_cost", "delivery_costs", "valid_from",
                     "valid_until"]


def import_offers_csv(uow: UnitOfWork, text: str) -> dict[str, int]:
    """Import offers from CSV: all rows or none, every bad row reported with its line, column and reason.

    A row names its supplier by code (created, with ``supplier_name``, if new) and its drug by consortium
    code; tiers read ``0:12.50;100:11.80``, delivery costs ``SITE-CODE:0.5;...``. A row for a supplier,
    drug and start date already on file replaces that offer, so importing a file again changes nothing.
    """
    from pharmacy.procurement.schemas import OfferCsvRowSchema

    required = [name for name, f in OfferCsvRowSchema().fields.items() if f.required]
    rows = read_csv(text, OFFER_CSV_COLUMNS, required, OfferCsvRowSchema(),
                    key=lambda v: (v["supplier_code"], v["drug_code"], v["valid_from"]), key_column="valid_from")
    with uow:
        drugs = dict(uow.session.execute(select(Drug.code, Drug).where(
            Drug.code.in_([v["drug_code"] for _, v in rows]))).all())
        site_codes = sorted({code for _, v in rows for code in (v["delivery_costs"] or {})})
        sites = _site_ids_by_code(uow, site_codes)
        errors = []
        for line, values in rows:
            drug = drugs.get(values["drug_code"])
            if drug is None:
                errors.append({"line": line, "column": "drug_code",
                               "reason": Message("no drug %(code)s", code=values["drug_code"])})
            elif not drug.active:
                errors.append({"line": line, "column": "drug_code",
                               "reason": Message("drug %(code)s is retired", code=drug.code)})
            for code in sorted(set(values["delivery_costs"] or {}) - set(sites)):
                errors.append({"line": line, "column": "delivery_costs",
                               "reason": Message("no site with code %(codes)s", codes=code)})
        if errors:
            raise ValidationFailed(Message("%(count)s problems in the CSV; nothing was imported", count=len(errors)),
                                   errors)
        suppliers = {s.code: s for s in uow.session.scalars(select(Supplier))}
        created = updated = unchanged = 0
        for _, values in rows:
            supplier = suppliers.get(values["supplier_code"])
            if supplier is None:
                supplier = Supplier(consortium_id=uow.principal.consortium_id, code=values["supplier_code"],
                                    name=values["supplier_name"] or values["supplier_code"], active=True,
                                    created_at=uow.now())
                uow.session.add(supplier)
                uow.session.flush()
                suppliers[supplier.code] = supplier
            drug = drugs[values["drug_code"]]
            fields = _offer_rows({
                "pack_size": values["pack_size"], "tiers": values["tiers"],
                "lead_time_days": values["lead_time_days"] or 0, "capacity_packs": values["capacity_packs"],
                "order_cost": values["order_cost"] or 0, "default_delivery_cost": values["default_delivery_cost"],
                "delivery_costs": {sites[c]: v for c, v in (values["delivery_costs"] or {}).items()},
                "valid_until": values["valid_until"]})
            offer = uow.session.scalars(select(Offer).where(
                Offer.supplier_id == supplier.id, Offer.drug_id == drug.id,
                Offer.valid_from == values["valid_from"])).first()
            if offer is None:
                uow.session.add(Offer(consortium_id=uow.principal.consortium_id, supplier_id=supplier.id,
                                      drug_id=drug.id, valid_from=values["valid_from"], **fields))
                created += 1
            elif not _same_terms(offer, fields):
                fields.setdefault("default_delivery_cost", None)
                for k, v in fields.items():
                    setattr(offer, k, v)
                updated += 1
            else:
                unchanged += 1
        result = {"created": created, "updated": updated, "unchanged": unchanged}
        if created or updated:
            audit.record(uow.session, "import", "Offer", "csv", f"offer import: {created} created, {updated} updated")
        uow.commit()
        return result


def valid_offers(uow: UnitOfWork, on: date) -> list[tuple[Offer, Supplier]]:
    """Offers of active suppliers valid on a date; when a supplier has several for a drug, the latest start."""
    rows = uow.session.execute(
        select(Offer, Supplier).join(Supplier, Supplier.id == Offer.supplier_id)
        .where(Supplier.active.is_(True), Offer.active.is_(True), Offer.valid_from <= on, Offer.valid_until >= on)
        .order_by(Offer.supplier_id, Offer.drug_id, Offer.valid_from.desc())).all()
    latest: dict[tuple[int, int], tuple[Offer, Supplier]] = {}
    for offer, supplier in rows:
        latest.setdefault((offer.supplier_id, offer.drug_id), (offer, supplier))
    return list(latest.values())


def cheapest_unit_prices(offers: Iterable[tuple[Offer, Supplier]]) -> dict[int, float]:
    """Per drug, the lowest base-tier price of a dispensing unit among ``offers``: what a unit of stock is
    worth when it is wasted, and what a shortage is priced from."""
    prices: dict[int, float] = {}
    for offer, _ in offers:
        price = base_unit_price(offer.tiers, offer.pack_size)
        prices[offer.drug_id] = min(prices.get(offer.drug_id, price), price)
    return prices


# Forecasts ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SiteForecast:
    site_id: int
    drug_id: int
    forecast: Forecast


def _local_day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=LOCAL)


def dispensed_by_day(uow: UnitOfWork, since: date, until: date) -> dict[tuple[int, int], dict[date, int]]:
    """Units dispensed per (site, drug) per local day, from the ledger (reversals of dispenses included)."""
    rows = uow.session.execute(
        select(Movement.site_id, Movement.drug_id, Movement.at, Movement.quantity, Movement.kind)
        .where(Movement.kind.in_([MovementKind.DISPENSE.value, MovementKind.REVERSAL.value]),
               Movement.cause_type == CauseType.PRESCRIPTION.value,
               Movement.at >= _local_day_start(since), Movement.at < _local_day_start(until))).all()
    days: dict[tuple[int, int], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for site_id, drug_id, at, quantity, _kind in rows:
        days[(site_id, drug_id)][at.astimezone(LOCAL).date()] -= quantity  # dispenses are negative
    return days


def known_demand(uow: UnitOfWork, horizon_days: int) -> dict[tuple[int, int], int]:
    """Units the consortium already knows it must supply within the horizon and holds no stock for:
    prescriptions waiting for stock, and long-prescription issues falling due."""
    today = uow.today()
    end = today + timedelta(days=horizon_days)
    rows = uow.session.execute(
        select(Prescription, PrescriptionItem)
        .join(PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id)
        .where(Prescription.pharmacy_site_id.is_not(None),
               Prescription.status.in_([Status.AWAITING_STOCK.value, Status.SCHEDULED.value]))).all()
    known: dict[tuple[int, int], int] = defaultdict(int)
    for rx, item in rows:
        assert rx.pharmacy_site_id is not None
        if rx.status == Status.AWAITING_STOCK.value:
            known[(rx.pharmacy_site_id, item.drug_id)] += item.quantity
            continue
        # Scheduled: the issues still to come whose due date falls within the horizon.
        due = installments_due(rx.next_due_on, rx.interval_days or 0, rx.issues_total - rx.current_issue, end)
        if due:
            known[(rx.pharmacy_site_id, item.drug_id)] += due * item.quantity
    return known


def forecast_demand(uow: UnitOfWork, horizon_days: int, service_level: float, history_days: int,
                    ) -> list[SiteForecast]:
    """Each dispensing site's need per drug over the horizon, from the dispensing ledger of the last
    ``history_days`` days (usage and its variability, for safety stock at ``service_level``) plus the demand
    already known (see :func:`known_demand`)."""
    with uow:
        today = uow.today()
        history = dispensed_by_day(uow, today - timedelta(days=history_days), today)
        known = known_demand(uow, horizon_days)
        active_sites = set(uow.session.scalars(select(Site.id).where(Site.active.is_(True),
                                                                      Site.dispenses.is_(True))))
        active_drugs = set(uow.session.scalars(select(Drug.id).where(Drug.active.is_(True))))
        result = []
        for key in sorted(set(history) | set(known)):
            site_id, drug_id = key
            if site_id not in active_sites or drug_id not in active_drugs:
                continue
            by_day = history.get(key, {})
            series = [max(0, by_day.get(today - timedelta(days=n), 0)) for n in range(history_days, 0, -1)]
            result.append(SiteForecast(site_id, drug_id, forecast(series, horizon_days, service_level,
                                                                   known.get(key, 0))))
        return result


# Purchase orders ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceiptLine:
    drug_id: int
    lot_number: str
    expiry_date: date
    quantity: int
    unit: str = "unit"  # or "pack"
    trace_codes: Sequence[str] = ()  # the packs' codes as scanned


def get_purchase_order(uow: UnitOfWork, order_id: int) -> tuple[PurchaseOrder, list[PurchaseOrderLine]]:
    with uow:
        order = uow.get(PurchaseOrder, order_id, what="purchase order")
        lines = list(uow.session.scalars(select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id)
                                         .order_by(PurchaseOrderLine.site_id, PurchaseOrderLine.drug_id)))
        if uow.principal.site_bound:  # a pharmacist sees the lines of the own site only
            lines = [line for line in lines if line.site_id == uow.principal.site_id]
            if not lines:
                raise NotFound(Message("purchase order %(id)s not found", id=order_id))
        return order, lines


def list_purchase_orders(uow: UnitOfWork, page: PageRequest, *, status: str | None = None,
                         run_id: int | None = None, site_id: int | None = None) -> Page[PurchaseOrder]:
    with uow:
        stmt = select(PurchaseOrder).order_by(PurchaseOrder.id.desc())
        if uow.principal.site_bound:
            site_id = uow.principal.site_id
        if site_id is not None:
            stmt = stmt.where(PurchaseOrder.id.in_(select(PurchaseOrderLine.order_id)
                                                   .where(PurchaseOrderLine.site_id == site_id)))
        if status:
            stmt = stmt.where(PurchaseOrder.status == status)
        if run_id is not None:
            stmt = stmt.where(PurchaseOrder.run_id == run_id)
        return fetch_page(uow.session, stmt, page)


def receive_purchase_order(uow: UnitOfWork, order_id: int, site_id: int, lines: Sequence[ReceiptLine],
                           ) -> tuple[PurchaseOrder, list[PurchaseOrderLine]]:
    """Goods of a purchase order arrived at a site: each line becomes a lot (new or topped up) and a receipt
    movement. Deliveries may come in parts; more than ordered, or a drug the order does not bring to this
    site, is refused and nothing is received. Prescriptions waiting here for these drugs move on."""
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        order = uow.get(PurchaseOrder, order_id, for_update=True, what="purchase order")
        if order.status in ("received", "cancelled"):
            raise Conflict(Message("purchase order %(order)s is %(status)s: nothing more can be received",
                                   order=order.number, status=Message.word(order.status)),
                           {"status": order.status})
        if not lines:
            raise ValidationFailed(Message("a receipt lists at least one line"), {"lines": "required"})
        ordered = {line.drug_id: line for line in uow.session.scalars(
            select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id,
                                            PurchaseOrderLine.site_id == site_id))}
        drugs = {d.id: d for d in uow.session.scalars(select(Drug).where(Drug.id.in_([r.drug_id for r in lines])))}
        arriving: dict[int, int] = defaultdict(int)
        errors: list[dict[str, Any]] = []
        for n, receipt in enumerate(lines):
            drug = drugs.get(receipt.drug_id)
            target = ordered.get(receipt.drug_id)
            name = f"{drug.code} {drug.generic_name}" if drug else Message("drug %(id)s", id=receipt.drug_id)
            if not receipt.lot_number.strip():
                errors.append({"field": f"lines[{n}].lot_number", "reason": Message(
                    "%(drug)s: the lot number printed on the goods is needed", drug=name)})
                continue
            if receipt.quantity <= 0:
                errors.append({"field": f"lines[{n}].quantity", "reason": Message(
                    "%(drug)s: the quantity received is a positive number", drug=name)})
                continue
            if target is None:
                errors.append({"field": f"lines[{n}].drug_id",
                               "reason": Message("%(drug)s is not on purchase order %(order)s for this site",
                                                 drug=name, order=order.number)})
                continue
            arriving[receipt.drug_id] += receipt.quantity * (target.pack_size if receipt.unit == "pack" else 1)
        for drug_id, units in arriving.items():
            target = ordered[drug_id]
            if target.received_units + units > target.units:
                drug = drugs.get(drug_id)
                errors.append({"drug_id": drug_id, "reason": Message(
                    "%(drug)s: %(units)s units would exceed the order: %(ordered)s ordered, %(received)s received "
                    "already", drug=f"{drug.code} {drug.generic_name}" if drug else drug_id, units=units,
                    ordered=target.units, received=target.received_units)})
        if errors:
            raise ValidationFailed(Message("the delivery does not match the order; nothing was received"), errors)
        cause = Cause(CauseType.PURCHASE_ORDER, str(order.id))
        for n, receipt in enumerate(lines):
            target = ordered[receipt.drug_id]
            units = receipt.quantity * (target.pack_size if receipt.unit == "pack" else 1)
            receive_stock(uow, site_id, receipt.drug_id, receipt.lot_number, receipt.expiry_date, units,
                          reason_code="purchase", note=f"purchase order {order.number}", cause=cause,
                          trace_codes=receipt.trace_codes, codes_where=f"lines[{n}].trace_codes")
            target.received_units += units
        all_lines = list(uow.session.scalars(select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id)))
        order.status = received_status(sum(line.received_units for line in all_lines),
                                       sum(line.units for line in all_lines))
        uow.publish(StockArrived(site_id, tuple(sorted(arriving))))
        uow.commit()
        return order, [line for line in all_lines if line.site_id == site_id]


@dataclass(frozen=True)
class OrderLine:
    """Packs of an offer for a site, on an order placed outside a plan."""

    site_id: int
    offer_id: int
    packs: int


def place_purchase_order(uow: UnitOfWork, supplier_id: int, lines: Sequence[OrderLine], note: str = "",
                         ) -> tuple[PurchaseOrder, list[PurchaseOrderLine]]:
    """An officer orders from one supplier outside a plan: each line's packs priced at the tier the order's own
    volume of that offer reaches, its total with the delivery per pack and the offer's cost per order, and each
    line expected after the offer's lead time. Plans count it as on order from then on."""
    with uow:
        supplier = uow.get(Supplier, supplier_id, what="supplier")
        if not lines:
            raise ValidationFailed(Message("an order lists at least one line"), {"lines": "required"})
        today = uow.today()
        offers = {o.id: o for o in uow.session.scalars(select(Offer).where(Offer.id.in_([x.offer_id for x in lines])))}
        volume: dict[int, int] = defaultdict(int)
        errors = []
        for n, line in enumerate(lines):
            offer = offers.get(line.offer_id)
            uow.get(Site, line.site_id, what="site")
            if offer is None or offer.supplier_id != supplier.id:
                errors.append({"line": n, "reason": Message("offer %(offer)s is not an offer of %(supplier)s",
                                                            offer=line.offer_id, supplier=supplier.code)})
            elif not offer.active:
                errors.append({"line": n, "reason": Message("offer %(offer)s is retired", offer=offer.id)})
            elif not offer.valid_from <= today <= offer.valid_until:
                errors.append({"line": n, "reason": Message("offer %(offer)s is not valid today", offer=offer.id)})
            elif line.packs <= 0:
                errors.append({"line": n, "reason": Message("order at least one pack")})
            else:
                volume[offer.id] += line.packs
        for offer_id, packs in volume.items():
            offer = offers[offer_id]
            if packs < offer.minimum_packs:
                errors.append({"offer_id": offer_id, "reason": Message(
                    "offer %(offer)s is sold from %(minimum)s packs, not %(packs)s", offer=offer_id,
                    minimum=offer.minimum_packs, packs=packs)})
        if errors:
            raise ValidationFailed(Message("the order cannot be placed; nothing was ordered"), errors)
        order = PurchaseOrder(consortium_id=supplier.consortium_id, number=order_number("PO", today), run_id=None,
                              supplier_id=supplier.id, status="open", created_by=uow.principal.label,
                              created_at=uow.now())
        uow.session.add(order)
        uow.session.flush()
        made, total, delivered_to = [], Decimal(0), set()
        for line in lines:
            offer = offers[line.offer_id]
            per_pack = tier_price(offer.tiers, volume[offer.id])
            cost = money(line.packs * (per_pack + (offer.delivery_cost_to(line.site_id) or 0)))
            made.append(PurchaseOrderLine(
                consortium_id=order.consortium_id, order_id=order.id, site_id=line.site_id, drug_id=offer.drug_id,
                offer_id=offer.id, packs=line.packs, pack_size=offer.pack_size, units=line.packs * offer.pack_size,
                price_per_pack=per_pack, cost=cost, received_units=0,
                expected_on=today + timedelta(days=offer.lead_time_days)))
            total += cost + (offer.order_cost if (offer.id, line.site_id) not in delivered_to else 0)
            delivered_to.add((offer.id, line.site_id))
        uow.session.add_all(made)
        order.total = money(total)
        audit.record(uow.session, "place", "PurchaseOrder", order.id, note or f"{len(made)} lines, {order.total:.2f}")
        uow.commit()
        return order, made


def promise_delivery(uow: UnitOfWork, order_id: int, expected_on: date, site_id: int | None = None,
                     ) -> tuple[PurchaseOrder, list[PurchaseOrderLine]]:
    """The supplier promised a day for the goods still to come (to one site, or all): plans and alerts count them
    from then on."""
    with uow:
        order = uow.get(PurchaseOrder, order_id, for_update=True, what="purchase order")
        if order.status not in OPEN_PURCHASE_ORDER_STATUSES:
            raise Conflict(Message("purchase order %(order)s is %(status)s: nothing more is expected",
                                   order=order.number, status=Message.word(order.status)), {"status": order.status})
        if expected_on < uow.today():
            raise ValidationFailed(Message("a promised day cannot be in the past"), {"expected_on": str(expected_on)})
        lines = list(uow.session.scalars(select(PurchaseOrderLine).where(PurchaseOrderLine.order_id == order.id)
                                         .order_by(PurchaseOrderLine.site_id, PurchaseOrderLine.drug_id)))
        for line in lines:
            if (site_id is None or line.site_id == site_id) and line.received_units < line.units:
                line.expected_on = expected_on
        audit.record(uow.session, "promise", "PurchaseOrder", order.id,
                     f"delivery promised for {expected_on.isoformat()}" + (f" to site {site_id}" if site_id else ""))
        uow.commit()
        return order, lines


def cancel_purchase_order(uow: UnitOfWork, order_id: int, note: str) -> PurchaseOrder:
    """Cancel an order nothing of which has arrived."""
    with uow:
        order = uow.get(PurchaseOrder, order_id, for_update=True, what="purchase order")
        if order.status != "open":
            raise Conflict(Message("purchase order %(order)s is %(status)s: only an open order with nothing received "
                                   "can be cancelled", order=order.number, status=Message.word(order.status)),
                           {"status": order.status})
        if not note.strip():
            raise ValidationFailed(Message("say why the order is cancelled"), {"note": note})
        order.status = "cancelled"
        audit.record(uow.session, "cancel", "PurchaseOrder", order.id, note)
        uow.commit()
        return order


# Transfer orders ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TransferView:
    order: TransferOrder
    lines: list[TransferOrderLine]
    parcels: list[TransferParcel]


def _transfer_view(uow: UnitOfWork, order: TransferOrder) -> TransferView:
    lines = list(uow.session.scalars(select(TransferOrderLine).where(TransferOrderLine.order_id == order.id)
                                     .order_by(TransferOrderLine.id)))
    parcels = list(uow.session.scalars(select(TransferParcel).where(TransferParcel.order_id == order.id)
                                       .order_by(TransferParcel.id)))
    return TransferView(order, lines, parcels)


def _load_transfer(uow: UnitOfWork, order_id: int, *, for_update: bool = False) -> TransferOrder:
    order = uow.get(TransferOrder, order_id, for_update=for_update, what="transfer order")
    if uow.principal.site_bound and uow.principal.site_id not in (order.from_site_id, order.to_site_id):
        raise NotFound(Message("transfer order %(id)s not found", id=order_id))
    return order


def create_transfer_order(uow: UnitOfWork, from_site_id: int, to_site_id: int,
                          lines: Sequence[tuple[int, int, int | None]], note: str = "") -> TransferView:
    """An officer asks one member to send stock to another: lines of (drug, units, lot or None for FEFO)."""
    with uow:
        if from_site_id == to_site_id:
            raise ValidationFailed("a transfer goes from one site to another", {"to_site_id": to_site_id})
        for site_id in (from_site_id, to_site_id):
            uow.get(Site, site_id, what="site")
        for drug_id, _, lot_id in lines:
            uow.get(Drug, drug_id, what="drug")
            if lot_id is not None:
                lot = uow.get(Lot, lot_id, what="lot")
                if lot.site_id != from_site_id or lot.drug_id != drug_id:
                    raise ValidationFailed(f"lot {lot_id} is not stock of drug {drug_id} at site {from_site_id}",
                                           {"lot_id": lot_id})
        order = request_transfer(uow, uow.principal.consortium_id, from_site_id, to_site_id,  # type: ignore[arg-type]
                                 [(d, q, None) for d, q, _ in lines], reason="redistribution", note=note,
                                 lots=[lot for _, _, lot in lines])
        uow.commit()
        return _transfer_view(uow, order)


def get_transfer_order(uow: UnitOfWork, order_id: int) -> TransferView:
    with uow:
        return _transfer_view(uow, _load_transfer(uow, order_id))


@dataclass(frozen=True)
class Receiving:
    """What a site still has to ship or receive: its open transfer orders, in or out, and the open purchase
    orders delivering to it with its own lines."""

    transfers: list[TransferView]
    deliveries: list[tuple[PurchaseOrder, list[PurchaseOrderLine]]]


def receiving_worklist(uow: UnitOfWork, site_id: int) -> Receiving:
    """A site's receiving worklist, read in a few queries whatever the number of orders (newest first)."""
    with uow:
        uow.ensure_acts_for(site_id)
        transfers = list(uow.session.scalars(select(TransferOrder).where(
            TransferOrder.status.in_(sorted(OPEN_TRANSFER_STATUSES)),
            (TransferOrder.to_site_id == site_id) | (TransferOrder.from_site_id == site_id))
            .order_by(TransferOrder.id.desc())))
        ids = [t.id for t in transfers]
        transfer_lines: dict[int, list[TransferOrderLine]] = defaultdict(list)
        for line in uow.session.scalars(select(TransferOrderLine).where(TransferOrderLine.order_id.in_(ids))
                                        .order_by(TransferOrderLine.id)):
            transfer_lines[line.order_id].append(line)
        parcels: dict[int, list[TransferParcel]] = defaultdict(list)
        for parcel in uow.session.scalars(select(TransferParcel).where(TransferParcel.order_id.in_(ids))
                                          .order_by(TransferParcel.id)):
            parcels[parcel.order_id].append(parcel)
        order_lines: dict[int, list[PurchaseOrderLine]] = defaultdict(list)
        for delivery in uow.session.scalars(select(PurchaseOrderLine).join(
                PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.order_id).where(
                PurchaseOrder.status.in_(sorted(OPEN_PURCHASE_ORDER_STATUSES)), PurchaseOrderLine.site_id == site_id)
                .order_by(PurchaseOrderLine.drug_id)):
            order_lines[delivery.order_id].append(delivery)
        orders = uow.session.scalars(select(PurchaseOrder).where(PurchaseOrder.id.in_(sorted(order_lines)))
                                     .order_by(PurchaseOrder.id.desc()))
        return Receiving([TransferView(t, transfer_lines[t.id], parcels[t.id]) for t in transfers],
                         [(order, order_lines[order.id]) for order in orders])


def list_transfer_orders(uow: UnitOfWork, page: PageRequest, *, status: str | None = None,
                         site_id: int | None = None, direction: str | None = None,
                         run_id: int | None = None) -> Page[TransferOrder]:
    with uow:
        stmt = select(TransferOrder).order_by(TransferOrder.id.desc())
        if uow.principal.site_bound:
            site_id = uow.principal.site_id
        if site_id is not None:
            if direction == "incoming":
                stmt = stmt.where(TransferOrder.to_site_id == site_id)
            elif direction == "outgoing":
                stmt = stmt.where(TransferOrder.from_site_id == site_id)
            else:
                stmt = stmt.where((TransferOrder.to_site_id == site_id) | (TransferOrder.from_site_id == site_id))
        if status:
            stmt = stmt.where(TransferOrder.status == status)
        if run_id is not None:
            stmt = stmt.where(TransferOrder.run_id == run_id)
        return fetch_page(uow.session, stmt, page)


def ship_transfer(uow: UnitOfWork, order_id: int) -> TransferView:
    """The sending site ships a requested transfer: its held stock leaves as a transfer-out movement per lot (the
    lot the plan named, or the lots held first-expiry first-out when the order was made; a hold lost meanwhile is
    taken again from usable stock). Short of stock, nothing ships."""
    with uow:
        order = _load_transfer(uow, order_id, for_update=True)
        uow.ensure_acts_for(order.from_site_id, what=Message("transfer order %(id)s", id=order.number))
        check_transfer_action(order.status, "ship")
        cause = transfer_cause(order.id)
        lines = list(uow.session.scalars(select(TransferOrderLine).where(TransferOrderLine.order_id == order.id)
                                         .order_by(TransferOrderLine.id)))
        lock_stock(uow, order.from_site_id, sorted({line.drug_id for line in lines}))
        # Lines naming their lot first: a first-expiry first-out line of the same drug takes what is held after.
        for line in sorted(lines, key=lambda line: line.lot_id is None):
            for lot, movement in send_stock(uow, order.from_site_id, line.drug_id, line.quantity, order.reason,
                                            cause, lot_id=line.lot_id, usable_until=line.usable_until):
                uow.session.add(TransferParcel(
                    consortium_id=order.consortium_id, order_id=order.id, line_id=line.id, drug_id=line.drug_id,
                    from_lot_id=lot.id, lot_number=lot.lot_number, expiry_date=lot.expiry_date,
                    shipped=-movement.quantity, received=0, lost=0))
        release_stock(uow, cause)  # nothing stays held for an order that has left
        order.status, order.shipped_at = "shipped", uow.now()
        uow.commit()
        return _transfer_view(uow, order)


@dataclass(frozen=True)
class TransitLoss:
    """Units of a parcel that did not arrive whole, and why (damaged, missing, wrong_item)."""

    parcel_id: int
    units: int
    reason: str
    note: str = ""


def receive_transfer(uow: UnitOfWork, order_id: int, received: Mapping[int, int] | None = None,
                     losses: Sequence[TransitLoss] = ()) -> TransferView:
    """The receiving site takes in what arrived: ``received`` maps parcel ids to units (default: everything
    still outstanding that is not declared lost). Each parcel lands as the same lot number and expiry at this
    site. Units that did not arrive whole are declared with why (``losses``): they arrive and leave again as a
    transit loss, so the sender's transfer-out always equals the receiver's transfer-in. Prescriptions waiting
    here for these drugs move on, the one the transfer was asked for first."""
    with uow:
        order = _load_transfer(uow, order_id, for_update=True)
        uow.ensure_acts_for(order.to_site_id, what=Message("transfer order %(id)s", id=order.number))
        check_transfer_action(order.status, "receive")
        parcels = {p.id: p for p in uow.session.scalars(select(TransferParcel).where(
            TransferParcel.order_id == order.id).order_by(TransferParcel.id))}
        lost: dict[int, TransitLoss] = {}
        errors = []
        for declared in losses:
            if declared.parcel_id in lost:
                errors.append({"parcel_id": declared.parcel_id,
                               "reason": Message("a parcel's loss is declared once")})
            elif declared.reason not in TRANSIT_LOSS_REASONS:
                errors.append({"parcel_id": declared.parcel_id, "reason": Message(
                    "say why units did not arrive: one of %(reasons)s",
                    reasons=[Message.word(r) for r in TRANSIT_LOSS_REASONS])})
            lost[declared.parcel_id] = declared
        wanted = dict(received) if received else {
            p.id: p.shipped - p.received - p.lost - (lost[p.id].units if p.id in lost else 0) for p in parcels.values()}
        for parcel_id in sorted(set(wanted) | set(lost)):
            parcel = parcels.get(parcel_id)
            units, gone = wanted.get(parcel_id, 0), lost[parcel_id].units if parcel_id in lost else 0
            if parcel is None:
                errors.append({"parcel_id": parcel_id, "reason": Message("not a parcel of transfer %(order)s",
                                                                         order=order.number)})
            elif units < 0 or gone < 0 or parcel.received + parcel.lost + units + gone > parcel.shipped:
                errors.append({"parcel_id": parcel_id, "reason": Message(
                    "%(units)s units: %(shipped)s shipped, %(received)s received already", units=units + gone,
                    shipped=parcel.shipped, received=parcel.received + parcel.lost)})
        if not errors and not any(wanted.values()) and not any(loss.units for loss in lost.values()):
            errors.append({"received": Message("enter the units that arrived, or declare those that did not "
                                               "arrive whole")})
        if errors:
            raise ValidationFailed(Message("the arrival does not match what was shipped; nothing was received"),
                                   errors)
        cause = transfer_cause(order.id)
        for parcel_id in sorted(set(wanted) | set(lost)):
            parcel = parcels[parcel_id]
            units, loss = wanted.get(parcel_id, 0), lost.get(parcel_id)
            arriving = units + (loss.units if loss else 0)
            if arriving == 0:
                continue
            movement = receive_stock(uow, order.to_site_id, parcel.drug_id, parcel.lot_number, parcel.expiry_date,
                                     arriving, reason_code=order.reason, note=f"transfer {order.number}", cause=cause,
                                     kind=MovementKind.TRANSFER_IN)
            if loss and loss.units:
                book_transit_loss(uow, movement.lot_id, loss.units, loss.reason,
                                  note=loss.note or f"transfer {order.number}", cause=cause)
                parcel.lost += loss.units
            parcel.received += units
        shipped = sum(p.shipped for p in parcels.values())
        status = received_status(sum(p.received + p.lost for p in parcels.values()), shipped)
        order.status = "shipped" if status == "open" else status
        if order.status == "received":
            order.received_at = uow.now()
        uow.publish(StockArrived(order.to_site_id, tuple(sorted({p.drug_id for p in parcels.values()})),
                                 order.prescription_id))
        uow.commit()
        return _transfer_view(uow, order)


def cancel_transfer(uow: UnitOfWork, order_id: int, note: str) -> TransferView:
    """Cancel a transfer not yet shipped (by either site's pharmacist or an officer)."""
    with uow:
        order = _load_transfer(uow, order_id, for_update=True)
        check_transfer_action(order.status, "cancel")
        release_stock(uow, transfer_cause(order.id))  # the sender's stock is free again
        order.status, order.cancelled_at = "cancelled", uow.now()
        audit.record(uow.session, "cancel", "TransferOrder", order.id, note)
        uow.commit()
        return _transfer_view(uow, order)


# Alerts and reservations --------------------------------------------------------------------------------

def _alert_facts(message: str, level: int) -> dict[str, Any]:
    facts: dict[str, Any] = {"level": level}
    if isinstance(message, Message):
        # Numbers and plain data (a plan's reasons as codes and figures) kept as they are; the rest as said in English.
        facts.update(template=message.template, facts={
            name: fact if isinstance(fact, int | float | list | dict) else str(fact)
            for name, fact in message.facts.items()})
    return facts


def raise_alert(uow: UnitOfWork, consortium_id: int, kind: str, key: str, site_id: int, drug_id: int,
                lot_id: int | None, message: str, today: date, *, level: int = 0) -> bool:
    """Raise an alert of one thing (its ``key``): once while it is open (an open one is brought up to date
    instead), and again only a while after it was acknowledged, or at once at a higher ``level`` (see
    :func:`alert_step`). ``message`` may be a :class:`Message`, whose facts the pages say in their own language.
    True if one was raised."""
    latest = uow.session.scalars(select(Alert).where(Alert.consortium_id == consortium_id, Alert.key == key)
                                 .order_by(Alert.id.desc()).limit(1)).first()
    acknowledged = local(latest.acknowledged_at).date() \
        if latest is not None and latest.acknowledged_at is not None else None
    worse = latest is not None and level > int((latest.facts or {}).get("level", 0))
    step = alert_step(latest is not None and latest.acknowledged_at is None, acknowledged, today, worse=worse)
    if step == "refresh" and latest is not None:
        latest.message, latest.facts = str(message), _alert_facts(message, level)
        return False
    if step == "quiet" or (latest is not None and latest.raised_on == today):
        return False
    uow.session.add(Alert(consortium_id=consortium_id, kind=kind, key=key, site_id=site_id, drug_id=drug_id,
                          lot_id=lot_id, message=str(message), facts=_alert_facts(message, level), raised_on=today,
                          created_at=uow.now()))
    return True


EXPIRY_LEVELS = {"ok": 0, "near": 1, "soon": 2, "expired": 3}


def acknowledge_alert(uow: UnitOfWork, alert_id: int) -> Alert:
    """A pharmacist of the alert's site, or an officer, takes it in hand: who and when are kept, and it leaves the
    open list."""
    with uow:
        alert = uow.get(Alert, alert_id, for_update=True, what="alert")
        uow.ensure_acts_for(alert.site_id, what=Message("alert %(id)s", id=alert_id))
        if alert.acknowledged_at is not None:
            raise Conflict(Message("this alert was acknowledged by %(who)s on %(at)s", who=alert.acknowledged_by,
                                   at=local_text(alert.acknowledged_at)), {"acknowledged_at": "already"})
        alert.acknowledged_at, alert.acknowledged_by = uow.now(), uow.principal.label
        audit.record(uow.session, "acknowledge", "Alert", alert.id, f"{alert.kind} alert acknowledged")
        uow.commit()
        return alert


def raise_near_expiry_alerts(uow: UnitOfWork, days: int) -> int:
    """One alert a day for every lot with stock that expires within ``days`` days."""
    with uow:
        today = uow.today()
        rows = uow.session.execute(
            select(Lot, Drug.code, Site.code).join(Drug, Drug.id == Lot.drug_id).join(Site, Site.id == Lot.site_id)
            .where(Lot.quantity > 0, Lot.expiry_date <= today + timedelta(days=days))).all()
        raised = 0
        for lot, drug_code, site_code in rows:
            left = (lot.expiry_date - today).days
            facts = {"units": lot.quantity, "drug": drug_code, "lot": lot.lot_number, "site": site_code}
            message = Message("%(units)s units of %(drug)s lot %(lot)s at %(site)s expire in %(days)s days",
                              days=left, **facts) if usable_on(lot.expiry_date, today) else \
                Message("%(units)s units of %(drug)s lot %(lot)s at %(site)s have expired: write them off", **facts)
            # Taken in hand at 80 days, a lot's alert is raised again at once when 30 are left, and at expiry.
            level = EXPIRY_LEVELS[expiry_band(lot.expiry_date, today, days)]
            raised += raise_alert(uow, lot.consortium_id, "near_expiry", f"near_expiry:lot:{lot.id}", lot.site_id,
                                  lot.drug_id, lot.id, message, today, level=level)
        uow.commit()
        return raised


def raise_low_stock_alerts(uow: UnitOfWork, cover_days: int, history_days: int = 30) -> int:
    """One alert a day for every site and drug whose position over the next ``cover_days`` days (what is available
    now, and what is on order or in transit and expected by then) covers less than that many days of its recent
    usage."""
    with uow:
        today = uow.today()
        usage = dispensed_by_day(uow, today - timedelta(days=history_days), today)
        where = positions(uow, site_ids=sorted({site for site, _ in usage}), drug_ids=sorted({d for _, d in usage}))
        names = dict(uow.session.execute(select(Drug.id, Drug.code)).all())
        sites = {s.id: s for s in uow.session.scalars(select(Site))}
        by = today + timedelta(days=cover_days)
        raised = 0
        for (site_id, drug_id), by_day in sorted(usage.items()):
            daily = sum(by_day.values()) / history_days
            position = where.get((site_id, drug_id))
            have = position.available if position else 0
            coming = position.arriving_by(by) if position else 0
            if daily <= 0 or have + coming >= daily * cover_days:
                continue
            site = sites[site_id]
            facts = {"drug": names.get(drug_id, drug_id), "site": site.code, "available": have,
                     "cover": f"{(have + coming) / daily:.1f}", "daily": f"{daily:.1f}", "days": cover_days}
            message = Message("%(drug)s at %(site)s: %(available)s units available and %(coming)s on the way cover "
                              "%(cover)s days of usage (%(daily)s/day); less than %(days)s days", coming=coming,
                              **facts) if coming else \
                Message("%(drug)s at %(site)s: %(available)s units available cover %(cover)s days of usage "
                        "(%(daily)s/day); less than %(days)s days", **facts)
            raised += raise_alert(uow, site.consortium_id, "low_stock", f"low_stock:{site_id}:{drug_id}", site_id,
                                   drug_id, None, message, today)
        uow.commit()
        return raised


def list_alerts(uow: UnitOfWork, page: PageRequest, *, kind: str | None = None, site_id: int | None = None,
                since: date | None = None, open: bool | None = None) -> Page[Alert]:
    """Alerts newest first (a pharmacist's own site's): ``open`` ones, not yet acknowledged, or acknowledged ones."""
    with uow:
        stmt = select(Alert).order_by(Alert.raised_on.desc(), Alert.id.desc())
        if open is not None:
            stmt = stmt.where(Alert.acknowledged_at.is_(None) if open else Alert.acknowledged_at.is_not(None))
        if uow.principal.site_bound:
            site_id = uow.principal.site_id
        if site_id is not None:
            stmt = stmt.where(Alert.site_id == site_id)
        if kind:
            stmt = stmt.where(Alert.kind == kind)
        if since:
            stmt = stmt.where(Alert.raised_on >= since)
        return fetch_page(uow.session, stmt, page)


def open_alert_counts(uow: UnitOfWork) -> dict[str, int]:
    """Open alerts of the caller's site (or consortium) by kind, for a page's tabs and header."""
    with uow:
        stmt = select(Alert.kind, func.count()).where(Alert.acknowledged_at.is_(None)).group_by(Alert.kind)
        if uow.principal.site_bound:
            stmt = stmt.where(Alert.site_id == uow.principal.site_id)
        return {kind: count for kind, count in uow.session.execute(stmt)}


def release_expired_reservations(uow: UnitOfWork) -> int:
    """Release stock held for a cause that no longer needs it, and holds on lots that have expired meanwhile.

    A hold's cause is typed, so each kind is judged by its own row: a prescription's hold lives while the
    prescription is open, a transfer's while the order waits to ship, a manual hold until it is released by
    hand. Stock on a lot expired (as dispensing sees it: the day after its expiry date) can no longer be
    used, so an open prescription's units of that drug are held again, first-expiry first-out, from the
    site's other usable lots; if they cannot all be, none is, and the pharmacy sees the prescription short of
    it. Each cause is released in its own savepoint: a row that cannot be released is logged and skipped,
    never the whole job. Returns the units released (those held again included)."""
    open_prescription = Prescription.status.in_([s.value for s in OPEN_STATUSES])
    requested_transfer = TransferOrder.status == "requested"
    with uow:
        today = uow.today()
        live = case((Reservation.cause_type == CauseType.PRESCRIPTION, open_prescription),
                    (Reservation.cause_type == CauseType.TRANSFER, requested_transfer), else_=True)
        held = uow.session.execute(
            select(Reservation.cause_type, Reservation.prescription_id, Reservation.transfer_order_id,
                   Reservation.reference, Reservation.site_id, Reservation.drug_id, live.label("live"),
                   func.max(Reservation.supply_until))
            .join(Lot, Lot.id == Reservation.lot_id)
            .outerjoin(Prescription, Prescription.id == Reservation.prescription_id)
            .outerjoin(TransferOrder, TransferOrder.id == Reservation.transfer_order_id)
            .where(Reservation.status == "held", ~Lot.usable_on(today) | ~live)
            .group_by(Reservation.cause_type, Reservation.prescription_id, Reservation.transfer_order_id,
                      Reservation.reference, Reservation.site_id, Reservation.drug_id, live)
            .order_by(Reservation.site_id, Reservation.drug_id)).all()
        released = 0
        for cause_type, prescription_id, transfer_id, reference, site_id, drug_id, alive, supply_until in held:
            ref = prescription_id if cause_type is CauseType.PRESCRIPTION else \
                transfer_id if cause_type is CauseType.TRANSFER else reference
            cause = Cause(cause_type, str(ref))
            savepoint = uow.session.begin_nested()
            try:
                units = release_stock(uow, cause, site_id=site_id, drug_id=drug_id)
            except Exception:  # one bad row never stops the job: it is logged and tried again next hour
                savepoint.rollback()
                log.exception("could not release stock held for %s %s at site %s", cause.type.value, cause.id,
                              site_id)
                continue
            savepoint.commit()
            released += units
            if alive and cause_type is CauseType.PRESCRIPTION and units:
                again = uow.session.begin_nested()
                try:
                    hold_stock(uow, site_id, drug_id, units, supply_until, cause)
                except DomainError:  # short of usable stock (or the drug retired since): it stays released
                    again.rollback()
                else:
                    again.commit()
        uow.commit()
        return released


def inventory_position(uow: UnitOfWork, page: PageRequest, *, site_id: int | None = None,
                       drug_id: int | None = None) -> Page[Position]:
    """The inventory position per site and drug (see :mod:`pharmacy.procurement.position`); a pharmacist's own
    site's."""
    with uow:
        if uow.principal.site_bound:
            site_id = uow.principal.site_id
        found = list(positions(uow, site_ids=[site_id] if site_id is not None else None,
                               drug_ids=[drug_id] if drug_id is not None else None).values())
        start = (page.page - 1) * page.page_size
        return Page(found[start:start + page.page_size], len(found))
