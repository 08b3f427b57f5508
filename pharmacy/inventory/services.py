"""Use cases of lot-level stock: receipts, movements, reversals, reservations, dispensing, counts.

Every change of a lot goes through :func:`_move`, which writes the ledger movement and the lot's
quantity together, under the lot's row lock. Locks are always taken in lot-id order, so two
transactions touching the same lots cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select

from pharmacy.catalog.models import Drug
from pharmacy.consortium.models import Site
from pharmacy.errors import Conflict, Message, OutOfStock, ValidationFailed
from pharmacy.inventory.domain import (
    MANUAL_KINDS,
    Allocation,
    CauseType,
    LotStock,
    MovementKind,
    allocate_fefo,
    check_lot_total,
    check_movement,
    is_usable,
)
from pharmacy.inventory.models import Lot, Movement, Reservation, Stocktake
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.unit_of_work import UnitOfWork

HELD, CONSUMED, RELEASED = "held", "consumed", "released"


@dataclass(frozen=True)
class Cause:
    """What caused a movement or a reservation: a prescription, a transfer, a purchase order, a count."""

    type: CauseType
    id: str


def _move(uow: UnitOfWork, lot: Lot, kind: MovementKind, quantity: int, reason_code: str, *,
          note: str = "", cause: Cause | None = None, reverses_id: int | None = None,
          releases_reserved: int = 0) -> Movement:
    """Write one movement and apply it to its (locked) lot; the only place stock changes."""
    check_movement(kind, reason_code, quantity)
    check_lot_total(lot.lot_number, lot.quantity, quantity)
    new_quantity = lot.quantity + quantity
    new_reserved = lot.reserved - releases_reserved
    if new_quantity < 0:
        raise OutOfStock(Message("lot %(lot)s holds %(on_hand)s; it cannot lose %(units)s", lot=lot.lot_number,
                                 on_hand=lot.quantity, units=-quantity),
                         {"lot_id": lot.id, "on_hand": lot.quantity})
    if new_quantity < new_reserved:
        raise OutOfStock(Message(
            "lot %(lot)s holds %(on_hand)s of which %(reserved)s are reserved; it cannot lose %(units)s unless "
            "reservations are released", lot=lot.lot_number, on_hand=lot.quantity, reserved=lot.reserved,
            units=-quantity),
            {"lot_id": lot.id, "on_hand": lot.quantity, "reserved": lot.reserved})
    lot.quantity, lot.reserved = new_quantity, new_reserved
    movement = Movement(
        consortium_id=lot.consortium_id, lot_id=lot.id, site_id=lot.site_id, drug_id=lot.drug_id,
        kind=kind.value, quantity=quantity, reason_code=reason_code, note=note, actor=uow.principal.label,
        cause_type=cause.type.value if cause else None, cause_id=cause.id if cause else None,
        reverses_id=reverses_id, at=uow.now(),
    )
    uow.session.add(movement)
    return movement


def _active_drug(uow: UnitOfWork, drug_id: int) -> Drug:
    drug = uow.get(Drug, drug_id, what="drug")
    if not drug.active:
        raise ValidationFailed(Message("drug %(drug)s is retired", drug=drug.code), {"drug_id": drug_id})
    return drug


def _lock_lots(uow: UnitOfWork, site_id: int, drug_id: int) -> list[Lot]:
    return list(uow.session.scalars(
        select(Lot).where(Lot.site_id == site_id, Lot.drug_id == drug_id).order_by(Lot.id).with_for_update()
        # A lock is only worth its fresh values: refresh rows this session may have loaded before.
        .execution_options(populate_existing=True)))


def _stock(lot: Lot) -> LotStock:
    return LotStock(lot.id, lot.lot_number, lot.expiry_date, lot.quantity, lot.reserved)


# Receipts and manual movements -----------------------------------------------------------------

def receive_stock(uow: UnitOfWork, site_id: int, drug_id: int, lot_number: str, expiry_date: date,
                  quantity: int, *, unit: str = "unit", reason_code: str = "purchase", note: str = "",
                  cause: Cause | None = None, kind: MovementKind = MovementKind.RECEIPT) -> Movement:
    """Receive a lot (new, or more of a known one) at a site; quantities in packs are multiplied out.

    ``kind`` is a receipt from a supplier, or the arrival of a transfer from another member.
    """
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        uow.get(Site, site_id, what="site")
        drug = _active_drug(uow, drug_id)
        if expiry_date <= uow.today():
            raise ValidationFailed(Message("lot %(lot)s expired on %(day)s: it cannot be received", lot=lot_number,
                                           day=expiry_date.isoformat()),
                                   {"expiry_date": expiry_date.isoformat()})
        units = quantity * drug.pack_size if unit == "pack" else quantity
        lot = uow.session.scalars(select(Lot).where(
            Lot.site_id == site_id, Lot.drug_id == drug_id, Lot.lot_number == lot_number).with_for_update()).first()
        if lot is None:
            lot = Lot(consortium_id=drug.consortium_id, site_id=site_id, drug_id=drug_id, lot_number=lot_number,
                      expiry_date=expiry_date, quantity=0, reserved=0)
            uow.session.add(lot)
            uow.session.flush()
        elif lot.expiry_date != expiry_date:
            raise Conflict(Message("lot %(lot)s is known here with expiry %(known)s, not %(day)s", lot=lot_number,
                                   known=lot.expiry_date.isoformat(), day=expiry_date.isoformat()),
                           {"expiry_date": expiry_date.isoformat()})
        movement = _move(uow, lot, kind, units, reason_code, note=note, cause=cause)
        uow.commit()
        return movement


def record_movement(uow: UnitOfWork, lot_id: int, kind: MovementKind, quantity: int, reason_code: str, *,
                    note: str = "", cause: Cause | None = None) -> Movement:
    """Record a write-off, a return, a transfer or a count adjustment on one lot of the caller's site."""
    if kind not in MANUAL_KINDS:
        raise ValidationFailed(f"a {kind.value} is not recorded by hand here; allowed kinds: "
                               + ", ".join(sorted(k.value for k in MANUAL_KINDS)), {"kind": kind.value})
    with uow:
        lot = uow.get_acting(Lot, lot_id, for_update=True, what="lot")
        movement = _move(uow, lot, kind, quantity, reason_code, note=note,
                         cause=cause or Cause(CauseType.MANUAL, str(lot.id)))
        uow.commit()
        return movement


def reverse_movement(uow: UnitOfWork, movement_id: int, note: str) -> Movement:
    """Undo a mistaken movement with an equal and opposite one; the original stays on the ledger."""
    with uow:
        original = uow.get(Movement, movement_id, what="movement")
        lot = uow.get_acting(Lot, original.lot_id, for_update=True, what="lot")
        if original.kind == MovementKind.REVERSAL:
            raise Conflict(f"movement {movement_id} is itself a reversal; record a new movement instead")
        if uow.session.scalars(select(Movement.id).where(Movement.reverses_id == movement_id)).first():
            raise Conflict(f"movement {movement_id} has already been reversed")
        reversal = _move(uow, lot, MovementKind.REVERSAL, -original.quantity, "entry_error", note=note,
                         cause=Cause(CauseType(original.cause_type), original.cause_id)
                         if original.cause_type and original.cause_id else None, reverses_id=original.id)
        uow.commit()
        return reversal


# Reservations and dispensing -------------------------------------------------------------------

def hold_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, supply_until: date,
               cause: Cause) -> list[Reservation]:
    """Reserve ``quantity`` units first-expiry first-out for ``cause``.

    No site check here: routing reserves at the pharmacy it chose on the prescriber's behalf. Entry
    points that act for a site (:func:`reserve_stock`) check it.
    """
    with uow:
        drug = _active_drug(uow, drug_id)
        lots = _lock_lots(uow, site_id, drug_id)
        by_id = {lot.id: lot for lot in lots}
        allocations = allocate_fefo([_stock(lot) for lot in lots], quantity, uow.today(), supply_until,
                                    drug=drug.code)
        reservations = []
        for allocation in allocations:
            lot = by_id[allocation.lot_id]
            lot.reserved += allocation.quantity
            reservation = Reservation(
                consortium_id=lot.consortium_id, lot_id=lot.id, site_id=site_id, drug_id=drug_id,
                quantity=allocation.quantity, status=HELD, cause_type=cause.type.value, cause_id=cause.id,
                supply_until=supply_until, created_at=uow.now())
            uow.session.add(reservation)
            reservations.append(reservation)
        uow.commit()
        return reservations


def reserve_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, supply_until: date,
                  cause: Cause) -> list[Reservation]:
    """Reserve stock at the caller's own site."""
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        uow.get(Site, site_id, what="site")
        reservations = hold_stock(uow, site_id, drug_id, quantity, supply_until, cause)
        uow.commit()
        return reservations


def _held(uow: UnitOfWork, cause: Cause, site_id: int | None = None, drug_id: int | None = None) -> list[Reservation]:
    stmt = select(Reservation).where(Reservation.cause_type == cause.type.value, Reservation.cause_id == cause.id,
                                     Reservation.status == HELD)
    if site_id is not None:
        stmt = stmt.where(Reservation.site_id == site_id)
    if drug_id is not None:
        stmt = stmt.where(Reservation.drug_id == drug_id)
    return list(uow.session.scalars(stmt.order_by(Reservation.lot_id).execution_options(populate_existing=True)))


def held_for(uow: UnitOfWork, cause: Cause) -> list[tuple[Reservation, Lot]]:
    """Stock held for a cause, lot by lot (first-expiry first-out order): what a dispense would take."""
    with uow:
        return [(r, uow.get(Lot, r.lot_id)) for r in sorted(_held(uow, cause), key=lambda r: r.lot_id)]


def _lock(uow: UnitOfWork, lot_ids: Sequence[int]) -> dict[int, Lot]:
    if not lot_ids:
        return {}
    lots = uow.session.scalars(select(Lot).where(Lot.id.in_(sorted(set(lot_ids)))).order_by(Lot.id)
                               .with_for_update().execution_options(populate_existing=True))
    return {lot.id: lot for lot in lots}


def release_stock(uow: UnitOfWork, cause: Cause, *, site_id: int | None = None, drug_id: int | None = None) -> int:
    """Release every reservation held for ``cause`` (at a site, of a drug); returns the units released."""
    with uow:
        held = _held(uow, cause, site_id, drug_id)
        lots = _lock(uow, [r.lot_id for r in held])
        # Re-read under the locks: another transaction may have consumed or released them meanwhile.
        held = [r for r in _held(uow, cause, site_id, drug_id) if r.lot_id in lots]
        released = 0
        for reservation in held:
            lots[reservation.lot_id].reserved -= reservation.quantity
            reservation.status, reservation.closed_at = RELEASED, uow.now()
            released += reservation.quantity
        uow.commit()
        return released


def release_reservation(uow: UnitOfWork, reservation_id: int) -> Reservation:
    """Release one reservation of the caller's site."""
    with uow:
        reservation = uow.get_acting(Reservation, reservation_id, what="reservation")
        lot = _lock(uow, [reservation.lot_id])[reservation.lot_id]
        uow.session.refresh(reservation)
        if reservation.status != HELD:
            raise Conflict(f"reservation {reservation_id} is already {reservation.status}")
        lot.reserved -= reservation.quantity
        reservation.status, reservation.closed_at = RELEASED, uow.now()
        uow.commit()
        return reservation


@dataclass(frozen=True)
class LotChoice:
    lot_id: int
    quantity: int


def dispense_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, supply_until: date, cause: Cause,
                   *, lots: Sequence[LotChoice] | None = None, lot_reason: str = "") -> list[Movement]:
    """Dispense ``quantity`` units for ``cause`` at a site.

    By default the stock held for the cause is used first, then more is taken first-expiry first-out.
    Naming other ``lots`` needs a ``lot_reason``; each named lot must still last until ``supply_until``.
    What is left of the cause's reservations for this drug stays held (a partial dispense).
    """
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        drug = uow.get(Drug, drug_id, what="drug")
        if quantity <= 0:
            raise ValidationFailed(Message("the quantity to dispense must be positive"), {"quantity": quantity})
        if lots and not lot_reason.strip():
            raise ValidationFailed(Message("dispensing from other lots than first-expiry first-out needs a reason"),
                                   {"lot_reason": "required"})
        all_lots = {lot.id: lot for lot in _lock_lots(uow, site_id, drug_id)}
        held = _held(uow, cause, site_id, drug_id)
        today = uow.today()
        plan = _choose_lots(all_lots, held, quantity, today, supply_until, lots, drug.code)
        movements = []
        held_by_lot: dict[int, list[Reservation]] = {}
        for reservation in held:
            held_by_lot.setdefault(reservation.lot_id, []).append(reservation)
        for allocation in plan:
            lot = all_lots[allocation.lot_id]
            consumed = _consume(uow, held_by_lot.get(lot.id, []), allocation.quantity)
            note = lot_reason if lots else ""
            movements.append(_move(uow, lot, MovementKind.DISPENSE, -allocation.quantity, "prescription",
                                   note=note, cause=cause, releases_reserved=consumed))
        uow.commit()
        return movements


def _choose_lots(all_lots: dict[int, Lot], held: list[Reservation], quantity: int, today: date, supply_until: date,
                 chosen: Sequence[LotChoice] | None, drug_code: str) -> list[Allocation]:
    held_per_lot: dict[int, int] = {}
    for reservation in held:
        held_per_lot[reservation.lot_id] = held_per_lot.get(reservation.lot_id, 0) + reservation.quantity
    # Stock held for this very cause counts as available to it.
    stocks = [LotStock(lot.id, lot.lot_number, lot.expiry_date, lot.quantity,
                       lot.reserved - held_per_lot.get(lot.id, 0)) for lot in all_lots.values()]
    if not chosen:
        own_first = sorted((s for s in stocks if held_per_lot.get(s.lot_id)), key=lambda s: (s.expiry_date, s.lot_id))
        plan: list[Allocation] = []
        remaining = quantity
        for stock in own_first:
            if remaining == 0:
                break
            take = min(held_per_lot[stock.lot_id], remaining)
            if is_usable(stock, today, supply_until):
                plan.append(Allocation(stock.lot_id, stock.lot_number, stock.expiry_date, take))
                remaining -= take
        if remaining:
            taken = {a.lot_id: a.quantity for a in plan}
            rest = [LotStock(s.lot_id, s.lot_number, s.expiry_date, s.on_hand, s.reserved + taken.get(s.lot_id, 0))
                    for s in stocks]
            plan.extend(allocate_fefo(rest, remaining, today, supply_until, drug=drug_code))
        return _merge(plan)
    if sum(c.quantity for c in chosen) != quantity:
        raise ValidationFailed(Message("the chosen lots add up to %(chosen)s, not %(quantity)s",
                                       chosen=sum(c.quantity for c in chosen), quantity=quantity),
                               {"lots": "quantities must add up to the quantity dispensed"})
    by_id = {s.lot_id: s for s in stocks}
    plan = []
    for choice in chosen:
        found = by_id.get(choice.lot_id)
        if found is None:
            raise ValidationFailed(Message("lot %(lot)s is not stock of drug %(drug)s at this site",
                                           lot=choice.lot_id, drug=drug_code),
                                   {"lots": choice.lot_id})
        stock = found
        if not is_usable(stock, today, supply_until):
            raise ValidationFailed(Message("lot %(lot)s expires on %(day)s, before the supply ends on %(until)s",
                                           lot=stock.lot_number, day=stock.expiry_date.isoformat(),
                                           until=supply_until.isoformat()), {"lots": choice.lot_id})
        if choice.quantity <= 0 or choice.quantity > stock.available:
            raise OutOfStock(Message("lot %(lot)s has %(available)s available, not %(quantity)s",
                                     lot=stock.lot_number, available=stock.available, quantity=choice.quantity),
                             {"lots": choice.lot_id})
        plan.append(Allocation(stock.lot_id, stock.lot_number, stock.expiry_date, choice.quantity))
    return _merge(plan)


def _merge(plan: list[Allocation]) -> list[Allocation]:
    merged: dict[int, Allocation] = {}
    for a in plan:
        prev = merged.get(a.lot_id)
        merged[a.lot_id] = a if prev is None else Allocation(a.lot_id, a.lot_number, a.expiry_date,
                                                              prev.quantity + a.quantity)
    return sorted(merged.values(), key=lambda a: a.lot_id)


def _consume(uow: UnitOfWork, held: list[Reservation], quantity: int) -> int:
    """Use up to ``quantity`` of the reservations on one lot; returns how many reserved units that frees.

    A reservation used in part keeps holding the rest, and the used part is kept as a consumed record.
    """
    consumed = 0
    for reservation in held:
        if consumed == quantity:
            break
        take = min(reservation.quantity, quantity - consumed)
        if take == reservation.quantity:
            reservation.status, reservation.closed_at = CONSUMED, uow.now()
        else:
            reservation.quantity -= take
            uow.session.add(Reservation(
                consortium_id=reservation.consortium_id, lot_id=reservation.lot_id, site_id=reservation.site_id,
                drug_id=reservation.drug_id, quantity=take, status=CONSUMED, cause_type=reservation.cause_type,
                cause_id=reservation.cause_id, supply_until=reservation.supply_until, created_at=uow.now(),
                closed_at=uow.now()))
        consumed += take
    return consumed


def send_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, reason_code: str, cause: Cause, *,
               lot_id: int | None = None, usable_until: date | None = None) -> list[tuple[Lot, Movement]]:
    """Take ``quantity`` units of a drug off a site's shelf to send to another member: from the named lot,
    or first-expiry first-out among lots that last until ``usable_until``. Reserved stock never leaves."""
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        drug = uow.get(Drug, drug_id, what="drug")
        lots = {lot.id: lot for lot in _lock_lots(uow, site_id, drug_id)}
        today = uow.today()
        if lot_id is not None:
            lot = lots.get(lot_id)
            if lot is None:
                raise ValidationFailed(Message("lot %(lot)s is not stock of %(drug)s at site %(site)s", lot=lot_id,
                                               drug=drug.code, site=site_id),
                                       {"lot_id": lot_id})
            if lot.expiry_date <= today:
                raise ValidationFailed(Message("lot %(lot)s expired on %(day)s: it cannot be sent",
                                               lot=lot.lot_number, day=lot.expiry_date.isoformat()),
                                       {"lot_id": lot_id})
            plan = [Allocation(lot.id, lot.lot_number, lot.expiry_date, quantity)]
        else:
            plan = allocate_fefo([_stock(lot) for lot in lots.values()], quantity, today,
                                 usable_until or today, drug=drug.code)
        sent = []
        for allocation in plan:
            lot = lots[allocation.lot_id]
            sent.append((lot, _move(uow, lot, MovementKind.TRANSFER_OUT, -allocation.quantity, reason_code,
                                    cause=cause)))
        uow.commit()
        return sent


# Stocktake ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountLine:
    counted: int
    lot_id: int | None = None
    drug_id: int | None = None
    lot_number: str | None = None
    expiry_date: date | None = None


def record_stocktake(uow: UnitOfWork, site_id: int, lines: Sequence[CountLine], note: str = "") -> Stocktake:
    """Record counted quantities at a site; every difference becomes a count-adjustment movement.

    A line names a known lot, or a drug, lot number and expiry for a lot found on the shelf that the
    ledger does not know. A count below what is reserved is refused, and then nothing is written.
    """
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        site = uow.get(Site, site_id, what="site")
        stocktake = Stocktake(consortium_id=site.consortium_id, site_id=site_id, counted_by=uow.principal.label,
                              note=note, at=uow.now())
        uow.session.add(stocktake)
        uow.session.flush()
        cause = Cause(CauseType.COUNT, str(stocktake.id))
        known = _lock(uow, [line.lot_id for line in lines if line.lot_id is not None])
        problems: list[dict[str, Any]] = []
        seen: set[int] = set()
        adjusted = 0
        for index, line in enumerate(lines):
            lot = known.get(line.lot_id) if line.lot_id is not None else _found_lot(uow, site_id, line, index, problems)
            if lot is None:
                if line.lot_id is not None:
                    problems.append({"line": index, "reason": Message("lot %(lot)s not found", lot=line.lot_id)})
                continue
            if lot.site_id != site_id:
                problems.append({"line": index, "reason": Message("lot %(lot)s is stock of another site",
                                                                  lot=lot.id)})
                continue
            if lot.id in seen:
                problems.append({"line": index, "reason": Message("lot %(lot)s is counted twice", lot=lot.id)})
                continue
            seen.add(lot.id)
            if line.counted < lot.reserved:
                problems.append({"line": index, "reason": Message(
                    "lot %(lot)s counted %(counted)s but %(reserved)s are reserved; release them first",
                    lot=lot.lot_number, counted=line.counted, reserved=lot.reserved)})
                continue
            difference = line.counted - lot.quantity
            if difference:
                _move(uow, lot, MovementKind.COUNT_ADJUSTMENT, difference, "count_difference",
                      note=f"stocktake {stocktake.id}", cause=cause)
                adjusted += 1
        if problems:
            raise ValidationFailed(Message("%(count)s count lines cannot be applied; nothing was recorded",
                                           count=len(problems)),
                                   problems)
        stocktake.lines_counted, stocktake.lines_adjusted = len(lines), adjusted
        uow.commit()
        return stocktake


def _found_lot(uow: UnitOfWork, site_id: int, line: CountLine, index: int,
               problems: list[dict[str, Any]]) -> Lot | None:
    if line.drug_id is None or not line.lot_number or line.expiry_date is None:
        problems.append({"line": index, "reason": Message("name a lot_id, or drug_id, lot_number and expiry_date")})
        return None
    drug = uow.get(Drug, line.drug_id, what="drug")
    lot = uow.session.scalars(select(Lot).where(Lot.site_id == site_id, Lot.drug_id == drug.id,
                                                Lot.lot_number == line.lot_number).with_for_update()).first()
    if lot is None:
        lot = Lot(consortium_id=drug.consortium_id, site_id=site_id, drug_id=drug.id, lot_number=line.lot_number,
                  expiry_date=line.expiry_date, quantity=0, reserved=0)
        uow.session.add(lot)
        uow.session.flush()
    return lot


# Reads ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StockLevel:
    site_id: int
    drug_id: int
    on_hand: int
    reserved: int
    usable: int
    expired: int
    near_expiry: int
    lots: int


def stock_levels(uow: UnitOfWork, page: PageRequest, *, site_id: int | None = None, drug_id: int | None = None,
                 near_expiry_days: int = 90) -> Page[StockLevel]:
    """Stock per site and drug: on hand, reserved, usable (unexpired, unreserved), expired, near expiry."""
    with uow:
        today = uow.today()
        horizon = today + timedelta(days=near_expiry_days)
        unexpired = Lot.expiry_date >= today
        stmt = select(
            Lot.site_id, Lot.drug_id, func.sum(Lot.quantity), func.sum(Lot.reserved),
            func.sum(case((unexpired, Lot.quantity - Lot.reserved), else_=0)),
            func.sum(case((unexpired, 0), else_=Lot.quantity)),
            func.sum(case((and_(unexpired, Lot.expiry_date <= horizon), Lot.quantity), else_=0)),
            func.count(Lot.id),
        ).where(Lot.quantity > 0).group_by(Lot.site_id, Lot.drug_id).order_by(Lot.site_id, Lot.drug_id)
        if site_id is not None:
            stmt = stmt.where(Lot.site_id == site_id)
        if drug_id is not None:
            stmt = stmt.where(Lot.drug_id == drug_id)
        total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = uow.session.execute(stmt.limit(page.page_size).offset((page.page - 1) * page.page_size)).all()
        return Page([StockLevel(*(int(v) for v in row)) for row in rows], total)


def stock_card(uow: UnitOfWork, lot_id: int) -> tuple[Lot, list[Movement]]:
    """A lot and every movement of it, in order."""
    with uow:
        lot = uow.get(Lot, lot_id, what="lot")
        movements = list(uow.session.scalars(select(Movement).where(Movement.lot_id == lot_id).order_by(Movement.id)))
        return lot, movements


def near_expiry_lots(uow: UnitOfWork, page: PageRequest, days: int, *, site_id: int | None = None) -> Page[Lot]:
    """Lots with stock that expire within ``days`` (and have not expired), soonest first."""
    with uow:
        today = uow.today()
        stmt = select(Lot).where(Lot.quantity > 0, Lot.expiry_date >= today,
                                 Lot.expiry_date <= today + timedelta(days=days))
        if site_id is not None:
            stmt = stmt.where(Lot.site_id == site_id)
        return fetch_page(uow.session, stmt.order_by(Lot.expiry_date, Lot.site_id, Lot.id), page)


def list_lots(uow: UnitOfWork, page: PageRequest, *, site_id: int | None = None, drug_id: int | None = None,
              include_empty: bool = False) -> Page[Lot]:
    with uow:
        stmt = select(Lot)
        if site_id is not None:
            stmt = stmt.where(Lot.site_id == site_id)
        if drug_id is not None:
            stmt = stmt.where(Lot.drug_id == drug_id)
        if not include_empty:
            stmt = stmt.where(Lot.quantity > 0)
        return fetch_page(uow.session, stmt.order_by(Lot.site_id, Lot.drug_id, Lot.expiry_date, Lot.id), page)


@dataclass(frozen=True)
class LedgerMismatch:
    lot_id: int
    quantity: int
    ledger_sum: int
    reserved: int
    held_sum: int


def check_ledger(uow: UnitOfWork) -> list[LedgerMismatch]:
    """Every lot whose quantity differs from the sum of its movements, or whose reserved count differs
    from its held reservations. An empty list proves the ledger for every lot the caller can see."""
    with uow:
        moved = (select(Movement.lot_id, func.sum(Movement.quantity).label("total"))
                 .group_by(Movement.lot_id).subquery())
        held = (select(Reservation.lot_id, func.sum(Reservation.quantity).label("total"))
                .where(Reservation.status == HELD).group_by(Reservation.lot_id).subquery())
        ledger_sum = func.coalesce(moved.c.total, 0)
        held_sum = func.coalesce(held.c.total, 0)
        stmt = (select(Lot.id, Lot.quantity, ledger_sum, Lot.reserved, held_sum)
                .outerjoin(moved, moved.c.lot_id == Lot.id).outerjoin(held, held.c.lot_id == Lot.id)
                .where((Lot.quantity != ledger_sum) | (Lot.reserved != held_sum)).order_by(Lot.id))
        return [LedgerMismatch(*(int(v) for v in row)) for row in uow.session.execute(stmt)]
