"""A consortium's quarter lived in the service, day by day: the supply loop closed, and checked every day.

Prescriptions arrive (seeded; ordinary ones, extended ones routed to the grassroots pharmacy near the patient, and
long ones collected in installments), pharmacists work them to hand-over (a few patients never come), the weekly
plan runs and is approved, suppliers deliver after their lead times (some late, some in parts), transfers ship and
arrive (a few with units broken on the way), expired stock is written off, and sites count their shelves while
they go on dispensing. After every day the stock is proven: every lot equals the sum of its movements, held stock
equals the open holds and each hold has a live cause, no lot is negative, and no plan bought what stock already
on order or on its way covered (checked against a position recomputed from the rows, not by the service's own).

The same days are lived twice from the same seed: with the consortium's pooled plan, and with every site buying
alone (each site's own plan, its own volume's tiers, no transfers). It prints, for both: the fill rate, the
stock-out days, the value written off as expired, the purchase cost, and the transfers made and their value.

    .venv/bin/python bench/simulate.py                      # the demo's consortium, 90 days, on SQLite
    SIM_DAYS=30 SIM_SITES=6 SIM_DRUGS=5 .venv/bin/python bench/simulate.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test .venv/bin/python bench/simulate.py
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # bench/optimizer.py is named like the package: keep this folder off the import path
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import func, select, text

from optimizer import solve
from optimizer.serialize import problem_from_dict
from pharmacy import create_app
from pharmacy.catalog.services import create_drug
from pharmacy.clock import CONSORTIUM_TIMEZONE, FixedClock
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.demo import DEMO_DRUGS, DEMO_PACK_PRICES, DEMO_SITES, DEMO_SUPPLIERS
from pharmacy.errors import DomainError
from pharmacy.inventory.domain import CauseType, MovementKind
from pharmacy.inventory.models import Lot, Reservation
from pharmacy.inventory.services import Cause, CountLine, check_ledger, dispense_stock, receive_stock, record_movement
from pharmacy.inventory.services import record_stocktake as count_stock
from pharmacy.migrate import rebuild, upgrade
from pharmacy.prescriptions import services as rx
from pharmacy.prescriptions.domain import OPEN_STATUSES, Kind, Status
from pharmacy.prescriptions.models import Prescription, PrescriptionItem
from pharmacy.principal import SYSTEM, Principal, Role, system_for
from pharmacy.procurement import plan_runs
from pharmacy.procurement import services as procurement
from pharmacy.procurement.models import (
    PurchaseOrder,
    PurchaseOrderLine,
    TransferOrder,
    TransferParcel,
)
from pharmacy.unit_of_work import UnitOfWork

START = date(2027, 3, 1)  # the simulated quarter's first day, in the consortium's time zone
HISTORY_DAYS = 28
PLAN_EVERY_DAYS = 7
HORIZON_DAYS = 14


@dataclass(frozen=True)
class Size:
    days: int = 90
    sites: int = 17  # dispensing sites of the demo's consortium
    drugs: int = 15
    seed: int = 2027


INSTALLMENT_NOTICE_DAYS = 3  # a long prescription's next issue is prepared this many days before it is due


@dataclass
class Results:
    """What a quarter came to, by one way of buying."""

    pooled: bool
    prescribed_units: int = 0
    handed_over_units: int = 0
    stockout_days: int = 0
    expired_value: float = 0.0
    purchase_cost: float = 0.0
    purchase_orders: int = 0
    transfers: int = 0
    transferred_units: int = 0
    transferred_value: float = 0.0
    plans: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fill_rate(self) -> float:
        return self.handed_over_units / self.prescribed_units if self.prescribed_units else 1.0


@dataclass
class World:
    app: Any
    clock: FixedClock
    consortium_id: int
    sites: dict[str, int]  # dispensing sites, by code
    upper: list[int]  # the sites that prescribe
    drugs: dict[str, int]
    price: dict[int, float]  # a unit's value, per drug
    rate: dict[tuple[int, int], float]  # prescriptions a day, per site and drug
    rng: random.Random
    pooled: bool
    late: dict[int, int] = field(default_factory=dict)  # purchase-order line -> days late
    last_day: date | None = None  # the last day lived: installments due after it are not yet demand
    results: Results = field(init=False)

    def __post_init__(self) -> None:
        self.results = Results(self.pooled)

    def uow(self, principal: Principal | None = None) -> UnitOfWork:
        return UnitOfWork(self.app.extensions["pharmacy_db"].session_factory,
                          principal or system_for(self.consortium_id), self.clock)

    def pharmacist(self, site_id: int) -> Principal:
        return Principal("user", None, f"pharmacist {site_id}", Role.PHARMACIST, self.consortium_id, site_id)

    def prescriber(self, site_id: int) -> Principal:
        return Principal("api_key", None, f"HIS {site_id}", Role.PRESCRIBER, self.consortium_id, site_id)

    def officer(self) -> Principal:
        return Principal("user", None, "officer", Role.PROCUREMENT, self.consortium_id, None)

    def today(self) -> date:
        return self.clock.today()

    def session(self) -> Any:
        return self.app.extensions["pharmacy_db"].session_factory()


def _noon(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=CONSORTIUM_TIMEZONE).replace(hour=12).astimezone(UTC)


# Building the consortium ------------------------------------------------------------------------------------

def build(app: Any, size: Size, pooled: bool) -> World:
    """The demo's consortium (or its first sites and drugs), its offers, stock for a few weeks and a ledger of
    the weeks before, and how much each site prescribes of each drug."""
    clock = FixedClock(_noon(START - timedelta(days=HISTORY_DAYS)))
    app.config["CLOCK"] = clock
    factory = app.extensions["pharmacy_db"].session_factory
    rng = random.Random(size.seed)
    consortium = create_consortium(UnitOfWork(factory, SYSTEM, clock), "SIM", "模拟医联体")
    uow = UnitOfWork(factory, system_for(consortium.id), clock)
    ids: dict[str, int] = {}
    dispensing: dict[str, int] = {}
    for code, name, kind, parent, district, lat, lon, dispenses in DEMO_SITES:
        if dispenses and len(dispensing) >= size.sites and kind != "lead_hospital":
            continue
        if parent and parent not in ids:
            continue
        ids[code] = create_site(uow, consortium.id, {
            "code": code, "name": name, "kind": kind, "parent_id": ids.get(parent) if parent else None,
            "district": district, "latitude": lat, "longitude": lon, "dispenses": dispenses}).id
        if dispenses:
            dispensing[code] = ids[code]
    catalog = [d for d in DEMO_DRUGS if d[9] == "none" and d[8] == "none"][:size.drugs]  # long prescriptions allow
    drugs = {}
    for code, name, form, strength, unit, dispensing_unit, pack, essential, controlled, storage, group in catalog:
        drugs[code] = create_drug(uow, {
            "code": code, "generic_name": name, "dosage_form": form, "strength_amount": strength,
            "strength_unit": unit, "dispensing_unit": dispensing_unit, "pack_size": pack, "essential": essential,
            "controlled_class": controlled, "special_storage": storage, "equivalence_group": group}).id
    packs = {d[0]: d[6] for d in catalog}
    price = {drugs[code]: DEMO_PACK_PRICES[code] / packs[code] for code in drugs}
    upper = [ids[c] for c, _, kind, *_ in DEMO_SITES if c in ids and kind in ("lead_hospital", "hospital")]
    rate = {}
    for site in dispensing.values():
        busy = 2.0 if site in upper else 1.0
        for drug in drugs.values():
            if rng.random() < 0.75:
                rate[(site, drug)] = busy * rng.choice([0.3, 0.6, 1.0, 1.5])
    world = World(app, clock, consortium.id, dispensing, upper, drugs, price, rate, rng, pooled)
    _offers(world, packs)
    _opening_stock_and_history(world)
    clock.at = _noon(START)
    return world


def _offers(world: World, packs: dict[str, int]) -> None:
    uow = world.uow()
    start = world.today()
    for code, name, factor, minimum, lead, sites in DEMO_SUPPLIERS:
        supplier = procurement.create_supplier(uow, code, name)
        for drug_code, drug in world.drugs.items():
            unit = DEMO_PACK_PRICES[drug_code] * factor
            tiers = [{"min_packs": minimum // 4, "price_per_pack": round(unit, 2)},
                     {"min_packs": minimum // 4 + 40, "price_per_pack": round(unit * 0.9, 2)}]
            procurement.create_offer(uow, {
                "supplier_id": supplier.id, "drug_id": drug, "pack_size": packs[drug_code], "tiers": tiers,
                "lead_time_days": lead, "capacity_packs": None, "order_cost": 15.0 if minimum else 0.0,
                "default_delivery_cost": None if sites else 0.3,
                "delivery_costs": {s: 0.2 for s in sites if s in {c for c in world.sites}} if sites else {},
                "valid_from": start - timedelta(days=30), "valid_until": start + timedelta(days=400)})


def _opening_stock_and_history(world: World) -> None:
    """Three weeks of stock at each site (a few lots near expiry), and the ledger of the four weeks before the
    quarter, which the first plan's forecast reads."""
    uow = world.uow()
    for (site, drug), rate in world.rate.items():
        daily = rate * 14
        for n, days in enumerate(world.rng.sample([25, 60, 200, 400], 2)):
            receive_stock(uow, site, drug, f"OPEN-{site}-{drug}-{n}", START + timedelta(days=days),
                          max(1, round(daily * (21 + HISTORY_DAYS) / 2)), reason_code="opening_balance")
    for back in range(HISTORY_DAYS, 0, -1):
        world.clock.at = _noon(START - timedelta(days=back))
        for (site, drug), rate in world.rate.items():
            units = sum(14 for _ in range(_poisson(world.rng, rate)))
            if units:
                with contextlib.suppress(DomainError):  # the site ran out of it: it dispensed less
                    dispense_stock(world.uow(), site, drug, units, world.today(),
                                   Cause(CauseType.PRESCRIPTION, f"history-{back}"))


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


# A day --------------------------------------------------------------------------------------------------------

def live_day(world: World, day: int) -> None:
    """One day of the consortium: the morning's jobs, deliveries and transfers, prescriptions sent and worked,
    counts, expired stock written off, and the weekly plan."""
    today = world.today()
    _morning_jobs(world)
    _deliveries(world)
    _transfers(world)
    counting = _count_sheets(world) if today.weekday() == 2 else {}  # Wednesdays: a shelf per site is counted
    _prescribe(world)
    _work_worklists(world)
    if counting:
        _record_counts(world, counting)
    _write_off_expired(world)
    if day % PLAN_EVERY_DAYS == 0:
        _plan(world)


def _morning_jobs(world: World) -> None:
    rx.expire_uncollected(world.uow())
    rx.prepare_due_installments(world.uow(), INSTALLMENT_NOTICE_DAYS)
    procurement.release_expired_reservations(world.uow())


def _deliveries(world: World) -> None:
    """Suppliers deliver what is due (a fifth of lines a few days late, some in two parts)."""
    today = world.today()
    with world.session() as session:
        due = session.execute(select(PurchaseOrderLine, PurchaseOrder.id).join(
            PurchaseOrder, PurchaseOrder.id == PurchaseOrderLine.order_id).where(
            PurchaseOrder.status.in_(["open", "partially_received"]),
            PurchaseOrderLine.received_units < PurchaseOrderLine.units)).all()
    for line, order_id in due:
        if line.id not in world.late:
            world.late[line.id] = world.rng.choice([1, 2, 3]) if world.rng.random() < 0.2 else 0
        if (line.expected_on or today) + timedelta(days=world.late[line.id]) > today:
            continue
        outstanding = line.units - line.received_units
        units = outstanding if world.rng.random() > 0.15 or outstanding < 2 else outstanding // 2
        # One lot per line, whatever part of it comes when.
        receipt = procurement.ReceiptLine(line.drug_id, f"PO{order_id}-{line.id}", START + timedelta(days=540), units)
        procurement.receive_purchase_order(world.uow(world.pharmacist(line.site_id)), order_id, line.site_id,
                                           [receipt])


def _transfers(world: World) -> None:
    """Senders ship what was asked of them; receivers take in what was shipped (now and then a unit broken)."""
    with world.session() as session:
        orders = session.scalars(select(TransferOrder).where(TransferOrder.status.in_(
            ["requested", "shipped", "partially_received"])).order_by(TransferOrder.id)).all()
    for order in orders:
        if order.status == "requested":
            try:
                procurement.ship_transfer(world.uow(world.pharmacist(order.from_site_id)), order.id)
            except DomainError as error:
                procurement.cancel_transfer(world.uow(world.officer()), order.id, f"could not ship: {error}")
            continue
        losses = []
        if world.rng.random() < 0.1:
            view = procurement.get_transfer_order(world.uow(world.officer()), order.id)
            parcel = view.parcels[0]
            if parcel.shipped - parcel.received - parcel.lost > 1:
                losses.append(procurement.TransitLoss(parcel.id, 1, "damaged", "box crushed"))
        procurement.receive_transfer(world.uow(world.pharmacist(order.to_site_id)), order.id, losses=losses)


def _prescribe(world: World) -> None:
    """The day's prescriptions: written at the upper hospitals (and at the sites themselves), for patients near
    each pharmacy; one in five is long, collected in two more installments."""
    today = world.today()
    for (site, drug), rate in world.rate.items():
        for _ in range(_poisson(world.rng, rate)):
            long = world.rng.random() < 0.2
            prescriber = world.rng.choice(world.upper)
            number = f"SIM-{today:%m%d}-{site}-{drug}-{world.rng.randrange(10**6)}"
            code = next(c for c, i in world.drugs.items() if i == drug)
            district = next(d[4] for d in DEMO_SITES if d[0] in world.sites and world.sites[d[0]] == site)
            data = rx.PrescriptionInput(
                number=number, patient_ref=f"P-{world.rng.randrange(10**6)}", kind=Kind.LONG if long else Kind.ORDINARY,
                issued_on=today, valid_until=today + timedelta(days=2), patient_district=district,
                nominated_site_id=site if world.rng.random() < 0.7 else None,
                items=(rx.ItemInput(code, 28 if long else 14, 28 if long else 7, repeats=2 if long else 0,
                                    interval_days=28 if long else None),))
            try:
                rx.submit_prescription(world.uow(world.prescriber(prescriber)), data, request_hash=number)
            except DomainError:
                continue  # refused by the rules (a pharmacy that may not dispense it): not demand we serve
            # Demand is each installment that may be collected while the days are lived: a long prescription's
            # later ones from a few days before they are due, as the pharmacy prepares them.
            due = [today + timedelta(days=28 * n - (INSTALLMENT_NOTICE_DAYS if n else 0))
                   for n in range(3 if long else 1)]
            world.results.prescribed_units += (28 if long else 14) * sum(
                1 for day in due if world.last_day is None or day <= world.last_day)


def _work_worklists(world: World) -> None:
    """Each pharmacy works its list: review, prepare, dispense and hand over; one patient in twenty never comes,
    and their prescription expires."""
    with world.session() as session:
        routed = session.execute(select(Prescription.id, Prescription.pharmacy_site_id).where(
            Prescription.status.in_([Status.ROUTED.value, Status.ACCEPTED.value, Status.PREPARED.value,
                                     Status.PARTIALLY_DISPENSED.value, Status.DISPENSED.value]))
            .order_by(Prescription.id)).all()
    for rx_id, site in routed:
        if world.rng.random() < 0.05:
            continue
        pharmacist = world.uow(world.pharmacist(site))
        try:
            view = rx.get_prescription(pharmacist, rx_id)
            status = view.prescription.status
            if status == Status.ROUTED.value:
                status = rx.accept(pharmacist, rx_id).prescription.status
            if status == Status.ACCEPTED.value:
                status = rx.prepare(pharmacist, rx_id).prescription.status
            if status in (Status.PREPARED.value, Status.PARTIALLY_DISPENSED.value):
                status = rx.dispense(pharmacist, rx_id).prescription.status
            if status == Status.DISPENSED.value:
                given = sum(d.quantity for d in rx.get_prescription(pharmacist, rx_id).dispenses
                            if d.handed_over_at is None)
                rx.hand_over(pharmacist, rx_id)
                world.results.handed_over_units += given
        except DomainError as error:
            world.results.violations.append(f"{world.today()}: prescription {rx_id} could not be worked: {error}")


def _count_sheets(world: World) -> dict[int, list[tuple[int, int]]]:
    """Each site prints a count sheet of one drug's lots in the morning: (lot, book quantity)."""
    sheets: dict[int, list[tuple[int, int]]] = {}
    with world.session() as session:
        for site in world.sites.values():
            lots = session.execute(select(Lot.id, Lot.quantity, Lot.reserved).where(
                Lot.site_id == site, Lot.quantity > 0).order_by(Lot.drug_id, Lot.id)).all()
            if lots:
                drug_lots = [(lot_id, quantity) for lot_id, quantity, reserved in lots if quantity > reserved]
                if drug_lots:
                    sheets[site] = [world.rng.choice(drug_lots)]
    return sheets


def _record_counts(world: World, sheets: dict[int, list[tuple[int, int]]]) -> None:
    """The sheets come back in the evening, after the day's dispensing: now and then a unit is missing. A lot the
    day emptied of the unit its sheet found missing (the ledger gave what the shelf did not hold) is counted
    again, against its book as it is now, as the service asks."""
    for site, lines in sheets.items():
        counted = [CountLine(book - (1 if world.rng.random() < 0.2 and book > 0 else 0), lot_id=lot_id, book=book)
                   for lot_id, book in lines]
        with world.session() as session:
            now = dict(session.execute(select(Lot.id, Lot.quantity).where(Lot.id.in_([lot for lot, _ in lines]))).all())
        counted = [line if now[line.lot_id] >= (line.book or 0) - line.counted
                   else CountLine(now[line.lot_id], lot_id=line.lot_id, book=now[line.lot_id]) for line in counted]
        try:
            count_stock(world.uow(world.pharmacist(site)), site, counted, "weekly shelf count", release_excess=True)
        except DomainError as error:
            world.results.violations.append(f"{world.today()}: a count at site {site} was refused: {error}")


def _write_off_expired(world: World) -> None:
    today = world.today()
    with world.session() as session:
        expired = session.execute(select(Lot.id, Lot.site_id, Lot.drug_id, Lot.quantity, Lot.reserved).where(
            Lot.quantity > 0, ~Lot.usable_on(today + timedelta(days=1)))).all()  # last day today: off tonight
    for lot_id, site, drug, quantity, reserved in expired:
        if quantity - reserved <= 0:
            continue
        record_movement(world.uow(world.pharmacist(site)), lot_id, MovementKind.EXPIRY_WRITE_OFF,
                        -(quantity - reserved), "expired", note="expired on the shelf")
        world.results.expired_value += (quantity - reserved) * world.price[drug]


# Plans ------------------------------------------------------------------------------------------------------

def _plan(world: World) -> None:
    """The week's plan: the consortium's pooled plan approved as it is, or each site's own plan."""
    database = world.app.extensions["pharmacy_db"]
    settings = plan_runs.PlanSettings.from_config(world.app.config)
    run = plan_runs.start_plan_run(world.uow(world.officer()), horizon_days=HORIZON_DAYS, service_level=0.9,
                                   history_days=HISTORY_DAYS, trigger="command", note="simulated week",
                                   time_limit=20, gap=0.01)
    status = plan_runs.execute_run(database, run.id, world.clock, settings)
    if status != "succeeded":
        world.results.violations.append(f"{world.today()}: plan run {run.id} {status}")
        return
    inputs = plan_runs.plan_inputs(world.uow(world.officer()), run.id)
    world.results.violations.extend(_bought_what_was_covered(world, inputs, run.id))
    world.results.plans += 1
    if world.pooled:
        plan_runs.approve_plan(world.uow(world.officer()), run.id)
    else:
        _each_site_alone(world, inputs)


def _each_site_alone(world: World, inputs: dict[str, Any]) -> None:
    """Every site buys alone: its own plan from the same inputs, at the tiers its own volume reaches, with no
    stock moved between sites; ordered from each supplier outside a plan."""
    problem = problem_from_dict(inputs["problem"])
    by_supplier: dict[int, list[procurement.OrderLine]] = defaultdict(list)
    for code, site_id in inputs["sites"].items():
        alone = replace(problem, demands=tuple(d for d in problem.demands if d.site == code),
                        lots=tuple(lot for lot in problem.lots if lot.site == code), arcs=(),
                        offers=tuple(replace(o, delivery_cost_per_pack={code: o.delivery_cost_per_pack[code]})
                                     for o in problem.offers if code in o.delivery_cost_per_pack))
        if not alone.demands:
            continue
        plan = solve(alone, time_limit=20, gap=0.01, workers=1, baseline=False)
        for purchase in plan.purchases:
            by_supplier[inputs["suppliers"][purchase.supplier]].append(
                procurement.OrderLine(site_id, int(purchase.offer[1:]), purchase.packs))
    for supplier_id, lines in by_supplier.items():
        procurement.place_purchase_order(world.uow(world.officer()), supplier_id, lines, "site alone")


def _bought_what_was_covered(world: World, inputs: dict[str, Any], run_id: int) -> list[str]:
    """Every site and drug the plan buys for, whose demand over the horizon the stock it can count on already
    covers: what it holds now and keeps, what is on order, and what is on its way to it (the plan's own transfers
    too), each usable from the day it is there to the day it expires, recomputed here from the rows (not by the
    service's position)."""
    problem = problem_from_dict(inputs["problem"])
    today = world.today()
    demand = {(inputs["sites"][d.site], inputs["drugs"][d.drug]): d for d in problem.demands}
    stock: dict[tuple[int, int], list[tuple[float, int, int]]] = defaultdict(list)  # (units, from day, through day)

    def day(value: Any) -> int:
        return (date.fromisoformat(str(value)[:10]) - today).days

    with world.session() as session:
        # What the plan itself moves leaves its lot's site and arrives at the other (a site may lend its stock).
        moved: dict[int, float] = defaultdict(float)
        for site, drug, lot_id, units, expiry in session.execute(text(
                "SELECT p.site_id, p.drug_id, p.lot_id, p.units, l.expiry_date FROM plan_lines p JOIN lots l "
                "ON l.id = p.lot_id WHERE p.run_id = :run AND p.kind = 'transfer'"), {"run": run_id}):
            moved[lot_id] += units
            stock[(site, drug)].append((units, 1, day(expiry)))
        for lot_id, site, drug, units, expiry in session.execute(text(
                "SELECT id, site_id, drug_id, quantity - reserved, expiry_date FROM lots WHERE expiry_date >= :today "
                "AND quantity > reserved"), {"today": today}):
            stock[(site, drug)].append((units - moved[lot_id], 0, day(expiry)))
        for site, drug, units, expected in session.execute(text(
                "SELECT l.site_id, l.drug_id, l.units - l.received_units, l.expected_on FROM purchase_order_lines l "
                "JOIN purchase_orders o ON o.id = l.order_id WHERE o.status IN ('open', 'partially_received') "
                "AND l.received_units < l.units AND (o.run_id IS NULL OR o.run_id <> :run)"), {"run": run_id}):
            stock[(site, drug)].append((units, max(0, day(expected or today)), 10**6))
        for site, drug, units, expiry in session.execute(text(
                "SELECT o.to_site_id, p.drug_id, p.shipped - p.received - p.lost, p.expiry_date FROM transfer_parcels "
                "p JOIN transfer_orders o ON o.id = p.order_id WHERE o.status IN ('shipped', 'partially_received')")):
            stock[(site, drug)].append((units, 0, day(expiry)))
        for site, drug, units, expiry in session.execute(text(
                "SELECT o.to_site_id, r.drug_id, r.quantity, l.expiry_date FROM reservations r JOIN transfer_orders o "
                "ON o.id = r.transfer_order_id JOIN lots l ON l.id = r.lot_id WHERE r.status = 'held' "
                "AND o.status = 'requested'")):
            stock[(site, drug)].append((units, 1, day(expiry)))
        lines = session.execute(text(
            "SELECT site_id, drug_id, offer_id, packs, units, price_per_pack FROM plan_lines WHERE run_id = :run "
            "AND kind = 'purchase' AND packs > 0"), {"run": run_id}).all()
    # A site whose stock covers it may still be bought for to lift the pooled order of an offer into a cheaper
    # tier (all-units prices): such a top-up is no re-buying.
    tiers = {int(o.id[1:]): o.tiers for o in problem.offers}
    pooled: dict[int, int] = defaultdict(int)
    for _, _, offer_id, packs, _, _ in lines:
        pooled[offer_id] += packs
    bought: dict[tuple[int, int], int] = defaultdict(int)
    for site, drug, offer_id, packs, units, per_pack in lines:
        reached = max((t for t in tiers[offer_id] if abs(t.price_per_pack - float(per_pack)) < 1e-6),
                      key=lambda t: t.min_packs, default=None)
        if reached is not None and pooled[offer_id] - packs < reached.min_packs:
            continue  # without this line the order would fall below the tier it is priced at
        bought[(site, drug)] += int(units)
    found = []
    for (site, drug), units in bought.items():
        need = demand.get((site, drug))
        if not units or need is None:
            continue
        covered = _covered(stock[(site, drug)], need.daily_usage, need.units, problem.horizon_days)
        if covered >= need.units:
            found.append(f"{today}: plan run {run_id} buys {int(units)} of drug {drug} for site {site}, whose "
                         f"{need.units} units of demand the stock it can count on covers ({covered:.0f})")
    return found


def _covered(stock: list[tuple[float, int, int]], usage: float, need: int, horizon: int) -> float:
    """How much of a site's demand over the horizon (``usage`` a day, ``need`` in all: the rest is safety stock,
    wanted at the end) its stock can meet, each unit used first-expiry first-out between the day it is there and
    the day it expires."""
    left = [[units, start, through] for units, start, through in sorted(stock, key=lambda s: s[2])]
    met = 0.0
    for t in range(horizon):
        wanted = usage
        for source in left:
            if wanted <= 0:
                break
            if source[1] <= t <= source[2] and source[0] > 0:
                take = min(wanted, source[0])
                source[0] -= take
                wanted -= take
                met += take
    at_the_end = sum(units for units, start, through in left if start < horizon and through >= horizon)
    return met + min(max(0.0, need - usage * horizon), at_the_end)


# Checks after every day -------------------------------------------------------------------------------------

def check_day(world: World) -> list[str]:
    """What must hold after every day, proven from the rows."""
    today = world.today()
    found = [f"{today}: lot {m.lot_id} holds {m.quantity}, its movements add up to {m.ledger_sum}, it has "
             f"{m.reserved} reserved and {m.held_sum} held" for m in check_ledger(world.uow())]
    with world.session() as session:
        negative = session.scalar(select(func.count()).select_from(Lot).where(
            (Lot.quantity < 0) | (Lot.reserved < 0) | (Lot.reserved > Lot.quantity)))
        if negative:
            found.append(f"{today}: {negative} lots are negative or hold more than they have")
        open_statuses = [s.value for s in OPEN_STATUSES] + [Status.SCHEDULED.value]
        dead = session.execute(select(Reservation.id, Reservation.cause_type).outerjoin(
            Prescription, Prescription.id == Reservation.prescription_id).outerjoin(
            TransferOrder, TransferOrder.id == Reservation.transfer_order_id).where(
            Reservation.status == "held",
            ((Reservation.cause_type == CauseType.PRESCRIPTION) & Prescription.status.not_in(open_statuses))
            | ((Reservation.cause_type == CauseType.TRANSFER) & (TransferOrder.status != "requested")))).all()
        found += [f"{today}: hold {hold_id} for a {cause.value} that is closed" for hold_id, cause in dead]
        waiting = session.execute(select(Prescription.pharmacy_site_id, PrescriptionItem.drug_id).join(
            PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id).where(
            Prescription.status == Status.AWAITING_STOCK.value).distinct()).all()
        world.results.stockout_days += len(waiting)
    return found


# The quarter ------------------------------------------------------------------------------------------------

def quarter(url: str, size: Size, pooled: bool, *, progress: bool = False) -> Results:
    """Live ``size.days`` days of a consortium on a fresh database at ``url`` and return what they came to."""
    started = time.monotonic()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "simulation", "PLAN_RUNNER": "inline", "PLAN_WORKERS": 1,
                      "TRANSFER_MAX_KM": 15.0})
    database = app.extensions["pharmacy_db"]
    if database.is_postgresql:
        rebuild(database.engine)
    else:
        upgrade(database.engine)
    world = build(app, size, pooled)
    world.last_day = world.today() + timedelta(days=size.days - 1)
    for day in range(size.days):
        live_day(world, day)
        world.results.violations.extend(check_day(world))
        if progress and day % 10 == 9:
            print(f"  {'pooled' if pooled else 'alone '}: day {day + 1} of {size.days}", flush=True)
        world.clock.advance(days=1)
    _totals(world)
    world.results.seconds = time.monotonic() - started
    database.dispose()
    return world.results


def _totals(world: World) -> None:
    with world.session() as session:
        orders = session.execute(select(func.count(), func.coalesce(func.sum(PurchaseOrder.total), 0)).where(
            PurchaseOrder.status != "cancelled")).one()
        world.results.purchase_orders, world.results.purchase_cost = int(orders[0]), float(orders[1])
        moved = session.execute(select(TransferParcel.drug_id, func.sum(TransferParcel.shipped)).group_by(
            TransferParcel.drug_id)).all()
        world.results.transfers = session.scalar(select(func.count()).select_from(TransferOrder).where(
            TransferOrder.status.in_(["shipped", "partially_received", "received"]))) or 0
        world.results.transferred_units = sum(int(units) for _, units in moved)
        world.results.transferred_value = sum(int(units) * world.price[drug] for drug, units in moved)


def report(pooled: Results, alone: Results, size: Size) -> str:
    rows = [("fill rate (units handed over / prescribed)", f"{pooled.fill_rate:.1%}", f"{alone.fill_rate:.1%}"),
            ("stock-out days (site x drug with a prescription waiting)", pooled.stockout_days, alone.stockout_days),
            ("expired stock written off (yuan)", f"{pooled.expired_value:,.2f}", f"{alone.expired_value:,.2f}"),
            ("purchase cost (yuan)", f"{pooled.purchase_cost:,.2f}", f"{alone.purchase_cost:,.2f}"),
            ("purchase orders", pooled.purchase_orders, alone.purchase_orders),
            ("transfers made", pooled.transfers, alone.transfers),
            ("units transferred (value, yuan)", f"{pooled.transferred_units} ({pooled.transferred_value:,.2f})",
             f"{alone.transferred_units} ({alone.transferred_value:,.2f})"),
            ("plans run", pooled.plans, alone.plans),
            ("days with a broken check", len(pooled.violations), len(alone.violations)),
            ("seconds", f"{pooled.seconds:.0f}", f"{alone.seconds:.0f}")]
    width = max(len(r[0]) for r in rows)
    lines = [f"{size.days} days, {size.sites} dispensing sites, {size.drugs} drugs, seed {size.seed}",
             f"{'':<{width}}  {'pooled plan':>16}  {'each site alone':>16}"]
    lines += [f"{label:<{width}}  {a!s:>16}  {b!s:>16}" for label, a, b in rows]
    return "\n".join(lines)


def main() -> None:
    size = Size(int(os.environ.get("SIM_DAYS", 90)), int(os.environ.get("SIM_SITES", 17)),
                int(os.environ.get("SIM_DRUGS", 15)), int(os.environ.get("SIM_SEED", 2027)))
    url = os.environ.get("DATABASE_URL", "")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for pooled in (True, False):
            where = url if url.startswith("postgres") else f"sqlite:///{folder}/{'pooled' if pooled else 'alone'}.db"
            results[pooled] = quarter(where, size, pooled, progress=True)
    print(report(results[True], results[False], size))
    for result in results.values():
        for violation in result.violations[:20]:
            print(f"  {'pooled' if result.pooled else 'alone'}: {violation}")
    if any(r.violations for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
