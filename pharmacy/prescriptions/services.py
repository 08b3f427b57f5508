"""Use cases of the prescription flow: intake, routing with reservation, pharmacy work, jobs, events.

Every status change goes through :func:`_transition`, which asks the domain's state machine and writes
the outbox event (and its webhook deliveries) in the same transaction as the change.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import Date, Integer, Select, Table, bindparam, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from pharmacy import audit
from pharmacy.catalog.models import Drug
from pharmacy.catalog.services import drug_matches, drugs_by_id, find_drugs_by_code, sites_that_may_dispense
from pharmacy.consortium.models import Site
from pharmacy.db import contains
from pharmacy.errors import Conflict, DomainError, Message, NotFound, OutOfStock, ValidationFailed
from pharmacy.events import StockRequested
from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.models import Lot, TraceCode, TraceCodeDispense
from pharmacy.inventory.services import (
    Cause,
    LotChoice,
    StockNeed,
    dispense_stock,
    give_trace_codes,
    hold_all,
    keep_held,
    lock_stock_held_for,
    read_trace_codes,
    release_stock,
)
from pharmacy.inventory.trace_codes import ScannedCode
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.prescriptions.domain import (
    BEFORE_DISPENSING,
    OPEN_STATUSES,
    REJECT_REASONS,
    RETURN_REASONS,
    Action,
    Candidate,
    DrugFacts,
    ItemRequest,
    Kind,
    Limits,
    PassedOver,
    Returned,
    Status,
    StatusReason,
    StockRequest,
    check_patient,
    check_policy,
    check_reason,
    check_substitution,
    has_dispensed,
    needs_second_check,
    next_status,
    passed_over_nomination,
    rank_pharmacies,
    sees_clinical_facts,
)
from pharmacy.prescriptions.models import (
    Dispense,
    Prescription,
    PrescriptionEvent,
    PrescriptionItem,
    PrescriptionReturn,
    Shortage,
)
from pharmacy.principal import Role
from pharmacy.retries import ATTEMPTS
from pharmacy.rows_at_commit import add_row
from pharmacy.unit_of_work import UnitOfWork

EVENTS = cast(Table, PrescriptionEvent.__table__)

log = logging.getLogger(__name__)
T = TypeVar("T")


class NoEligiblePharmacy(DomainError):
    status = 422


@dataclass(frozen=True)
class ItemInput:
    code: str
    quantity: int
    supply_days: int
    repeats: int = 0
    interval_days: int | None = None
    substitution_allowed: bool = True
    dosage: str = ""
    external_id: str | None = None
    substitution_concept: dict[str, Any] | None = None  # FHIR's allowedCodeableConcept, as sent
    dosage_structured: list[dict[str, Any]] | None = None  # FHIR's dosageInstruction, as sent


@dataclass(frozen=True)
class PrescriptionInput:
    number: str
    patient_ref: str
    kind: Kind
    issued_on: date
    valid_until: date
    items: tuple[ItemInput, ...]
    prescriber: str = ""
    patient_district: str | None = None
    patient_latitude: float | None = None
    patient_longitude: float | None = None
    nominated_site_id: int | None = None
    nominated_site_code: str | None = None
    source: str = "api"
    # What the prescriber chose to send for the pharmacist's review (审方); the patient stays a pseudonym.
    patient_birth_date: date | None = None
    patient_gender: str | None = None
    diagnoses: tuple[dict[str, str], ...] = ()  # each {"code", "system", "display"} as far as sent
    allergies: tuple[dict[str, str], ...] = ()  # each {"substance", "code", "reaction", "criticality"}


@dataclass
class Intake:
    prescription: Prescription
    created: bool
    view: PrescriptionView


def _cause(rx: Prescription) -> Cause:
    return Cause(CauseType.PRESCRIPTION, str(rx.id))


# Intake -------------------------------------------------------------------------------------------

def submit_prescription(uow: UnitOfWork, data: PrescriptionInput, request_hash: str,
                        idempotency_key: str | None = None, limits: Limits | None = None) -> Intake:
    """Take in a prescription from a prescribing system, check it, route it and reserve its stock.

    Idempotent: the same ``idempotency_key``, or the same prescription number from the same hospital,
    returns the first result and creates nothing; the same key or number with a different body is a 409.
    """
    try:
        return _routed_afresh(uow, lambda may_restart: _submit(
            uow, data, request_hash, idempotency_key, limits or Limits(), may_restart))
    except IntegrityError:
        # A concurrent retry won the race to insert: answer with what it created.
        with uow:
            existing = _existing(uow, data.number, idempotency_key)
            if existing is None:
                raise
            return _replay(uow, existing, request_hash)


def _existing(uow: UnitOfWork, number: str, idempotency_key: str | None) -> Prescription | None:
    """The hospital's prescription this one retries: the one sent under the same key, else the same number (one
    query for both)."""
    same = Prescription.number == number
    if idempotency_key:
        same = or_(Prescription.idempotency_key == idempotency_key, same)
    found = list(uow.session.scalars(select(Prescription).where(
        Prescription.prescriber_site_id == uow.principal.site_id, same)))
    return next((rx for rx in found if idempotency_key and rx.idempotency_key == idempotency_key),
                found[0] if found else None)


def _replay(uow: UnitOfWork, existing: Prescription, request_hash: str) -> Intake:
    if existing.request_hash != request_hash:
        raise Conflict(f"prescription {existing.number} was already received with a different content; "
                       "send a new Idempotency-Key and number for a new prescription",
                       {"prescription_id": existing.id})
    return Intake(existing, created=False, view=_view(uow, _load(uow, existing.id)))


def _submit(uow: UnitOfWork, data: PrescriptionInput, request_hash: str, idempotency_key: str | None,
            limits: Limits, may_restart: bool) -> Intake:
    with uow:
        prescriber_site = uow.principal.site_id
        if uow.principal.role is not Role.PRESCRIBER or prescriber_site is None:
            raise ValidationFailed("prescriptions are sent by a prescribing system bound to its hospital")
        existing = _existing(uow, data.number, idempotency_key)
        if existing is not None:
            return _replay(uow, existing, request_hash)
        meant = find_drugs_by_code(uow.session, [item.code for item in data.items], prescriber_site)
        drugs = [meant.get(item.code) for item in data.items]
        requests = [ItemRequest(
            DrugFacts(d.code, d.active, d.controlled_class, d.special_storage, d.atc_code) if d else None,
            item.code, item.quantity, item.supply_days, item.repeats, item.interval_days)
            for item, d in zip(data.items, drugs, strict=True)]
        today = uow.today()
        problems = check_policy(data.kind, data.issued_on, data.valid_until, today, requests, limits)
        problems += check_patient(data.patient_birth_date, today)
        nominated = _nominated_site(uow, data, problems)
        if problems:
            raise ValidationFailed(f"the prescription breaks {len(problems)} rule(s)", problems)
        first = data.items[0]
        rx = Prescription(
            consortium_id=uow.principal.consortium_id, number=data.number, prescriber_site_id=prescriber_site,
            prescriber=data.prescriber, patient_ref=data.patient_ref, patient_district=data.patient_district,
            patient_latitude=data.patient_latitude, patient_longitude=data.patient_longitude, kind=data.kind.value,
            issued_on=data.issued_on, valid_until=data.valid_until, status=Status.ROUTED.value,
            nominated_site_id=nominated, routing={}, returned_from=[], issues_total=1 + first.repeats,
            current_issue=0, interval_days=(first.interval_days or first.supply_days) if first.repeats else None,
            next_due_on=today, idempotency_key=idempotency_key, request_hash=request_hash, source=data.source,
            created_at=uow.now(), updated_at=uow.now(),
            patient_birth_date=data.patient_birth_date, patient_gender=data.patient_gender,
            diagnoses=[dict(d) for d in data.diagnoses] or None, allergies=[dict(a) for a in data.allergies] or None)
        uow.session.add(rx)
        items = []
        for item, drug in zip(data.items, drugs, strict=True):
            assert drug is not None  # the policy check refused unknown codes
            items.append(PrescriptionItem(
                consortium_id=rx.consortium_id, prescription=rx, drug_id=drug.id, quantity=item.quantity,
                supply_days=item.supply_days, substitution_allowed=item.substitution_allowed, dosage=item.dosage,
                external_id=item.external_id, substitution_concept=item.substitution_concept,
                dosage_structured=item.dosage_structured))
        uow.session.add_all(items)
        # Written once routing has said where it goes (see _route): one insert of it, one of its items.
        whole = _Parts(rx, items, [], {d.id: d for d in drugs if d is not None})
        _route(uow, whole, event="received", may_restart=may_restart)
        uow.commit()
        return Intake(rx, created=True, view=_view(uow, whole))


def _nominated_site(uow: UnitOfWork, data: PrescriptionInput, problems: list[dict[str, str]]) -> int | None:
    if data.nominated_site_id is None and not data.nominated_site_code:
        return None
    stmt = select(Site).where(Site.id == data.nominated_site_id) if data.nominated_site_id is not None \
        else select(Site).where(Site.code == data.nominated_site_code)
    site = uow.session.scalars(stmt).first()
    if site is None or not site.dispenses or not site.active:
        problems.append({"field": "nominated_pharmacy",
                         "reason": "is not an active dispensing site of this consortium"})
        return None
    return site.id


# Routing ------------------------------------------------------------------------------------------

@dataclass
class _Need:
    item: PrescriptionItem
    drug: Drug
    supply_until: date


@dataclass
class _Stock:
    # (site, the need's place in the list) -> usable units; by place, since a new prescription's items have no id
    # until it is written
    usable: dict[tuple[int, int], int] = field(default_factory=dict)


def _items(uow: UnitOfWork, rx: Prescription) -> list[PrescriptionItem]:
    return list(uow.session.scalars(select(PrescriptionItem).where(PrescriptionItem.prescription_id == rx.id)
                                    .order_by(PrescriptionItem.id)))


def _needs(uow: UnitOfWork, rx: Prescription, items: Sequence[PrescriptionItem]) -> list[_Need]:
    start = max(uow.today(), rx.next_due_on or uow.today())
    drugs = uow.get_all(Drug, [i.drug_id for i in items])
    return [_Need(i, drugs[i.drug_id], start + timedelta(days=i.supply_days)) for i in items]


def _usable_units(drug: Any, day: Any) -> Select[int, int]:
    """Usable units of a drug per site: unexpired on ``day`` (the day a need's supply ends), not reserved."""
    return (select(Lot.site_id, func.sum(Lot.quantity - Lot.reserved).label("units"))
            .where(Lot.drug_id == drug, Lot.usable_on(day)).group_by(Lot.site_id))


def _last_day(uow: UnitOfWork, need: _Need) -> date:
    return max(need.supply_until, uow.today())


def _usable_stock(uow: UnitOfWork, needs: Sequence[_Need], site_ids: Sequence[int]) -> _Stock:
    """Usable units per site for each need."""
    stock = _Stock()
    for index, need in enumerate(needs):
        for site_id, units in uow.session.execute(_usable_units(need.item.drug_id, _last_day(uow, need))
                                                  .where(Lot.site_id.in_(site_ids))):
            stock.usable[(site_id, index)] = int(units or 0)
    return stock


@functools.lru_cache(maxsize=16)
def _sites_weighed(needs: int) -> Select[Any]:
    """The statement of :func:`_dispensing_sites` for so many needs (built once for each number of drugs), the n-th
    need's drug and last day bound as ``drug_n`` and ``day_n``."""
    open_here = (select(Prescription.pharmacy_site_id.label("site_id"), func.count().label("open"))
                 .where(Prescription.status.in_([s.value for s in OPEN_STATUSES]))
                 .group_by(Prescription.pharmacy_site_id).subquery())
    usable = [_usable_units(bindparam(f"drug_{n}", type_=Integer), bindparam(f"day_{n}", type_=Date)).subquery()
              for n in range(needs)]
    stmt = select(Site, open_here.c.open, *(u.c.units for u in usable)) \
        .outerjoin(open_here, open_here.c.site_id == Site.id)
    for u in usable:
        stmt = stmt.outerjoin(u, u.c.site_id == Site.id)
    return stmt.where(Site.dispenses.is_(True), Site.active.is_(True)).order_by(Site.id)


def _dispensing_sites(uow: UnitOfWork, needs: Sequence[_Need], exclude: frozenset[int]
                      ) -> tuple[list[Site], _Stock, dict[int, int]]:
    """The consortium's active dispensing sites (but ``exclude``), with the usable stock of each need at each and the
    prescriptions open at each: one statement for all that routing weighs."""
    bound: dict[str, Any] = {}
    for n, need in enumerate(needs):
        bound[f"drug_{n}"], bound[f"day_{n}"] = need.item.drug_id, _last_day(uow, need)
    sites, stock, queues = [], _Stock(), {}
    for site, queue, *units in uow.session.execute(_sites_weighed(len(needs)), bound):
        if site.id in exclude:
            continue
        sites.append(site)
        queues[site.id] = int(queue or 0)
        for index, held in enumerate(units):
            if held is not None:
                stock.usable[(site.id, index)] = int(held)
    return sites, stock, queues


class _HoldRaced(Exception):
    """The stock routing read at the pharmacy it chose was taken by another prescription before it was held."""


def _routed_afresh(uow: UnitOfWork, use_case: Callable[[bool], T]) -> T:
    """Run a use case that routes, again in a new transaction (its own ``with uow``) when the stock it chose was
    taken meanwhile; ``use_case(may_restart)``. Holding at the next pharmacy instead, with the first one's lots
    still locked, is what two prescriptions trying two pharmacies in opposite orders deadlock on; run again, the
    routing reads the stock as the other prescription left it and locks one pharmacy at a time. The last attempt
    (of as many as :mod:`pharmacy.retries` makes), and a use case joining its caller's transaction (which only the
    caller can run again), fall back to the next pharmacy in the same transaction."""
    if uow.open:
        return use_case(False)
    for attempt in range(1, ATTEMPTS):
        try:
            return use_case(True)
        except _HoldRaced:
            log.info("stock taken meanwhile at the pharmacy chosen, routing again (attempt %s)", attempt)
    return use_case(False)


def _route(uow: UnitOfWork, whole: _Parts, *, event: str, exclude: frozenset[int] = frozenset(),
           returned: Returned | None = None, may_restart: bool = False) -> None:
    """Choose the pharmacy, reserve the stock there, or wait for stock; record why (and, routing again after
    a return, who returned it and why).

    A new prescription is not written before it is routed: the reads that choose its pharmacy need nothing of it
    (no autoflush), and it is written once with where it goes, just before its stock is held for it. If the stock
    was taken meanwhile, ``may_restart`` has the use case run again (:class:`_HoldRaced`, see
    :func:`_routed_afresh`); otherwise the next pharmacy is tried."""
    rx = whole.rx
    needs = _needs(uow, rx, whole.items)
    with uow.session.no_autoflush:
        sites, stock, queues = _dispensing_sites(uow, needs, exclude)
        eligible = sites_that_may_dispense(uow.session, sites, [n.drug for n in needs])
        if not eligible:
            codes = [n.drug.code for n in needs]
            said = Message("no pharmacy other than the ones it was returned from of the consortium may dispense "
                           "%(drugs)s", drugs=codes) if exclude else \
                Message("no pharmacy of the consortium may dispense %(drugs)s", drugs=codes)
            raise NoEligiblePharmacy(said, {"items": ", ".join(codes)})
    candidates = []
    for site in eligible:
        short = tuple(n.drug.code for index, n in enumerate(needs)
                      if stock.usable.get((site.id, index), 0) < n.item.quantity)
        location = (site.latitude, site.longitude) if site.latitude is not None and site.longitude is not None \
            else None
        candidates.append(Candidate(site.id, site.code, site.district, location, queues.get(site.id, 0),
                                    not short, short))
    patient_location = (rx.patient_latitude, rx.patient_longitude) \
        if rx.patient_latitude is not None and rx.patient_longitude is not None else None
    ranked = rank_pharmacies(candidates, nominated_site_id=rx.nominated_site_id,
                             patient_district=rx.patient_district, patient_location=patient_location)
    considered = [r.reason for r in ranked[:5]]
    # A nomination the prescriber made is passed over only for a reason, which the routing and the event say; a
    # pharmacy that returned the prescription is not passed over (the return says why it left).
    nominated_code = next((s.code for s in sites if s.id == rx.nominated_site_id), None) \
        if rx.nominated_site_id is not None and rx.nominated_site_id not in exclude else None

    def passed_over(site_id: int) -> PassedOver | None:
        return passed_over_nomination(ranked, site_id, rx.nominated_site_id, nominated_code)

    previous = rx.status
    for choice in ranked:
        if not choice.candidate.can_fill:
            break
        rx.pharmacy_site_id = choice.candidate.site_id
        passed = passed_over(choice.candidate.site_id)
        rx.routing = {"pharmacy": choice.candidate.code, "reason": _routing_reason(choice.reason, passed),
                      "facts": _routing_facts(choice.facts, passed), "considered": considered,
                      "returned_from": list(rx.returned_from)}
        _say_status(uow, rx, Status.ROUTED, StatusReason("routed", returned, choice.candidate.code, choice.reason,
                                                         passed_over=passed))
        if rx.id is None:
            uow.flush()  # the stock is held for the prescription by its id
        try:
            _hold_needs(uow, rx, choice.candidate.site_id, needs)
        except OutOfStock:
            if may_restart:
                raise _HoldRaced from None
            continue  # taken meanwhile by another prescription (a hold refused changes nothing): the next pharmacy
        record_event(uow, rx, event, previous)
        return
    best = ranked[0]
    rx.pharmacy_site_id = best.candidate.site_id
    passed = passed_over(best.candidate.site_id)
    requests = _request_stock(uow, rx, best.candidate.site_id, needs, stock, [s.id for s in sites])
    rx.routing = {"pharmacy": best.candidate.code, "reason": _routing_reason(best.reason, passed),
                  "facts": _routing_facts(best.facts, passed), "considered": considered,
                  "returned_from": list(rx.returned_from), **_requested(requests)}
    rx.status = previous  # what the event says it was, whichever pharmacy was tried meanwhile
    _set_status(uow, rx, Status.AWAITING_STOCK, event,
                StatusReason("awaiting_stock", returned, best.candidate.code, requests=requests, passed_over=passed))


def _routing_reason(reason: str, passed: PassedOver | None) -> str:
    return reason if passed is None else f"{passed.text()}; routed to {reason}"


def _routing_facts(facts: dict[str, Any], passed: PassedOver | None) -> dict[str, Any]:
    return facts if passed is None else {**facts, "passed_over": passed.facts()}


def _requested(requests: Sequence[StockRequest]) -> dict[str, list[str]]:
    """The stock asked for, as routing has always listed it."""
    return {"transfers_text": [r.text() for r in requests if r.donor is not None],
            "shortages_text": [r.text() for r in requests if r.donor is None]}


def _request_stock(uow: UnitOfWork, rx: Prescription, site_id: int, needs: Sequence[_Need], stock: _Stock,
                   site_ids: Sequence[int]) -> tuple[StockRequest, ...]:
    """Ask the member with the most usable surplus for each short item, or record a shortage: transfers
    first, then shortages."""
    codes = {s.id: s.code for s in uow.session.scalars(select(Site).where(Site.id.in_(site_ids)))}
    transfers: list[StockRequest] = []
    shortages: list[StockRequest] = []
    for index, need in enumerate(needs):
        missing = need.item.quantity - stock.usable.get((site_id, index), 0)
        if missing <= 0:
            continue
        donors = sorted(((units, sid) for (sid, place), units in stock.usable.items()
                         if place == index and sid != site_id), reverse=True)
        if donors and donors[0][0] >= missing:
            donor = donors[0][1]
            uow.publish(StockRequested(rx.consortium_id, rx.id, donor, site_id, need.item.drug_id, missing,
                                       need.supply_until))
            transfers.append(StockRequest(need.drug.code, missing, codes.get(donor, str(donor))))
        else:
            uow.session.add(Shortage(consortium_id=rx.consortium_id, site_id=site_id, drug_id=need.item.drug_id,
                                     quantity=missing, prescription_id=rx.id, created_at=uow.now()))
            shortages.append(StockRequest(need.drug.code, missing))
    return (*transfers, *shortages)


# Status changes and events ------------------------------------------------------------------------

def _transition(uow: UnitOfWork, rx: Prescription, action: Action, **facts: Any) -> Status:
    """Take ``action`` (refused unless the state machine allows it); ``facts`` say more of why (see
    :class:`StatusReason`)."""
    new = next_status(Status(rx.status), action)
    _set_status(uow, rx, new, action.value, StatusReason(action.value, **facts))
    return new


def _set_status(uow: UnitOfWork, rx: Prescription, status: Status, event: str, reason: StatusReason) -> None:
    previous = rx.status
    _say_status(uow, rx, status, reason)
    record_event(uow, rx, event, previous)


def _say_status(uow: UnitOfWork, rx: Prescription, status: Status, reason: StatusReason) -> None:
    rx.status, rx.updated_at = status.value, uow.now()
    rx.status_reason, rx.status_facts = reason.text(), reason.facts()


def record_event(uow: UnitOfWork, rx: Prescription, event_type: str, previous: str | None = None) -> None:
    """Write an outbox event for ``rx``, which the delivery job sends to every active subscription of its hospital."""
    if rx.id is None:
        uow.flush()  # the event names the prescription by its id
    payload = {"prescription_id": rx.id, "number": rx.number, "status": rx.status, "previous_status": previous,
               "reason": rx.status_reason, "pharmacy": (rx.routing or {}).get("pharmacy"),
               "issue": rx.current_issue + 1, "issues_total": rx.issues_total}
    passed_over = (rx.status_facts or {}).get("passed_over")
    if passed_over:  # the prescriber is told that, and why, the pharmacy it nominated was passed over
        payload["nomination_passed_over"] = passed_over
    # The delivery job makes the event into a delivery per subscription of the hospital (webhooks.fan_out): the
    # request sends no query for them, and the outbox row, written with the change's commit, is what guarantees the
    # delivery.
    add_row(uow.session, EVENTS, {
        "consortium_id": rx.consortium_id, "event_id": str(uuid.uuid4()), "prescription_id": rx.id,
        "prescriber_site_id": rx.prescriber_site_id, "pharmacy_site_id": rx.pharmacy_site_id, "type": event_type,
        "status": rx.status, "payload": payload, "at": uow.now(), "fanned_out": False})


# Reads --------------------------------------------------------------------------------------------

def _visible(uow: UnitOfWork, rx: Prescription) -> bool:
    p = uow.principal
    if p.role is Role.PRESCRIBER:
        return rx.prescriber_site_id == p.site_id
    if p.role is Role.PHARMACIST:
        return rx.pharmacy_site_id == p.site_id
    return True


@dataclass
class _Parts:
    """A prescription with what its answer and its work need: its items, its dispenses (oldest first), the drugs of
    both and the trace codes each dispense gave (by dispense id). Loaded once a request; what the request adds to it
    is added here too, so that the answer is built from what the transaction has, not read again."""

    rx: Prescription
    items: list[PrescriptionItem]
    dispenses: list[Dispense]
    drugs: dict[int, Drug]
    trace_codes: dict[int, list[str]] = field(default_factory=dict)

    def this_issue(self) -> list[Dispense]:
        return [d for d in self.dispenses if d.issue == self.rx.current_issue]

    def given(self) -> dict[int, int]:
        """Units given of each item in this issue."""
        given: dict[int, int] = {}
        for d in self.this_issue():
            given[d.item_id] = given.get(d.item_id, 0) + d.quantity
        return given


# What every action on a prescription reads, built once (each action would otherwise build it again): the
# prescription with its items and their drugs; its dispenses with their trace codes, and the drugs of those that gave
# a substitute (the others' drugs are the items', loaded already).
_WHOLE = (select(Prescription, PrescriptionItem, Drug)
          .outerjoin(PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id)
          .outerjoin(Drug, Drug.id == PrescriptionItem.drug_id)
          .where(Prescription.id == bindparam("rx_id")).order_by(PrescriptionItem.id))
_WHOLE_LOCKED = _WHOLE.with_for_update(of=Prescription).execution_options(populate_existing=True)
_DISPENSED = (select(Dispense, TraceCode.code)
              .outerjoin(TraceCodeDispense, TraceCodeDispense.movement_id == Dispense.movement_id)
              .outerjoin(TraceCode, TraceCode.id == TraceCodeDispense.trace_code_id)
              .where(Dispense.prescription_id == bindparam("rx_id")).order_by(Dispense.id, TraceCodeDispense.id))


def _load(uow: UnitOfWork, rx_id: int, *, for_update: bool = False) -> _Parts:
    """The prescription with its items and their drugs in one statement (the row lock, with ``for_update``, on the
    prescription alone), and its dispenses with their trace codes in a second one, asked only of a prescription
    that can have been dispensed (a join of all seven tables costs more to plan and to read than the two); the drug
    of a substitute given, in a third, only when there is one."""
    rows = uow.session.execute(_WHOLE_LOCKED if for_update else _WHOLE, {"rx_id": rx_id}).all()
    if not rows or not _visible(uow, rows[0][0]):
        # Patient data is shown only to those who need it: another site's prescription does not exist here.
        raise NotFound(Message("prescription %(id)s not found", id=rx_id))
    rx = rows[0][0]
    whole = _Parts(rx, [item for _, item, _ in rows if item is not None], [],
                   {drug.id: drug for _, _, drug in rows if drug is not None})
    if has_dispensed(Status(rx.status), rx.current_issue):
        dispenses: dict[int, Dispense] = {}
        for given, code in uow.session.execute(
                _DISPENSED.execution_options(populate_existing=for_update), {"rx_id": rx.id}):
            dispenses.setdefault(given.id, given)
            if code is not None:
                whole.trace_codes.setdefault(given.id, []).append(code)
        whole.dispenses = list(dispenses.values())
        # The drugs of substitutes given (the others are the items'): no statement when none was.
        whole.drugs.update(drugs_by_id(uow, {d.drug_id for d in whole.dispenses} - whole.drugs.keys()))
    return whole


def _load_for_pharmacy(uow: UnitOfWork, rx_id: int) -> _Parts:
    whole = _load(uow, rx_id, for_update=True)
    uow.ensure_acts_for(whole.rx.pharmacy_site_id, what=Message("prescription %(id)s", id=rx_id))
    return whole


@dataclass
class PrescriptionView:
    prescription: Prescription
    items: list[PrescriptionItem]
    dispenses: list[Dispense]
    drugs: dict[int, Drug]
    clinical: bool = False  # whether the reader may see the patient's clinical facts
    trace_codes: dict[int, list[str]] = field(default_factory=dict)  # by dispense id

    @property
    def second_check_needed(self) -> bool:
        """Whether this issue has a controlled drug that no second pharmacist has confirmed yet."""
        rx = self.prescription
        rows = [d for d in self.dispenses if d.issue == rx.current_issue]
        return any(needs_second_check([self.drugs[d.drug_id].controlled_class]) for d in rows) and \
            any(d.checked_at is None for d in rows)


def get_prescription(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    with uow:
        return _view(uow, _load(uow, rx_id))


def _view(uow: UnitOfWork, whole: _Parts) -> PrescriptionView:
    """The answer, from what the request has loaded and done (nothing is read again after the commit)."""
    rx = whole.rx
    p = uow.principal
    clinical = sees_clinical_facts(p.role.value, p.site_id, prescriber_site_id=rx.prescriber_site_id,
                                   pharmacy_site_id=rx.pharmacy_site_id)
    return PrescriptionView(rx, list(whole.items), list(whole.dispenses), dict(whole.drugs), clinical,
                            {k: list(v) for k, v in whole.trace_codes.items()})


def _trace_codes_of(uow: UnitOfWork, dispenses: Sequence[Dispense]) -> dict[int, list[str]]:
    """The trace codes each of ``dispenses`` gave, by dispense id."""
    codes: dict[int, list[str]] = {}
    by_movement = {d.movement_id: d.id for d in dispenses}
    if by_movement:
        for movement_id, code in uow.session.execute(
                select(TraceCodeDispense.movement_id, TraceCode.code)
                .join(TraceCode, TraceCode.id == TraceCodeDispense.trace_code_id)
                .where(TraceCodeDispense.movement_id.in_(sorted(by_movement))).order_by(TraceCodeDispense.id)):
            codes.setdefault(by_movement[movement_id], []).append(code)
    return codes


def _listed(uow: UnitOfWork, stmt: Any, *, site_id: int | None = None, q: str | None = None,
            kind: str | None = None) -> Any:
    """``stmt`` over the prescriptions the caller may list (a pharmacist's site's, a hospital's own, or all), found
    by ``q`` (the number, the patient's pseudonym, a drug's code, name or pinyin) and of ``kind``."""
    p = uow.principal
    if p.role is Role.PHARMACIST:
        stmt = stmt.where(Prescription.pharmacy_site_id == p.site_id)
    elif p.role is Role.PRESCRIBER:
        stmt = stmt.where(Prescription.prescriber_site_id == p.site_id)
    elif site_id is not None:
        stmt = stmt.where(Prescription.pharmacy_site_id == site_id)
    if q and q.strip():
        term = contains(q.strip().lower())
        stmt = stmt.where(or_(
            func.lower(Prescription.number).like(term, escape="\\"),
            func.lower(Prescription.patient_ref).like(term, escape="\\"),
            exists(select(PrescriptionItem.id).join(Drug, Drug.id == PrescriptionItem.drug_id).where(
                PrescriptionItem.prescription_id == Prescription.id, drug_matches(q)))))
    if kind:
        stmt = stmt.where(Prescription.kind == kind)
    return stmt


def list_prescriptions(uow: UnitOfWork, page: PageRequest, *, status: str | None = None,
                       statuses: Sequence[str] = (), site_id: int | None = None, q: str | None = None,
                       kind: str | None = None, newest_first: bool = False) -> Page[Prescription]:
    """The caller's worklist: a pharmacist's site's prescriptions, a hospital's own, or all (admin); found by
    ``q`` (number, patient, drug) and filtered by status and kind."""
    with uow:
        stmt = _listed(uow, select(Prescription), site_id=site_id, q=q, kind=kind)
        if status is not None:
            stmt = stmt.where(Prescription.status == status)
        if statuses:
            stmt = stmt.where(Prescription.status.in_(list(statuses)))
        order = (Prescription.updated_at.desc(), Prescription.id.desc()) if newest_first \
            else (Prescription.updated_at, Prescription.id)
        return fetch_page(uow.session, stmt.order_by(*order), page)


def worklist_counts(uow: UnitOfWork, *, q: str | None = None, kind: str | None = None) -> dict[str, int]:
    """The pharmacist's site's prescriptions counted by status (found by ``q``, of ``kind``)."""
    with uow:
        rows = uow.session.execute(_listed(uow, select(Prescription.status, func.count()), q=q, kind=kind)
                                   .where(Prescription.pharmacy_site_id == uow.principal.site_id)
                                   .group_by(Prescription.status))
        return {status: count for status, count in rows}


def _returned(uow: UnitOfWork, stmt: Any, q: str | None) -> Any:
    stmt = stmt.where(PrescriptionReturn.site_id == uow.principal.site_id)
    if q and q.strip():
        stmt = stmt.where(func.lower(PrescriptionReturn.number).like(contains(q.strip().lower()), escape="\\"))
    return stmt


def returned_here(uow: UnitOfWork, page: PageRequest, *, q: str | None = None) -> Page[PrescriptionReturn]:
    """What the pharmacist's site gave back, newest first: the number, who, when and why (not the patient: the
    prescription is another pharmacy's now)."""
    with uow:
        stmt = _returned(uow, select(PrescriptionReturn), q)
        return fetch_page(uow.session, stmt.order_by(PrescriptionReturn.at.desc(), PrescriptionReturn.id.desc()),
                          page)


def drugs_of(uow: UnitOfWork, rx_ids: Sequence[int]) -> dict[int, list[Drug]]:
    """The drugs of each prescription listed, in the order prescribed (for a worklist's rows)."""
    with uow:
        found: dict[int, list[Drug]] = {rx_id: [] for rx_id in rx_ids}
        for rx_id, drug in uow.session.execute(
                select(PrescriptionItem.prescription_id, Drug).join(Drug, Drug.id == PrescriptionItem.drug_id)
                .where(PrescriptionItem.prescription_id.in_(sorted(set(rx_ids)))).order_by(PrescriptionItem.id)):
            found[rx_id].append(drug)
        return found


def prescription_events(uow: UnitOfWork, rx_id: int) -> list[PrescriptionEvent]:
    """What happened to one prescription, oldest first (for those who may see it)."""
    with uow:
        rx = _load(uow, rx_id).rx
        return list(uow.session.scalars(select(PrescriptionEvent).where(PrescriptionEvent.prescription_id == rx.id)
                                        .order_by(PrescriptionEvent.id)))


def list_events(uow: UnitOfWork, after: int, limit: int) -> list[PrescriptionEvent]:
    """Events after a cursor, oldest first: a hospital sees its prescriptions', a pharmacy its own."""
    with uow:
        stmt = select(PrescriptionEvent).where(PrescriptionEvent.id > after)
        p = uow.principal
        if p.role is Role.PRESCRIBER:
            stmt = stmt.where(PrescriptionEvent.prescriber_site_id == p.site_id)
        elif p.role is Role.PHARMACIST:
            stmt = stmt.where(PrescriptionEvent.pharmacy_site_id == p.site_id)
        return list(uow.session.scalars(stmt.order_by(PrescriptionEvent.id).limit(limit)))


# Pharmacy work ------------------------------------------------------------------------------------

def accept(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    """The pharmacist's review accepts the prescription."""
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        _transition(uow, whole.rx, Action.ACCEPT)
        uow.commit()
        return _view(uow, whole)


def reject(uow: UnitOfWork, rx_id: int, reason_code: str, note: str = "") -> PrescriptionView:
    """The pharmacist's review rejects it with a reason; it goes back to the prescriber, stock is released."""
    check_reason(reason_code, REJECT_REASONS, "rejection")
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        _transition(uow, whole.rx, Action.REJECT, reason_code=reason_code, note=note)
        release_stock(uow, _cause(whole.rx))
        uow.commit()
        return _view(uow, whole)


def return_prescription(uow: UnitOfWork, rx_id: int, reason_code: str, note: str = "") -> PrescriptionView:
    """Give the prescription back for stock or operational reasons: it is routed again, never here again.

    Returns the prescription as it leaves: the returning pharmacy will not see it afterwards."""
    check_reason(reason_code, RETURN_REASONS, "return")
    return _routed_afresh(uow, lambda may_restart: _return(uow, rx_id, reason_code, note, may_restart))


def _return(uow: UnitOfWork, rx_id: int, reason_code: str, note: str, may_restart: bool) -> PrescriptionView:
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        rx = whole.rx
        next_status(Status(rx.status), Action.RETURN)  # refuse early, before anything moves
        release_stock(uow, _cause(rx))
        returned_by = rx.pharmacy_site_id
        rx.returned_from = [*rx.returned_from, returned_by] if returned_by else list(rx.returned_from)
        site = uow.session.get(Site, returned_by) if returned_by else None
        if returned_by is not None:  # kept in the returning pharmacy's history, which no longer sees the patient
            uow.session.add(PrescriptionReturn(consortium_id=rx.consortium_id, prescription_id=rx.id,
                                               site_id=returned_by, number=rx.number, reason_code=reason_code,
                                               note=note, actor=uow.principal.label, at=uow.now()))
        _route(uow, whole, event="returned", exclude=frozenset(rx.returned_from),
               returned=Returned(site.code if site else "", reason_code, note), may_restart=may_restart)
        uow.commit()
        return _view(uow, whole)


def stock_arrived(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    """Stock came for a prescription awaiting it: reserve it here and put it back in the worklist."""
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        rx = whole.rx
        next_status(Status(rx.status), Action.STOCK_ARRIVED)
        _hold_needs(uow, rx, rx.pharmacy_site_id, _needs(uow, rx, whole.items))  # type: ignore[arg-type]
        _transition(uow, rx, Action.STOCK_ARRIVED)
        uow.commit()
        return _view(uow, whole)


def _reserve_issue(uow: UnitOfWork, rx: Prescription) -> None:
    """Hold every item of the current issue at the prescription's pharmacy (OutOfStock if one is short)."""
    _hold_needs(uow, rx, rx.pharmacy_site_id, _needs(uow, rx, _items(uow, rx)))  # type: ignore[arg-type]


def _hold_needs(uow: UnitOfWork, rx: Prescription, site_id: int, needs: Sequence[_Need]) -> None:
    """Hold every need at a site for the prescription, all or none (all its drugs' lots locked at once)."""
    hold_all(uow, site_id, [StockNeed(n.item.drug_id, n.item.quantity, n.supply_until) for n in needs], _cause(rx),
             flush=False)  # nothing reads the holds back by id: their lots' changes go in the commit's statement


def resume_awaiting(uow: UnitOfWork, site_id: int, drug_ids: Sequence[int], first: int | None = None) -> list[int]:
    """Stock of ``drug_ids`` came to ``site_id`` (a transfer or a delivery): every prescription waiting there
    that can now be filled whole gets its stock reserved and goes back to the worklist, the one the stock was
    asked for (``first``) before the others, then oldest first. Joins the caller's transaction; returns the
    prescriptions moved on."""
    waiting = sorted(uow.session.scalars(
        select(Prescription).where(
            Prescription.status == Status.AWAITING_STOCK.value, Prescription.pharmacy_site_id == site_id,
            Prescription.id.in_(select(PrescriptionItem.prescription_id)
                                .where(PrescriptionItem.drug_id.in_(list(drug_ids)))))
        .order_by(Prescription.id).with_for_update().execution_options(populate_existing=True)).all(),
        key=lambda rx: rx.id != first)
    moved = []
    for rx in waiting:
        savepoint = uow.session.begin_nested()
        try:
            _reserve_issue(uow, rx)
        except OutOfStock:
            savepoint.rollback()  # still short of something: it keeps waiting
            continue
        savepoint.commit()
        _transition(uow, rx, Action.STOCK_ARRIVED)
        moved.append(rx.id)
    return moved


def prepare(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        _transition(uow, whole.rx, Action.PREPARE)
        uow.commit()
        return _view(uow, whole)


@dataclass(frozen=True)
class DispenseLine:
    item_id: int
    quantity: int | None = None  # default: what is left of this issue
    lots: tuple[LotChoice, ...] = ()
    lot_reason: str = ""
    substitute_drug_id: int | None = None
    substitution_reason: str = ""
    trace_codes: tuple[str, ...] = ()  # the packs' codes as scanned (药品追溯码)


def dispense(uow: UnitOfWork, rx_id: int, lines: Sequence[DispenseLine] = ()) -> PrescriptionView:
    """Dispense this issue, in full or in part: FEFO lots by default, other lots only with a reason,
    substitution only within the equivalence group and where the prescriber allowed it."""
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        rx = whole.rx
        current = Status(rx.status)
        if current not in (Status.PREPARED, Status.PARTIALLY_DISPENSED):
            next_status(current, Action.DISPENSE_PART)
        items = {i.id: i for i in whole.items}
        given = whole.given()
        if lines and all(line.quantity == 0 for line in lines):
            raise ValidationFailed(Message("nothing to dispense: every quantity is 0"), {"items": "all zero"})
        scanned = read_trace_codes({f"items[{n}].trace_codes": line.trace_codes for n, line in enumerate(lines)})
        codes_for = {line.item_id: scanned.get(f"items[{n}].trace_codes", []) for n, line in enumerate(lines)}
        # A line of 0 units leaves its item for later; no line at all dispenses everything left.
        todo = [line for line in lines if line.quantity != 0] or [
            DispenseLine(item_id) for item_id in items if given.get(item_id, 0) < items[item_id].quantity]
        needs = {n.item.id: n for n in _needs(uow, rx, whole.items)}
        # Every drug this dispense may take, substitutes included, locked at once (see lock_stock).
        locked, held = lock_stock_held_for(uow, rx.pharmacy_site_id, sorted(  # type: ignore[arg-type]
            {items[line.item_id].drug_id for line in todo if line.item_id in items}
            | {line.substitute_drug_id for line in todo if line.substitute_drug_id is not None}), _cause(rx))
        scanned_any = False
        for index, line in enumerate(todo):
            item = items.get(line.item_id)
            if item is None:
                raise ValidationFailed(Message("item %(item)s is not on prescription %(number)s", item=line.item_id,
                                               number=rx.number),
                                       {f"items[{index}]": "unknown"})
            left = item.quantity - given.get(item.id, 0)
            quantity = line.quantity if line.quantity is not None else left
            if quantity <= 0 or quantity > left:
                prescribed = needs[item.id].drug
                raise ValidationFailed(Message("%(drug)s: %(left)s left to dispense in this issue, not %(quantity)s",
                                               drug=f"{prescribed.code} {prescribed.generic_name}", left=left,
                                               quantity=quantity),
                                       {f"items[{index}].quantity": quantity})
            drug_id, substituted, note = item.drug_id, False, line.lot_reason
            if line.substitute_drug_id is not None and line.substitute_drug_id != item.drug_id:
                drug_id, note = _substitute(uow, rx, item, line, needs[item.id].drug), line.substitution_reason
                substituted = True
            # What stays held for the item is what is left to give (units taken from other lots than the held
            # ones would otherwise stay held as well); a substitute's dispense leaves the prescribed drug's holds.
            left_after = item.quantity - given.get(item.id, 0) - quantity
            movements = dispense_stock(uow, rx.pharmacy_site_id, drug_id, quantity,  # type: ignore[arg-type]
                                       needs[item.id].supply_until, _cause(rx), lots=line.lots or None,
                                       lot_reason=line.lot_reason, locked=locked[drug_id], held=held[drug_id],
                                       keep_held=None if substituted else left_after,
                                       flush=False)  # the dispenses name their movements by relationship
            lots = {lot.id: lot for lot in locked[drug_id]}
            codes: Sequence[ScannedCode] = codes_for.get(item.id, [])
            if codes:
                scanned_any = True
                give_trace_codes(uow, rx.pharmacy_site_id, drug_id, movements, codes,  # type: ignore[arg-type]
                                 where=f"items[{index}].trace_codes")
            if drug_id not in whole.drugs:
                whole.drugs[drug_id] = uow.get(Drug, drug_id, what="drug")
            for movement in movements:
                lot = lots[movement.lot_id]
                row = Dispense(
                    consortium_id=rx.consortium_id, prescription_id=rx.id, item_id=item.id, issue=rx.current_issue,
                    site_id=lot.site_id, drug_id=drug_id, lot_id=lot.id, lot_number=lot.lot_number,
                    expiry_date=lot.expiry_date, quantity=-movement.quantity, substituted=substituted, note=note,
                    movement=movement, actor=uow.principal.label, at=uow.now())
                uow.session.add(row)
                whole.dispenses.append(row)
            given[item.id] = given.get(item.id, 0) + quantity
            if substituted:
                keep_held(uow, _cause(rx), rx.pharmacy_site_id, item.drug_id, left_after)  # type: ignore[arg-type]
        complete = all(given.get(i.id, 0) >= i.quantity for i in items.values())
        _transition(uow, rx, Action.DISPENSE_ALL if complete else Action.DISPENSE_PART)
        uow.commit()
        if scanned_any:  # which pack went with which lot was decided as the codes were given
            whole.trace_codes = _trace_codes_of(uow, whole.dispenses)
        return _view(uow, whole)


def _substitute(uow: UnitOfWork, rx: Prescription, item: PrescriptionItem, line: DispenseLine, prescribed: Drug) -> int:
    substitute = uow.get(Drug, line.substitute_drug_id, what="drug")
    check_substitution(allowed=item.substitution_allowed, reason=line.substitution_reason,
                       prescribed_code=prescribed.code, prescribed_group=prescribed.equivalence_group,
                       substitute_code=substitute.code, substitute_group=substitute.equivalence_group,
                       substitute_active=substitute.active)
    # The prescribed drug's reservation for this item is given back: the substitute is taken FEFO instead.
    release_stock(uow, _cause(rx), site_id=rx.pharmacy_site_id, drug_id=item.drug_id)
    return substitute.id


def prepare_and_dispense(uow: UnitOfWork, rx_id: int, lines: Sequence[DispenseLine] = ()) -> PrescriptionView:
    """Prepared and dispensed at once (the pharmacist who picks the packs gives them): one step on the pages."""
    with uow:
        prepare(uow, rx_id)
        view = dispense(uow, rx_id, lines)
        uow.commit()
        return view


def _controlled(whole: _Parts, rows: Sequence[Dispense]) -> list[Drug]:
    """The controlled drugs ``rows`` gave, by code."""
    drugs = sorted({whole.drugs[row.drug_id] for row in rows}, key=lambda d: d.code)
    return [d for d in drugs if needs_second_check([d.controlled_class])]


def second_check(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    """A second pharmacist of the pharmacy confirms what was dispensed of this issue (双人核对): the drugs, the
    lots and the quantities. Controlled drugs (narcotic, psychotropic, toxic, radioactive) are handed over only
    after it. The principal is the second pharmacist: never one who dispensed this issue."""
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        rx = whole.rx
        if uow.principal.role is not Role.PHARMACIST:
            raise ValidationFailed(Message("a second check is made by a pharmacist of the pharmacy"),
                                   {"role": uow.principal.role.value})
        if rx.status != Status.DISPENSED.value:
            raise Conflict(Message("a second check confirms what was dispensed; the prescription is %(status)s",
                                   status=Message.word(rx.status)), {"status": rx.status})
        rows = whole.this_issue()
        checked = next((row for row in rows if row.checked_by), None)
        if checked is not None:
            raise Conflict(Message("already confirmed by %(who)s", who=checked.checked_by), {"checked_by": "done"})
        dispensers = sorted({row.actor for row in rows})
        if uow.principal.label in dispensers:
            raise Conflict(Message("the second check is made by another pharmacist than the one who dispensed "
                                   "(%(who)s)", who=dispensers), {"checked_by": uow.principal.label})
        for row in rows:
            row.checked_by, row.checked_at = uow.principal.label, uow.now()
        audit.record(uow.session, "second_check", "Prescription", rx.id,
                     f"issue {rx.current_issue + 1} confirmed by a second pharmacist")
        uow.commit()
        return _view(uow, whole)


def hand_over(uow: UnitOfWork, rx_id: int) -> PrescriptionView:
    """The patient collects this issue; a long prescription then waits for its next issue. A controlled drug is
    handed over only once a second pharmacist has confirmed it (:func:`second_check`)."""
    with uow:
        whole = _load_for_pharmacy(uow, rx_id)
        rx = whole.rx
        last = rx.current_issue + 1 >= rx.issues_total
        action = Action.HAND_OVER_LAST if last else Action.HAND_OVER
        rows = whole.this_issue()
        controlled = _controlled(whole, rows)
        if controlled and any(row.checked_at is None for row in rows):
            next_status(Status(rx.status), action)  # a prescription not dispensed is refused as such first
            raise Conflict(Message("%(drugs)s is a controlled drug: a second pharmacist confirms it before it is "
                                   "handed over", drugs=[f"{d.code} {d.generic_name}" for d in controlled]),
                           {"second_check": "required"})
        _transition(uow, rx, action, issue=rx.current_issue + 1, issues_total=rx.issues_total)
        for row in rows:
            row.handed_over_at, row.handed_over_by = uow.now(), uow.principal.label
        if not last:
            rx.current_issue += 1
            rx.next_due_on = uow.today() + timedelta(days=rx.interval_days or 0)
        uow.commit()
        return _view(uow, whole)


def cancel(uow: UnitOfWork, rx_id: int, note: str = "") -> PrescriptionView:
    """The prescriber withdraws the prescription; refused once dispensing has started."""
    with uow:
        whole = _load(uow, rx_id, for_update=True)
        rx = whole.rx
        if uow.principal.role is Role.PRESCRIBER and rx.prescriber_site_id != uow.principal.site_id:
            raise NotFound(Message("prescription %(id)s not found", id=rx_id))
        _transition(uow, rx, Action.CANCEL, note=note)
        release_stock(uow, _cause(rx))
        uow.commit()
        return _view(uow, whole)


# Scheduled jobs -----------------------------------------------------------------------------------

def expire_uncollected(uow: UnitOfWork) -> int:
    """Prescriptions not dispensed by the end of their validity expire and release their stock."""
    with uow:
        stale = uow.session.scalars(select(Prescription).where(
            Prescription.status.in_([s.value for s in BEFORE_DISPENSING]),
            Prescription.valid_until < uow.today()).order_by(Prescription.id).with_for_update()
            .execution_options(populate_existing=True)).all()
        for rx in stale:
            _transition(uow, rx, Action.EXPIRE, on=rx.valid_until)
            release_stock(uow, _cause(rx))
        uow.commit()
        return len(stale)


def prepare_due_installments(uow: UnitOfWork, notice_days: int, limits: Limits | None = None) -> int:
    """Reserve the next issue of long prescriptions due within ``notice_days`` and tell their pharmacy."""
    limits = limits or Limits()
    with uow:
        due = uow.session.scalars(select(Prescription).where(
            Prescription.status == Status.SCHEDULED.value,
            Prescription.next_due_on <= uow.today() + timedelta(days=notice_days)).order_by(Prescription.id)
            .with_for_update().execution_options(populate_existing=True)).all()
        for rx in due:
            assert rx.next_due_on is not None
            rx.valid_until = rx.next_due_on + timedelta(days=limits.max_validity_days)
            items = _items(uow, rx)
            needs = _needs(uow, rx, items)
            savepoint = uow.session.begin_nested()
            try:
                _hold_needs(uow, rx, rx.pharmacy_site_id, needs)  # type: ignore[arg-type]
            except OutOfStock:
                savepoint.rollback()
                sites = list(uow.session.scalars(select(Site.id).where(Site.dispenses.is_(True))))
                requests = _request_stock(uow, rx, rx.pharmacy_site_id, needs,  # type: ignore[arg-type]
                                          _usable_stock(uow, needs, sites), sites)
                _transition(uow, rx, Action.ISSUE_AWAITS_STOCK, requests=requests)
                continue
            savepoint.commit()
            _transition(uow, rx, Action.ISSUE_DUE, issue=rx.current_issue + 1, issues_total=rx.issues_total,
                        on=rx.next_due_on)
        uow.commit()
        return len(due)
