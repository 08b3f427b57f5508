"""Use cases of lot-level stock: receipts, movements, reversals, reservations, dispensing, counts.

Every change of a lot goes through :func:`_move`, which writes the ledger movement and the lot's
quantity together, under the lot's row lock. Locks on lots are taken in lot-id order, and a use case that
touches several drugs at a site locks all their lots in one statement first (:func:`lock_stock`), so two
transactions touching the same lots in any order of drugs cannot deadlock. Routing that finds its pharmacy's stock
taken meanwhile routes again in a new transaction rather than hold at the next pharmacy with the first one's lots
still locked (see ``_routed_afresh`` in :mod:`pharmacy.prescriptions.services`); only its last attempt does that,
and a cycle it meets there is broken by the database and the request run again (:mod:`pharmacy.retries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.exc import IntegrityError

from pharmacy.catalog.models import Drug
from pharmacy.catalog.services import drug_matches
from pharmacy.clock import local_text
from pharmacy.consortium.models import Site
from pharmacy.db import contains
from pharmacy.errors import Conflict, DomainError, Message, OutOfStock, ValidationFailed
from pharmacy.inventory.domain import (
    MANUAL_KINDS,
    OUTSIDE_ORDER_RECEIPTS,
    WRITE_OFF_REASONS,
    Allocation,
    Cause,
    CauseType,
    LotStock,
    MovementKind,
    allocate_fefo,
    check_lot_total,
    check_movement,
    is_usable,
    normalise_lot_number,
    usable_on,
)
from pharmacy.inventory.models import Lot, Movement, Reservation, Stocktake, TraceCode, TraceCodeDispense
from pharmacy.inventory.trace_codes import ScannedCode, assign_to_lots, packs_for, read_trace_code
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.unit_of_work import UnitOfWork

HELD, CONSUMED, RELEASED = "held", "consumed", "released"
Locking = TypeVar("Locking", bound=Select)

__all__ = ["Cause"]  # the cause of a movement or a hold, kept where its users have always imported it from


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
    return lock_stock(uow, site_id, [drug_id]).get(drug_id, [])


def lock_stock(uow: UnitOfWork, site_id: int, drug_ids: Sequence[int]) -> dict[int, list[Lot]]:
    """Lock every lot of ``drug_ids`` at a site, in lot-id order, in one statement; the lots by drug.

    A use case that will hold, dispense or move several drugs at a site calls this first: locking drug by drug
    in the order a prescription lists them would let two prescriptions listing the same drugs in opposite
    orders each wait for the other. Locking again rows a transaction holds costs nothing.
    """
    by_drug: dict[int, list[Lot]] = {drug_id: [] for drug_id in drug_ids}
    if not drug_ids:
        return by_drug
    for lot in uow.session.scalars(_locking(select(Lot), site_id, drug_ids).order_by(Lot.id)):
        by_drug[lot.drug_id].append(lot)
    return by_drug


def lock_stock_held_for(uow: UnitOfWork, site_id: int, drug_ids: Sequence[int], cause: Cause
                        ) -> tuple[dict[int, list[Lot]], dict[int, list[Reservation]]]:
    """:func:`lock_stock`, and what ``cause`` holds on the lots it locks, by drug, in the same statement (for a
    dispense, which takes what is held for it first: see :func:`dispense_stock`)."""
    by_drug: dict[int, list[Lot]] = {drug_id: [] for drug_id in drug_ids}
    held: dict[int, list[Reservation]] = {drug_id: [] for drug_id in drug_ids}
    if not drug_ids or not cause.may_hold:
        return lock_stock(uow, site_id, drug_ids), held
    stmt = select(Lot, Reservation).outerjoin(Reservation, and_(
        Reservation.lot_id == Lot.id, Reservation.held_for(cause), Reservation.status == HELD))
    seen: set[int] = set()
    for lot, reservation in uow.session.execute(
            _locking(stmt, site_id, drug_ids, of=Lot).order_by(Lot.id, Reservation.id)):
        if lot.id not in seen:
            seen.add(lot.id)
            by_drug[lot.drug_id].append(lot)
        if reservation is not None:
            held[lot.drug_id].append(reservation)
    return by_drug, held


def _locking(stmt: Locking, site_id: int, drug_ids: Sequence[int], of: Any = None) -> Locking:
    """``stmt`` of a site's lots of ``drug_ids``, locking them (``of``: the lots alone, in a join)."""
    return (stmt.where(Lot.site_id == site_id, Lot.drug_id.in_(sorted(set(drug_ids))))
            .with_for_update(of=of)
            # A lock is only worth its fresh values: refresh rows this session may have loaded before.
            .execution_options(populate_existing=True))


# Receipts and manual movements -----------------------------------------------------------------

def receive_stock(uow: UnitOfWork, site_id: int, drug_id: int, lot_number: str, expiry_date: date,
                  quantity: int, *, unit: str = "unit", reason_code: str = "purchase", note: str = "",
                  cause: Cause | None = None, kind: MovementKind = MovementKind.RECEIPT,
                  trace_codes: Sequence[str] = (), codes_where: str = "trace_codes") -> Movement:
    """Receive a lot (new, or more of a known one) at a site; quantities in packs are multiplied out.

    ``kind`` is a receipt from a supplier, the arrival of a transfer from another member, or a return (a patient's,
    outside any order). The packs' ``trace_codes`` scanned in become the lot's (see :func:`take_in_trace_codes`).
    """
    scanned = read_trace_codes({codes_where: trace_codes}).get(codes_where, []) if trace_codes else []
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        uow.get(Site, site_id, what="site")
        drug = _active_drug(uow, drug_id)
        if not usable_on(expiry_date, uow.today()):
            raise ValidationFailed(Message("lot %(lot)s expired on %(day)s: it cannot be received", lot=lot_number,
                                           day=expiry_date.isoformat()),
                                   {"expiry_date": expiry_date.isoformat()})
        units = quantity * drug.pack_size if unit == "pack" else quantity
        lot_number = normalise_lot_number(lot_number)
        if not lot_number:
            raise ValidationFailed(Message("the lot number printed on the goods is needed"), {"lot_number": "required"})
        lot = _lot_to_receive(uow, drug, site_id, lot_number, expiry_date)
        if lot.expiry_date != expiry_date:
            raise Conflict(Message("lot %(lot)s is known here with expiry %(known)s, not %(day)s", lot=lot_number,
                                   known=lot.expiry_date.isoformat(), day=expiry_date.isoformat()),
                           {"expiry_date": expiry_date.isoformat()})
        movement = _move(uow, lot, kind, units, reason_code, note=note, cause=cause)
        if scanned:
            take_in_trace_codes(uow, lot, units, scanned, where=codes_where)
        uow.commit()
        return movement


# Trace codes (药品追溯码) -------------------------------------------------------------------------------

def read_trace_codes(scans: Mapping[str, Sequence[str]]) -> dict[str, list[ScannedCode]]:
    """Every scan read as a trace code, by where it was sent; all that cannot be read, or are scanned twice, are
    refused at once, each named where it is."""
    read: dict[str, list[ScannedCode]] = {}
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for where, typed in scans.items():
        for n, raw in enumerate(typed):
            try:
                code = read_trace_code(raw)
            except ValidationFailed as error:
                problems.append({"field": f"{where}[{n}]", "reason": error.message})
                continue
            if code.code in seen:
                problems.append({"field": f"{where}[{n}]",
                                 "reason": Message("trace code %(code)s is scanned twice", code=code.code)})
                continue
            seen.add(code.code)
            read.setdefault(where, []).append(code)
    if problems:
        raise ValidationFailed(Message("%(count)s trace codes cannot be taken; nothing was done", count=len(problems)),
                               problems)
    return read


def _dispensed(uow: UnitOfWork, trace: TraceCode) -> TraceCodeDispense | None:
    return uow.session.scalars(select(TraceCodeDispense).where(TraceCodeDispense.trace_code_id == trace.id)).first()


def _site_name(uow: UnitOfWork, site_id: int) -> str:
    site = uow.session.get(Site, site_id)
    return site.name if site is not None else str(site_id)


def _already_dispensed(uow: UnitOfWork, code: str, given: TraceCodeDispense) -> Conflict:
    return Conflict(Message("trace code %(code)s was already dispensed at %(site)s on %(at)s: the same pack twice "
                            "points at resold or fake drugs", code=code, site=_site_name(uow, given.site_id),
                            at=local_text(given.at)), {"trace_codes": code})


def _known_elsewhere(uow: UnitOfWork, trace: TraceCode) -> DomainError:
    """Why a code that is known cannot be taken in again: it was dispensed, or it is a pack of a lot already."""
    given = _dispensed(uow, trace)
    if given is not None:
        return _already_dispensed(uow, trace.code, given)
    lot = uow.session.get(Lot, trace.lot_id)
    return Conflict(Message("trace code %(code)s was received at %(site)s on %(at)s as a pack of lot %(lot)s",
                            code=trace.code, site=_site_name(uow, trace.site_id), at=local_text(trace.at),
                            lot=lot.lot_number if lot else trace.lot_id), {"trace_codes": trace.code})


def _find_codes(uow: UnitOfWork, codes: Sequence[ScannedCode]) -> dict[str, TraceCode]:
    return {t.code: t for t in uow.session.scalars(select(TraceCode).where(
        TraceCode.code.in_(sorted(c.code for c in codes))).execution_options(populate_existing=True))}


def _add_code(uow: UnitOfWork, code: ScannedCode, lot: Lot, source: str,
              then: Any = None) -> TraceCode:
    """Write a code as a pack of ``lot`` (and what ``then`` adds with it) in a savepoint: a code another transaction
    wrote meanwhile is refused as it is known, once that transaction has committed."""
    savepoint = uow.session.begin_nested()
    trace = TraceCode(consortium_id=lot.consortium_id, code=code.code, kind=code.kind, gtin=code.gtin,
                      serial=code.serial, lot_id=lot.id, drug_id=lot.drug_id, site_id=lot.site_id, source=source,
                      actor=uow.principal.label, at=uow.now())
    try:
        uow.session.add(trace)
        uow.session.flush()
        if then is not None:
            then(trace)
            uow.session.flush()
    except IntegrityError:
        savepoint.rollback()
        known = _find_codes(uow, [code]).get(code.code)
        if known is None:
            raise
        raise _known_elsewhere(uow, known) from None
    savepoint.commit()
    return trace


def _check_printed(code: ScannedCode, lot: Lot) -> None:
    """A GS1 code prints its lot and expiry: they are the lot's."""
    if code.lot_number and normalise_lot_number(code.lot_number) != lot.lot_number:
        raise ValidationFailed(Message("trace code %(code)s prints lot %(printed)s, not %(lot)s", code=code.code,
                                       printed=code.lot_number, lot=lot.lot_number), {"trace_codes": code.code})
    if code.expiry_date and code.expiry_date != lot.expiry_date:
        raise ValidationFailed(Message("trace code %(code)s prints expiry %(printed)s; lot %(lot)s expires on "
                                       "%(day)s", code=code.code, printed=code.expiry_date.isoformat(),
                                       lot=lot.lot_number, day=lot.expiry_date.isoformat()),
                               {"trace_codes": code.code})


def take_in_trace_codes(uow: UnitOfWork, lot: Lot, units: int, codes: Sequence[ScannedCode], *,
                        where: str = "trace_codes") -> list[TraceCode]:
    """The packs scanned as ``units`` arrived in ``lot``: each code becomes a pack of the lot. A code known already
    (received before, anywhere in the consortium, or dispensed) is refused saying where and when; so is a GS1
    code printing another lot or expiry, and more codes than packs. Joins the caller's transaction."""
    with uow:
        drug = uow.get(Drug, lot.drug_id, what="drug")
        if len(codes) > packs_for(units, drug.pack_size):
            raise ValidationFailed(Message("%(count)s trace codes scanned for %(packs)s packs received: each pack has "
                                           "one", count=len(codes), packs=packs_for(units, drug.pack_size)),
                                   {where: len(codes)})
        for code in codes:
            _check_printed(code, lot)
        known = _find_codes(uow, codes)
        for code in codes:
            if code.code in known:
                raise _known_elsewhere(uow, known[code.code])
        taken = [_add_code(uow, code, lot, "receipt") for code in codes]
        uow.commit()
        return taken


def give_trace_codes(uow: UnitOfWork, site_id: int, drug_id: int, movements: Sequence[Movement],
                     codes: Sequence[ScannedCode], *, where: str = "trace_codes") -> None:
    """The packs scanned as a dispense's ``movements`` gave ``drug_id`` to a patient. A code received before is a
    pack of its lot, which the dispense must take; a code not known yet becomes a pack of the lot it prints, or of
    the lots given in first-expiry first-out order (a pack to each code). A code dispensed before, anywhere in the
    consortium, is refused saying where and when; the database's unique key says so even of two dispenses at
    once. Joins the caller's transaction."""
    with uow:
        if any(m.id is None for m in movements):
            uow.flush()  # the packs are given with the movements by their ids
        drug = uow.get(Drug, drug_id, what="drug")
        by_lot = {m.lot_id: m for m in movements}
        lots = {lot.id: lot for lot in uow.session.scalars(select(Lot).where(Lot.id.in_(sorted(by_lot))))}
        known = _find_codes(uow, codes)
        taken: dict[int, int] = {}
        for code in codes:
            trace = known.get(code.code)
            if trace is None:
                continue
            given = _dispensed(uow, trace)
            if given is not None:
                raise _already_dispensed(uow, code.code, given)
            if trace.drug_id != drug_id:
                other = uow.session.get(Drug, trace.drug_id)
                raise ValidationFailed(Message("trace code %(code)s is a pack of %(other)s, not of %(drug)s",
                                               code=code.code, other=other.code if other else trace.drug_id,
                                               drug=drug.code), {where: code.code})
            if trace.lot_id not in by_lot:
                lot = uow.session.get(Lot, trace.lot_id)
                raise ValidationFailed(Message("trace code %(code)s is a pack of lot %(lot)s, which this dispense does "
                                               "not take: give that lot, or scan the pack in hand", code=code.code,
                                               lot=lot.lot_number if lot else trace.lot_id), {where: code.code})
            taken[trace.lot_id] = taken.get(trace.lot_id, 0) + 1
        order = sorted(lots.values(), key=lambda lot: (lot.expiry_date, lot.id))
        assigned = assign_to_lots([c for c in codes if c.code not in known],
                                  [(lot.id, lot.lot_number, -by_lot[lot.id].quantity) for lot in order],
                                  drug.pack_size, taken)
        for code in codes:
            if code.code not in known:
                _check_printed(code, lots[assigned[code.code]])

        def given_with(trace: TraceCode) -> None:
            uow.session.add(TraceCodeDispense(consortium_id=trace.consortium_id, trace_code_id=trace.id,
                                              movement_id=by_lot[trace.lot_id].id, site_id=site_id,
                                              actor=uow.principal.label, at=uow.now()))

        for code in codes:
            trace = known.get(code.code)
            if trace is None:
                _add_code(uow, code, lots[assigned[code.code]], "dispense", then=given_with)
                continue
            savepoint = uow.session.begin_nested()
            try:
                given_with(trace)
                uow.session.flush()
            except IntegrityError:
                savepoint.rollback()
                raise _known_elsewhere(uow, trace) from None
            savepoint.commit()
        uow.commit()


def _lot_to_receive(uow: UnitOfWork, drug: Drug, site_id: int, lot_number: str, expiry_date: date) -> Lot:
    """The site's lot of this number, locked; created if new. Two receipts creating the same new lot at once
    both succeed: the second finds the first's row once it commits (the unique key makes it wait for it)."""
    def locked() -> Lot | None:
        return uow.session.scalars(select(Lot).where(
            Lot.site_id == site_id, Lot.drug_id == drug.id, Lot.lot_number == lot_number).with_for_update()
            .execution_options(populate_existing=True)).first()

    lot = locked()
    if lot is not None:
        return lot
    savepoint = uow.session.begin_nested()
    lot = Lot(consortium_id=drug.consortium_id, site_id=site_id, drug_id=drug.id, lot_number=lot_number,
              expiry_date=expiry_date, quantity=0, reserved=0)
    uow.session.add(lot)
    try:
        uow.session.flush()
    except IntegrityError:
        savepoint.rollback()
        found = locked()
        if found is None:
            raise
        return found
    savepoint.commit()
    return lot


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


def book_transit_loss(uow: UnitOfWork, lot_id: int, units: int, reason_code: str, *, note: str,
                      cause: Cause) -> Movement:
    """Units that arrived at a lot with a transfer but not whole (damaged, missing, the wrong item) leave it
    again as a transit loss, with why; the transfer's receipt books them (joins its transaction)."""
    with uow:
        lot = uow.get_acting(Lot, lot_id, for_update=True, what="lot")
        movement = _move(uow, lot, MovementKind.TRANSIT_LOSS, -units, reason_code, note=note, cause=cause)
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

@dataclass(frozen=True)
class StockNeed:
    """Units of a drug wanted in lots that last until ``supply_until``: first-expiry first-out, or from one
    named lot."""

    drug_id: int
    quantity: int
    supply_until: date
    lot_id: int | None = None


def hold_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, supply_until: date,
               cause: Cause) -> list[Reservation]:
    """Reserve ``quantity`` units first-expiry first-out for ``cause``.

    No site check here: routing reserves at the pharmacy it chose on the prescriber's behalf. Entry
    points that act for a site (:func:`reserve_stock`) check it.
    """
    return hold_all(uow, site_id, [StockNeed(drug_id, quantity, supply_until)], cause)


def hold_all(uow: UnitOfWork, site_id: int, needs: Sequence[StockNeed], cause: Cause, *,
             flush: bool = True) -> list[Reservation]:
    """Reserve every need at a site for ``cause``, first-expiry first-out, all or none (:class:`OutOfStock`
    names the first drug short, and nothing has changed). The lots of all the needs' drugs are locked together
    first. Joining a caller's transaction, the holds are written at once, unless ``flush=False``: a caller that
    reads none of them back by id leaves them to its own commit (see :meth:`UnitOfWork.commit`)."""
    if not cause.may_hold:
        raise ValidationFailed(Message("stock is held for a prescription or a transfer (by its id) or by hand (with a "
                                       "reference), not for %(type)s %(id)s", type=Message.word(cause.type.value),
                                       id=cause.id), {"cause_type": cause.type.value, "cause_id": cause.id})
    with uow:
        drugs = [_active_drug(uow, need.drug_id) for need in needs]
        locked = lock_stock(uow, site_id, [need.drug_id for need in needs])
        # Every need is allocated before any lot changes: a need short leaves the session as it found it (its
        # lots still locked), so a caller may try elsewhere without a savepoint to roll back to.
        taken: dict[int, int] = {}  # units the needs before this one take of each lot
        planned: list[tuple[StockNeed, Allocation]] = []
        for need, drug in zip(needs, drugs, strict=True):
            lots = locked[need.drug_id]
            stocks = {lot.id: LotStock(lot.id, lot.lot_number, lot.expiry_date, lot.quantity,
                                       lot.reserved + taken.get(lot.id, 0)) for lot in lots}
            if need.lot_id is None:
                allocations = allocate_fefo(list(stocks.values()), need.quantity, uow.today(), need.supply_until,
                                            drug=drug.code)
            else:
                allocations = [_from_named_lot(stocks, need, uow.today(), drug.code)]
            for allocation in allocations:
                taken[allocation.lot_id] = taken.get(allocation.lot_id, 0) + allocation.quantity
                planned.append((need, allocation))
        lots_by_id = {lot.id: lot for lots in locked.values() for lot in lots}
        reservations = []
        for need, allocation in planned:
            lot = lots_by_id[allocation.lot_id]
            lot.reserved += allocation.quantity
            reservation = Reservation(
                consortium_id=lot.consortium_id, lot_id=lot.id, site_id=site_id, drug_id=need.drug_id,
                quantity=allocation.quantity, status=HELD, supply_until=need.supply_until, created_at=uow.now(),
                **Reservation.cause_columns(cause))
            uow.session.add(reservation)
            reservations.append(reservation)
        uow.commit(flush=flush)
        return reservations


def _from_named_lot(lots: dict[int, LotStock], need: StockNeed, today: date, drug_code: str) -> Allocation:
    """The allocation of a need from the lot it names: a lot of this drug here, usable, with enough unheld."""
    assert need.lot_id is not None
    stock = lots.get(need.lot_id)
    if stock is None:
        raise ValidationFailed(Message("lot %(lot)s is not stock of %(drug)s at this site", lot=need.lot_id,
                                       drug=drug_code), {"lot_id": need.lot_id})
    if not is_usable(stock, today, need.supply_until):
        raise ValidationFailed(Message("lot %(lot)s expires on %(day)s, before %(until)s", lot=stock.lot_number,
                                       day=stock.expiry_date.isoformat(), until=need.supply_until.isoformat()),
                               {"lot_id": need.lot_id})
    if stock.available < need.quantity:
        raise OutOfStock(Message("lot %(lot)s has %(available)s available, not %(quantity)s", lot=stock.lot_number,
                                 available=stock.available, quantity=need.quantity), {"lot_id": need.lot_id})
    return Allocation(stock.lot_id, stock.lot_number, stock.expiry_date, need.quantity)


def reserve_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, supply_until: date,
                  cause: Cause) -> list[Reservation]:
    """A pharmacist's own hold at their site (a ward's stock, a recall being looked into), under a reference of
    their own: a prescription's stock is held by routing it, a transfer's by its order."""
    if cause.type is not CauseType.MANUAL:
        raise ValidationFailed(Message("stock is held by hand with a manual cause and a reference of your own; a "
                                       "prescription's stock is held by routing it, a transfer's by its order"),
                               {"cause_type": cause.type.value})
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        uow.get(Site, site_id, what="site")
        reservations = hold_stock(uow, site_id, drug_id, quantity, supply_until, cause)
        uow.commit()
        return reservations


def _held(uow: UnitOfWork, cause: Cause, site_id: int | None = None, drug_id: int | None = None) -> list[Reservation]:
    if not cause.may_hold:
        return []  # nothing can be held for it
    stmt = select(Reservation).where(Reservation.held_for(cause), Reservation.status == HELD)
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


def keep_held(uow: UnitOfWork, cause: Cause, site_id: int, drug_id: int, units: int) -> int:
    """Release what ``cause`` holds of a drug at a site beyond ``units`` (after a partial dispense from other lots,
    what remains to give is what stays held), the latest-expiring lots first so that what stays is still held
    first-expiry first-out. Returns the units released."""
    with uow:
        held = _held(uow, cause, site_id, drug_id)
        lots = _lock(uow, [r.lot_id for r in held])
        released = _release_beyond(uow, [r for r in _held(uow, cause, site_id, drug_id) if r.lot_id in lots], lots,
                                   units)
        uow.commit()
        return released


def _release_beyond(uow: UnitOfWork, held: Sequence[Reservation], lots: Mapping[int, Lot], units: int) -> int:
    """Release of ``held`` (reservations of one cause, drug and site, on locked ``lots``) what is beyond ``units``,
    the latest-expiring lots first; the units released."""
    held = sorted(held, key=lambda r: (lots[r.lot_id].expiry_date, r.lot_id), reverse=True)
    excess = sum(r.quantity for r in held) - max(units, 0)
    released = 0
    for reservation in held:
        if released >= excess:
            break
        take = min(reservation.quantity, excess - released)
        lots[reservation.lot_id].reserved -= take
        if take == reservation.quantity:
            reservation.status, reservation.closed_at = RELEASED, uow.now()
        else:  # the rest stays held; the part given back is kept as a released record
            reservation.quantity -= take
            uow.session.add(Reservation(
                consortium_id=reservation.consortium_id, lot_id=reservation.lot_id, site_id=reservation.site_id,
                drug_id=reservation.drug_id, quantity=take, status=RELEASED,
                supply_until=reservation.supply_until, created_at=uow.now(), closed_at=uow.now(),
                **Reservation.cause_columns(reservation.cause)))
        released += take
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
                   *, lots: Sequence[LotChoice] | None = None, lot_reason: str = "",
                   locked: Sequence[Lot] | None = None, held: Sequence[Reservation] | None = None,
                   keep_held: int | None = None, flush: bool = True) -> list[Movement]:
    """Dispense ``quantity`` units for ``cause`` at a site.

    By default the stock held for the cause is used first, then more is taken first-expiry first-out.
    Naming other ``lots`` needs a ``lot_reason``; each named lot must still last until ``supply_until``.
    What is left of the cause's reservations for this drug stays held (a partial dispense), or, with ``keep_held``,
    no more than those units of it (as :func:`keep_held` says, from the reservations already in hand). ``locked``
    are the site's lots of the drug, when the caller has locked them already (:func:`lock_stock`), and ``held``
    what the cause holds on them, when read with the locks (:func:`lock_stock_held_for`). Joining a caller's
    transaction, the movements are written at once (an answer names them by id), unless ``flush=False``: a caller
    that reads none of them back by id leaves them, and the lots' and holds' changes, to its own commit.
    """
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        drug = uow.get(Drug, drug_id, what="drug")
        if quantity <= 0:
            raise ValidationFailed(Message("the quantity to dispense must be positive"), {"quantity": quantity})
        if lots and not lot_reason.strip():
            raise ValidationFailed(Message("dispensing from other lots than first-expiry first-out needs a reason"),
                                   {"lot_reason": "required"})
        all_lots = {lot.id: lot for lot in (_lock_lots(uow, site_id, drug_id) if locked is None else locked)}
        held = _held(uow, cause, site_id, drug_id) if held is None or locked is None else \
            [r for r in held if r.status == HELD]  # what an earlier line of the same drug used up is gone
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
        if keep_held is not None:
            # The lots are locked, so what the cause holds on them is what was read above, less what was used.
            _release_beyond(uow, [r for r in held if r.status == HELD], all_lots, keep_held)
        uow.commit(flush=flush)
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
                drug_id=reservation.drug_id, quantity=take, status=CONSUMED, supply_until=reservation.supply_until,
                created_at=uow.now(), closed_at=uow.now(), **Reservation.cause_columns(reservation.cause)))
        consumed += take
    return consumed


def send_stock(uow: UnitOfWork, site_id: int, drug_id: int, quantity: int, reason_code: str, cause: Cause, *,
               lot_id: int | None = None, usable_until: date | None = None) -> list[tuple[Lot, Movement]]:
    """Take ``quantity`` units of a drug off a site's shelf to send to another member: the stock held for the
    cause (a transfer holds its lots from the moment it is asked for) goes first, then, if a hold was lost, the
    named lot or first-expiry first-out among lots that last until ``usable_until``. Stock held for anything else
    never leaves."""
    with uow:
        uow.ensure_acts_for(site_id, what=Message("site %(id)s", id=site_id))
        drug = uow.get(Drug, drug_id, what="drug")
        all_lots = {lot.id: lot for lot in _lock_lots(uow, site_id, drug_id)}
        held = [r for r in _held(uow, cause, site_id, drug_id) if lot_id is None or r.lot_id == lot_id]
        chosen = [LotChoice(lot_id, quantity)] if lot_id is not None else None
        plan = _choose_lots(all_lots, held, quantity, uow.today(), usable_until or uow.today(), chosen, drug.code)
        held_by_lot: dict[int, list[Reservation]] = {}
        for reservation in held:
            held_by_lot.setdefault(reservation.lot_id, []).append(reservation)
        sent = []
        for allocation in plan:
            lot = all_lots[allocation.lot_id]
            consumed = _consume(uow, held_by_lot.get(lot.id, []), allocation.quantity)
            sent.append((lot, _move(uow, lot, MovementKind.TRANSFER_OUT, -allocation.quantity, reason_code,
                                    cause=cause, releases_reserved=consumed)))
        uow.commit()
        return sent


# Stocktake ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CountLine:
    """A lot counted: ``counted`` units against a ``book`` quantity (what the ledger said when the count sheet was
    made; without it, what it says now)."""

    counted: int
    lot_id: int | None = None
    drug_id: int | None = None
    lot_number: str | None = None
    expiry_date: date | None = None
    book: int | None = None


# Which holds a count below them gives back first: a pharmacist's own, then transfers not yet shipped, then
# prescriptions (the newest first), each held again from the site's other lots where it can be.
RELEASE_ORDER = {CauseType.MANUAL: 0, CauseType.TRANSFER: 1, CauseType.PRESCRIPTION: 2}


def record_stocktake(uow: UnitOfWork, site_id: int, lines: Sequence[CountLine], note: str = "", *,
                     release_excess: bool = False) -> Stocktake:
    """Record counted quantities at a site; every difference becomes a count-adjustment movement.

    The difference is the count less the book quantity it was counted against, applied to the lot as it is now:
    what moved between the count and its recording (a dispense while the sheet was out) is kept, never undone.
    A line names a known lot, or a drug, lot number and expiry for a lot found on the shelf that the ledger does
    not know. A count below what is held for prescriptions, transfers or by hand is refused, saying which holds
    would have to give back how much; with ``release_excess`` they are released (by hand first, then transfers,
    then the newest prescriptions), and each is held again from the site's other lots where that is possible.
    A refused count writes nothing.
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
                                                                  lot=lot.lot_number)})
                continue
            if lot.id in seen:
                problems.append({"line": index, "reason": Message("lot %(lot)s is counted twice",
                                                                  lot=lot.lot_number)})
                continue
            seen.add(lot.id)
            difference = line.counted - (lot.quantity if line.book is None else line.book)
            after = lot.quantity + difference
            if after < 0:
                problems.append({"line": index, "reason": Message(
                    "lot %(lot)s counted %(counted)s against a book of %(book)s, but %(moved)s units left it since: "
                    "count it again", lot=lot.lot_number, counted=line.counted, book=line.book,
                    moved=(line.book or 0) - lot.quantity)})
                continue
            given_back: list[tuple[Cause, int, date]] = []
            if after < lot.reserved:
                if not release_excess:
                    problems.append({"line": index, "lot_id": lot.id, "release": lot.reserved - after,
                                     "reason": _release_proposal(uow, lot, after)})
                    continue
                given_back = _give_back_holds(uow, lot, lot.reserved - after)
            if difference:
                _move(uow, lot, MovementKind.COUNT_ADJUSTMENT, difference, "count_difference",
                      note=f"stocktake {stocktake.id}", cause=cause)
                adjusted += 1
            _hold_again(uow, lot, given_back)  # once the lot holds what was counted: from the other lots
        if problems:
            raise ValidationFailed(Message("%(count)s count lines cannot be applied; nothing was recorded",
                                           count=len(problems)),
                                   problems)
        stocktake.lines_counted, stocktake.lines_adjusted = len(lines), adjusted
        uow.commit()
        return stocktake


def _holds_on(uow: UnitOfWork, lot: Lot) -> list[Reservation]:
    """A lot's holds in the order a count below them gives them back."""
    held = uow.session.scalars(select(Reservation).where(Reservation.lot_id == lot.id, Reservation.status == HELD)
                               .execution_options(populate_existing=True))
    return sorted(held, key=lambda r: (RELEASE_ORDER[r.cause_type], -r.id))


def _release_proposal(uow: UnitOfWork, lot: Lot, counted: int) -> Message:
    """What a count below a lot's holds would have to give back, hold by hold."""
    excess, gives = lot.reserved - counted, []
    for reservation in _holds_on(uow, lot):
        if excess <= 0:
            break
        take = min(excess, reservation.quantity)
        gives.append(Message("%(units)s held for %(cause)s %(ref)s", units=take,
                             cause=Message.word(reservation.cause_type.value), ref=reservation.cause_id))
        excess -= take
    return Message("lot %(lot)s counted %(counted)s but %(reserved)s are held; recording it releases %(release)s: "
                   "%(holds)s", lot=lot.lot_number, counted=counted, reserved=lot.reserved,
                   release=lot.reserved - counted, holds=gives)


def _give_back_holds(uow: UnitOfWork, lot: Lot, units: int) -> list[tuple[Cause, int, date]]:
    """Release ``units`` of a lot's holds that the shelf does not have; what each cause gave back."""
    given: list[tuple[Cause, int, date]] = []
    for reservation in _holds_on(uow, lot):
        if units <= 0:
            break
        take = min(units, reservation.quantity)
        lot.reserved -= take
        if take == reservation.quantity:
            reservation.status, reservation.closed_at = RELEASED, uow.now()
        else:
            reservation.quantity -= take
            uow.session.add(Reservation(
                consortium_id=reservation.consortium_id, lot_id=lot.id, site_id=lot.site_id, drug_id=lot.drug_id,
                quantity=take, status=RELEASED, supply_until=reservation.supply_until, created_at=uow.now(),
                closed_at=uow.now(), **Reservation.cause_columns(reservation.cause)))
        given.append((reservation.cause, take, reservation.supply_until))
        units -= take
    return given


def _hold_again(uow: UnitOfWork, lot: Lot, given: Sequence[tuple[Cause, int, date]]) -> None:
    """Hold again from the site's other lots what each cause gave back; what cannot be stays released (the
    pharmacy sees the prescription short)."""
    uow.session.flush()
    for held_for, quantity, supply_until in given:
        savepoint = uow.session.begin_nested()
        try:
            hold_all(uow, lot.site_id, [StockNeed(lot.drug_id, quantity, supply_until)], held_for)
        except DomainError:
            savepoint.rollback()
        else:
            savepoint.commit()


def _found_lot(uow: UnitOfWork, site_id: int, line: CountLine, index: int,
               problems: list[dict[str, Any]]) -> Lot | None:
    lot_number = normalise_lot_number(line.lot_number or "")
    if line.drug_id is None or not lot_number or line.expiry_date is None:
        problems.append({"line": index, "reason": Message("name a lot_id, or drug_id, lot_number and expiry_date")})
        return None
    return _lot_to_receive(uow, uow.get(Drug, line.drug_id, what="drug"), site_id, lot_number, line.expiry_date)


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
        unexpired = Lot.usable_on(today)
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


@dataclass(frozen=True)
class LotCard:
    """A lot of the caller's site with every movement of it, in order, and how many of its packs are known by
    their trace codes."""

    lot: Lot
    movements: list[Movement]
    trace_codes: int


def lot_card(uow: UnitOfWork, lot_id: int) -> LotCard:
    """A lot's stock card for its own site's pharmacist (another site's lot is not theirs to read here)."""
    with uow:
        lot = uow.get_acting(Lot, lot_id, what="lot")
        movements = list(uow.session.scalars(select(Movement).where(Movement.lot_id == lot_id).order_by(Movement.id)))
        codes = uow.session.scalar(select(func.count()).select_from(TraceCode).where(TraceCode.lot_id == lot_id))
        return LotCard(lot, movements, int(codes or 0))


def receive_outside_order(uow: UnitOfWork, site_id: int, drug_id: int, lot_number: str, expiry_date: date,
                          quantity: int, reason_code: str, *, note: str = "",
                          trace_codes: Sequence[str] = ()) -> Movement:
    """Stock that comes in outside any order: a donation, a central allocation (receipts) or a patient's return
    (a return to the shelf), each the movement :data:`OUTSIDE_ORDER_RECEIPTS` says."""
    kind = OUTSIDE_ORDER_RECEIPTS.get(reason_code)
    if kind is None:
        raise ValidationFailed(Message("say where the stock comes from: one of %(reasons)s",
                                       reasons=[Message.word(r) for r in OUTSIDE_ORDER_RECEIPTS]),
                               {"reason_code": reason_code or "required"})
    return receive_stock(uow, site_id, drug_id, lot_number, expiry_date, quantity, reason_code=reason_code,
                         note=note, kind=kind, trace_codes=trace_codes)


def write_off(uow: UnitOfWork, lot_id: int, quantity: int, reason_code: str, note: str = "") -> Movement:
    """Units of a lot taken off the shelf for good, with why: expired, recalled or damaged."""
    if reason_code not in WRITE_OFF_REASONS:
        raise ValidationFailed(Message("say why the stock is written off: one of %(reasons)s",
                                       reasons=[Message.word(r) for r in WRITE_OFF_REASONS]),
                               {"reason_code": reason_code or "required"})
    if quantity <= 0:
        raise ValidationFailed(Message("the quantity written off is a positive number"), {"quantity": quantity})
    return record_movement(uow, lot_id, MovementKind.EXPIRY_WRITE_OFF, -quantity, reason_code, note=note)


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
        stmt = select(Lot).where(Lot.quantity > 0, Lot.usable_on(today),
                                 Lot.expiry_date <= today + timedelta(days=days))
        if site_id is not None:
            stmt = stmt.where(Lot.site_id == site_id)
        return fetch_page(uow.session, stmt.order_by(Lot.expiry_date, Lot.site_id, Lot.id), page)


def list_lots(uow: UnitOfWork, page: PageRequest, *, site_id: int | None = None, drug_id: int | None = None,
              include_empty: bool = False, q: str | None = None) -> Page[Lot]:
    """Lots (with stock, unless ``include_empty``) by site and drug; found by ``q``: a lot number, or a drug's code,
    name or pinyin."""
    with uow:
        stmt = select(Lot)
        if site_id is not None:
            stmt = stmt.where(Lot.site_id == site_id)
        if drug_id is not None:
            stmt = stmt.where(Lot.drug_id == drug_id)
        if q and q.strip():
            stmt = stmt.where(Lot.lot_number.like(contains(normalise_lot_number(q)), escape="\\")
                              | Lot.drug_id.in_(select(Drug.id).where(drug_matches(q))))
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
