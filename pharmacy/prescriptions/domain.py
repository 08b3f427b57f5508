"""Prescription rules as plain Python: the state machine, the policy checks, the routing policy."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from pharmacy.catalog.domain import ControlledClass, SpecialStorage
from pharmacy.consortium.domain import distance_km
from pharmacy.errors import InvalidTransition, Message, ValidationFailed


class Status(StrEnum):
    ROUTED = "routed"  # held by a pharmacy, stock reserved, waiting for review
    AWAITING_STOCK = "awaiting_stock"  # held by a pharmacy that waits for a transfer or a purchase
    ACCEPTED = "accepted"  # reviewed and accepted by the pharmacist
    PREPARED = "prepared"
    PARTIALLY_DISPENSED = "partially_dispensed"
    DISPENSED = "dispensed"  # every item of this issue dispensed, not yet handed over
    SCHEDULED = "scheduled"  # a long prescription between two issues
    COMPLETED = "completed"  # the last issue handed over
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Action(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    RETURN = "return"
    STOCK_ARRIVED = "stock_arrived"
    PREPARE = "prepare"
    DISPENSE_PART = "dispense_part"
    DISPENSE_ALL = "dispense_all"
    HAND_OVER = "hand_over"
    HAND_OVER_LAST = "hand_over_last"
    ISSUE_DUE = "issue_due"
    ISSUE_AWAITS_STOCK = "issue_awaits_stock"
    CANCEL = "cancel"
    EXPIRE = "expire"


S, A = Status, Action
# The whole state machine: (state, action) -> next state. Anything else is refused.
TRANSITIONS: dict[tuple[Status, Action], Status] = {
    (S.ROUTED, A.ACCEPT): S.ACCEPTED,
    (S.ROUTED, A.REJECT): S.REJECTED,
    (S.ROUTED, A.RETURN): S.ROUTED,  # to another pharmacy (or awaiting_stock there)
    (S.ROUTED, A.CANCEL): S.CANCELLED,
    (S.ROUTED, A.EXPIRE): S.EXPIRED,
    (S.AWAITING_STOCK, A.STOCK_ARRIVED): S.ROUTED,
    (S.AWAITING_STOCK, A.REJECT): S.REJECTED,
    (S.AWAITING_STOCK, A.RETURN): S.ROUTED,
    (S.AWAITING_STOCK, A.CANCEL): S.CANCELLED,
    (S.AWAITING_STOCK, A.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, A.PREPARE): S.PREPARED,
    (S.ACCEPTED, A.REJECT): S.REJECTED,
    (S.ACCEPTED, A.RETURN): S.ROUTED,
    (S.ACCEPTED, A.CANCEL): S.CANCELLED,
    (S.ACCEPTED, A.EXPIRE): S.EXPIRED,
    (S.PREPARED, A.DISPENSE_PART): S.PARTIALLY_DISPENSED,
    (S.PREPARED, A.DISPENSE_ALL): S.DISPENSED,
    (S.PREPARED, A.CANCEL): S.CANCELLED,
    (S.PREPARED, A.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_DISPENSED, A.DISPENSE_PART): S.PARTIALLY_DISPENSED,
    (S.PARTIALLY_DISPENSED, A.DISPENSE_ALL): S.DISPENSED,
    (S.DISPENSED, A.HAND_OVER): S.SCHEDULED,
    (S.DISPENSED, A.HAND_OVER_LAST): S.COMPLETED,
    (S.SCHEDULED, A.ISSUE_DUE): S.ACCEPTED,  # reviewed once; each later issue is reserved and ready
    (S.SCHEDULED, A.ISSUE_AWAITS_STOCK): S.AWAITING_STOCK,
    (S.SCHEDULED, A.EXPIRE): S.EXPIRED,
}

OPEN_STATUSES = frozenset({S.ROUTED, S.AWAITING_STOCK, S.ACCEPTED, S.PREPARED, S.PARTIALLY_DISPENSED, S.DISPENSED})
# For the dashboard's fill rate: of the prescriptions closed (or handed over), those that were filled.
FILLED_STATUSES = frozenset({S.DISPENSED, S.SCHEDULED, S.COMPLETED})
CLOSED_STATUSES = FILLED_STATUSES | {S.REJECTED, S.CANCELLED, S.EXPIRED}
# Before any unit has left the shelf: the prescriber may still cancel, and validity can still run out.
BEFORE_DISPENSING = frozenset({S.ROUTED, S.AWAITING_STOCK, S.ACCEPTED, S.PREPARED})
# The statuses of a first issue that only a dispense leads to; every later issue follows a dispensed one.
DISPENSING_STARTED = frozenset({S.PARTIALLY_DISPENSED, S.DISPENSED, S.SCHEDULED, S.COMPLETED})


def has_dispensed(status: Status, current_issue: int) -> bool:
    """Whether anything of the prescription can have been dispensed yet (so that a prescription that cannot is not
    asked for its dispenses)."""
    return current_issue > 0 or status in DISPENSING_STARTED


def allowed_actions(current: Status) -> frozenset[Action]:
    """What may be done to a prescription in its state (what a page offers)."""
    return frozenset(a for (s, a) in TRANSITIONS if s is current)


def next_status(current: Status, action: Action) -> Status:
    """The state after ``action``, or :class:`InvalidTransition` naming the current state."""
    try:
        return TRANSITIONS[(current, action)]
    except KeyError:
        allowed = [Message.word(a) for a in sorted(a.value for (s, a) in TRANSITIONS if s is current)]
        status, doing = Message.word(current.value), Message.word(action.value.replace("_", " "))
        if action is Action.CANCEL and current not in BEFORE_DISPENSING:
            raise InvalidTransition(Message(
                "the prescription is %(status)s: dispensing has started, so it can no longer be cancelled",
                status=status), {"status": current.value}) from None
        if not allowed:
            raise InvalidTransition(Message("cannot %(action)s a prescription that is %(status)s (a final state)",
                                            action=doing, status=status), {"status": current.value}) from None
        raise InvalidTransition(Message("cannot %(action)s a prescription that is %(status)s; from %(status)s it may: "
                                        "%(allowed)s", action=doing, status=status, allowed=allowed),
                                {"status": current.value}) from None


REJECT_REASONS = frozenset({"dose", "interaction", "contraindication", "allergy", "incomplete", "duplicate",
                            "policy", "other"})
RETURN_REASONS = frozenset({"out_of_stock", "closed", "staff", "cold_chain_unavailable", "other"})


def check_substitution(*, allowed: bool, reason: str, prescribed_code: str, prescribed_group: str | None,
                       substitute_code: str, substitute_group: str | None, substitute_active: bool) -> None:
    """A drug may replace the prescribed one only where the prescriber allowed it, with a reason, and
    within the prescribed drug's equivalence group."""
    if not allowed:
        raise ValidationFailed(Message("the prescriber did not allow substitution of %(drug)s",
                                       drug=prescribed_code), {"substitute_drug_id": substitute_code})
    if not reason.strip():
        raise ValidationFailed(Message("a substitution needs a reason"), {"substitution_reason": "required"})
    if not substitute_active or not prescribed_group or substitute_group != prescribed_group:
        raise ValidationFailed(Message("%(substitute)s is not in the equivalence group of %(drug)s",
                                       substitute=substitute_code, drug=prescribed_code),
                               {"substitute_drug_id": substitute_code})


def check_reason(reason_code: str, allowed: frozenset[str], what: str) -> None:
    if not reason_code:
        raise ValidationFailed(Message("a %(what)s needs its reason: one of %(allowed)s", what=Message.word(what),
                                       allowed=[Message.word(r) for r in sorted(allowed)]),
                               {"reason_code": "required"})
    if reason_code not in allowed:
        raise ValidationFailed(Message("unknown %(what)s reason %(code)r; use one of: %(allowed)s",
                                       what=Message.word(what), code=reason_code,
                                       allowed=[Message.word(r) for r in sorted(allowed)]),
                               {"reason_code": reason_code})


# Why a prescription is where it is -----------------------------------------------------------------

@dataclass(frozen=True)
class Returned:
    """A pharmacy gave the prescription back (see ``RETURN_REASONS``)."""

    site: str  # the pharmacy's code
    reason_code: str
    note: str = ""


@dataclass(frozen=True)
class StockRequest:
    """What a pharmacy short of a drug asked for: a transfer from the member with the most usable surplus
    (``donor``), or, when none has enough, a shortage recorded for procurement (``donor`` None)."""

    drug: str  # the drug's code
    quantity: int
    donor: str | None = None  # the donor's code

    def text(self) -> str:
        if self.donor is not None:
            return f"transfer of {self.quantity} {self.drug} requested from {self.donor}"
        return f"the consortium has no surplus of {self.drug}: shortage of {self.quantity} recorded for procurement"


@dataclass(frozen=True)
class PassedOver:
    """The prescriber nominated a pharmacy that cannot take the prescription, so it went elsewhere. ``reason``:
    ``cannot_fill`` (short of ``short_items`` in usable stock), ``may_not_dispense`` (the drugs are not on its
    formulary, or it does not dispense) or ``stock_taken`` (another prescription took its stock meanwhile)."""

    pharmacy: str  # the nominated pharmacy's code
    reason: str
    short_items: tuple[str, ...] = ()

    def text(self) -> str:
        return _PASSED_OVER[self.reason](self)

    def facts(self) -> dict[str, Any]:
        return {"pharmacy": self.pharmacy, "reason": self.reason, "short_items": list(self.short_items)}


_PASSED_OVER: dict[str, Callable[[PassedOver], str]] = {
    "cannot_fill": lambda p: f"the nominated pharmacy {p.pharmacy} cannot fill {', '.join(p.short_items)} from "
                             "usable stock",
    "may_not_dispense": lambda p: f"the nominated pharmacy {p.pharmacy} may not dispense these drugs",
    "stock_taken": lambda p: f"the nominated pharmacy {p.pharmacy} could not hold the stock: another prescription "
                             "took it meanwhile",
}


def passed_over_nomination(ranked: Sequence[RankedCandidate], chosen_site_id: int, nominated_site_id: int | None,
                           nominated_code: str | None) -> PassedOver | None:
    """Why the nominated pharmacy did not get the prescription that went to ``chosen_site_id``, or None when it
    did (or none was nominated)."""
    if nominated_site_id is None or nominated_site_id == chosen_site_id or nominated_code is None:
        return None
    nominated = next((r for r in ranked if r.candidate.site_id == nominated_site_id), None)
    if nominated is None:
        return PassedOver(nominated_code, "may_not_dispense")
    if nominated.candidate.short_items:
        return PassedOver(nominated_code, "cannot_fill", nominated.candidate.short_items)
    return PassedOver(nominated_code, "stock_taken")


@dataclass(frozen=True)
class StatusReason:
    """Why a prescription came to its status: what happened (``what``: an action's name, or ``routed`` /
    ``awaiting_stock`` for routing) and its facts. Prescribing systems read it in English (``text``, the API's
    ``status_reason``); pages say the facts (``facts``, the API's ``status_facts``) in their own language."""

    what: str
    returned: Returned | None = None  # routing again after a return
    pharmacy: str | None = None  # routed to, or waiting at (a code)
    why: str = ""  # routed: the routing reason, as ``RankedCandidate.reason`` says it
    requests: tuple[StockRequest, ...] = ()  # waiting for stock
    reason_code: str = ""  # a rejection's
    note: str = ""  # a rejection's or cancellation's
    issue: int | None = None  # a long prescription's issue (1-based), of ``issues_total``
    issues_total: int | None = None
    on: date | None = None  # an issue's due day, or the day validity ended
    passed_over: PassedOver | None = None  # routed elsewhere than the prescriber nominated

    def text(self) -> str:
        said = _SAID[self.what](self)
        if self.passed_over is not None:
            said = f"{self.passed_over.text()}; {said}"
        if self.returned is None:
            return said
        note = f": {self.returned.note}" if self.returned.note else ""
        return f"returned by {self.returned.site} ({self.returned.reason_code}{note}); {said}"

    def facts(self) -> dict[str, Any]:
        """The facts as JSON: only those that apply."""
        facts: dict[str, Any] = {"what": self.what}
        if self.returned is not None:
            facts["returned"] = {"site": self.returned.site, "reason_code": self.returned.reason_code,
                                 "note": self.returned.note}
        if self.passed_over is not None:
            facts["passed_over"] = self.passed_over.facts()
        if self.requests:
            facts["requests"] = [{"drug": r.drug, "quantity": r.quantity, "donor": r.donor} for r in self.requests]
        for name in ("pharmacy", "reason_code", "note", "issue", "issues_total"):
            if getattr(self, name) not in (None, ""):
                facts[name] = getattr(self, name)
        if self.on is not None:
            facts["on"] = self.on.isoformat()
        return facts


def _requested(reason: StatusReason) -> str:
    return "; ".join(r.text() for r in reason.requests)


_SAID: dict[str, Callable[[StatusReason], str]] = {
    "routed": lambda r: f"routed to {r.why}",
    "awaiting_stock": lambda r: f"no pharmacy can fill every item; waiting at {r.pharmacy}: {_requested(r)}",
    Action.ACCEPT: lambda r: "accepted on review",
    Action.REJECT: lambda r: f"{r.reason_code}: {r.note}".strip(": "),
    Action.STOCK_ARRIVED: lambda r: "stock arrived and is reserved",
    Action.PREPARE: lambda r: "prepared",
    Action.DISPENSE_PART: lambda r: "partly dispensed",
    Action.DISPENSE_ALL: lambda r: "dispensed",
    Action.HAND_OVER: lambda r: f"issue {r.issue} of {r.issues_total} handed over",
    Action.HAND_OVER_LAST: lambda r: "handed over",
    Action.ISSUE_DUE: lambda r: f"issue {r.issue} of {r.issues_total} due on {r.on}; stock reserved",
    Action.ISSUE_AWAITS_STOCK: _requested,
    Action.CANCEL: lambda r: r.note or "cancelled by the prescriber",
    Action.EXPIRE: lambda r: f"not collected by {r.on}",
}


# Clinical facts for the pharmacist's review ---------------------------------------------------------

CONTROLLED_CLASSES = frozenset({ControlledClass.NARCOTIC, ControlledClass.PSYCHOTROPIC_I,
                                ControlledClass.PSYCHOTROPIC_II, ControlledClass.TOXIC, ControlledClass.RADIOACTIVE})
GENDERS = ("male", "female", "other", "unknown")  # FHIR's AdministrativeGender
CRITICALITIES = ("low", "high", "unable-to-assess")  # FHIR's AllergyIntolerance.criticality
MOST_CLINICAL_ENTRIES = 20
LONGEST_CLINICAL = 200


def sees_clinical_facts(role: str, site_id: int | None, *, prescriber_site_id: int,
                        pharmacy_site_id: int | None) -> bool:
    """Whether a principal may see a prescription's clinical facts (birth date, sex, diagnoses, allergies): the
    pharmacy that holds it, to review and hand it over, and the hospital that prescribed it; no one else (an
    administrator, an officer, a pharmacy it was returned from)."""
    if role == "pharmacist":
        return site_id is not None and site_id == pharmacy_site_id
    if role == "prescriber":
        return site_id == prescriber_site_id
    return False


def age_on(birth_date: date, day: date) -> tuple[int, str]:
    """A patient's age as a pharmacist reads it: whole years, or months under two, or days under one month."""
    months = (day.year - birth_date.year) * 12 + day.month - birth_date.month - (day.day < birth_date.day)
    if months >= 24:
        return months // 12, "years"
    if months >= 1:
        return months, "months"
    return max((day - birth_date).days, 0), "days"


def needs_second_check(controlled_classes: Iterable[str]) -> bool:
    """Whether drugs of these controlled classes are confirmed by a second pharmacist before they are handed over
    (双人核对): narcotics, psychotropics, toxic and radioactive drugs."""
    return any(c in CONTROLLED_CLASSES for c in controlled_classes)


def check_patient(birth_date: date | None, today: date) -> list[dict[str, str]]:
    """What is wrong with the patient's facts as sent."""
    if birth_date is None:
        return []
    if birth_date > today:
        return [{"field": "patient.birth_date", "reason": "is in the future"}]
    if birth_date.year < 1900:
        return [{"field": "patient.birth_date", "reason": "is before 1900"}]
    return []


# Policy -------------------------------------------------------------------------------------------

# How much a prescription may say, whichever way it comes in (the JSON API's schemas and FHIR alike).
LONGEST = {"number": 60, "patient": 80, "prescriber": 120, "district": 100, "drug_code": 60, "dosage": 500,
           "clinical": LONGEST_CLINICAL}
MOST_UNITS_PER_ISSUE = 100_000
MOST_SUPPLY_DAYS = 366
MOST_REPEATS = 12

class Kind(StrEnum):
    ORDINARY = "ordinary"
    EMERGENCY = "emergency"
    LONG = "long"


@dataclass(frozen=True)
class Limits:
    """Configurable limits, in days."""

    max_validity_days: int = 3
    ordinary_supply_days: int = 7
    emergency_supply_days: int = 3
    long_supply_days: int = 84
    controlled_supply_days: Mapping[str, int] = field(default_factory=lambda: {
        ControlledClass.NARCOTIC: 3, ControlledClass.PSYCHOTROPIC_I: 3, ControlledClass.PSYCHOTROPIC_II: 7,
        ControlledClass.TOXIC: 2, ControlledClass.RADIOACTIVE: 1,
    })


# Long prescriptions are for stable chronic care only.
LONG_EXCLUDED_CLASSES = frozenset({ControlledClass.NARCOTIC, ControlledClass.PSYCHOTROPIC_I,
                                   ControlledClass.PSYCHOTROPIC_II, ControlledClass.TOXIC,
                                   ControlledClass.RADIOACTIVE})
ANTIMICROBIAL_ATC_PREFIXES = ("J01", "J02", "J04", "J05")


@dataclass(frozen=True)
class DrugFacts:
    code: str
    active: bool
    controlled_class: str
    special_storage: str
    atc_code: str | None


@dataclass(frozen=True)
class ItemRequest:
    drug: DrugFacts | None  # None: the code matched no drug
    code: str
    quantity: int
    supply_days: int
    repeats: int = 0
    interval_days: int | None = None


def check_policy(kind: Kind, issued_on: date, valid_until: date, today: date, items: Sequence[ItemRequest],
                 limits: Limits) -> list[dict[str, str]]:
    """Every rule the prescription breaks, itemised (an empty list means it may be accepted)."""
    problems: list[dict[str, str]] = []

    def refuse(where: str, why: str) -> None:
        problems.append({"field": where, "reason": why})

    if valid_until < issued_on:
        refuse("valid_until", "ends before the day of issue")
    elif (valid_until - issued_on).days > limits.max_validity_days:
        refuse("valid_until", f"a prescription is valid for at most {limits.max_validity_days} days from issue "
                              f"({issued_on.isoformat()} + {limits.max_validity_days})")
    if valid_until < today:
        refuse("valid_until", f"expired on {valid_until.isoformat()}")
    if issued_on > today:
        refuse("issued_on", "is in the future")
    if not items:
        refuse("items", "a prescription has at least one item")
    schedules = {(i.repeats, (i.interval_days or i.supply_days) if i.repeats else None) for i in items}
    if len(schedules) > 1:
        refuse("items", "all items of one prescription share one schedule of repeats and interval")
    for index, item in enumerate(items):
        where = f"items[{index}]"
        drug = item.drug
        if drug is None:
            refuse(f"{where}.drug", f"code {item.code} is not in the consortium catalog")
            continue
        if not drug.active:
            refuse(f"{where}.drug", f"drug {drug.code} is retired")
        total_days = item.supply_days * (1 + item.repeats)
        if kind is Kind.LONG:
            if total_days > limits.long_supply_days:
                refuse(f"{where}.supply_days", f"a long prescription covers at most {limits.long_supply_days} days "
                                               f"({total_days} asked)")
            if drug.controlled_class in LONG_EXCLUDED_CLASSES:
                refuse(f"{where}.drug", f"{drug.code} is {drug.controlled_class}: not allowed on a long prescription")
            if drug.special_storage != SpecialStorage.NONE:
                refuse(f"{where}.drug", f"{drug.code} needs {drug.special_storage} storage: not allowed on a long "
                                        "prescription")
            if (drug.atc_code or "").startswith(ANTIMICROBIAL_ATC_PREFIXES):
                refuse(f"{where}.drug", f"{drug.code} is an antimicrobial: not allowed on a long prescription")
            if item.interval_days is not None and item.interval_days < item.supply_days and item.repeats:
                refuse(f"{where}.interval_days", "issues may not overlap: the interval is at least the supply days")
        else:
            if item.repeats:
                refuse(f"{where}.repeats", "only long prescriptions are dispensed in installments")
            limit = limits.emergency_supply_days if kind is Kind.EMERGENCY else limits.ordinary_supply_days
            if item.supply_days > limit:
                refuse(f"{where}.supply_days", f"a {kind.value} prescription covers at most {limit} days "
                                               f"({item.supply_days} asked)")
        controlled_limit = limits.controlled_supply_days.get(drug.controlled_class)
        if controlled_limit is not None and item.supply_days > controlled_limit:
            refuse(f"{where}.supply_days", f"{drug.code} is {drug.controlled_class}: at most {controlled_limit} "
                                           f"days per prescription ({item.supply_days} asked)")
    return problems


# Routing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """A dispensing site as routing sees it."""

    site_id: int
    code: str
    district: str | None
    location: tuple[float, float] | None
    open_queue: int
    can_fill: bool
    short_items: tuple[str, ...] = ()


@dataclass(frozen=True)
class RankedCandidate:
    candidate: Candidate
    nominated: bool
    same_district: bool
    distance_km: float | None
    reason: str

    @property
    def facts(self) -> dict[str, Any]:
        """What ``reason`` says, as data: for a page to say it in its own language, and for other systems."""
        return {"pharmacy": self.candidate.code, "nominated": self.nominated, "can_fill": self.candidate.can_fill,
                "short_items": list(self.candidate.short_items),
                "district": self.candidate.district if self.same_district else None,
                "distance_km": None if self.distance_km is None else round(self.distance_km, 1),
                "open_queue": self.candidate.open_queue}


def rank_pharmacies(candidates: Sequence[Candidate], *, nominated_site_id: int | None,
                    patient_district: str | None, patient_location: tuple[float, float] | None
                    ) -> list[RankedCandidate]:
    """Order pharmacies by the routing policy, each with the reason it stands where it does.

    A nominated pharmacy that can fill wins; then pharmacies that can fill every item from usable stock;
    then the patient's district; then distance; then the shortest open queue; then site code.
    """
    ranked = []
    for c in candidates:
        nominated = c.site_id == nominated_site_id
        same_district = patient_district is not None and c.district == patient_district
        ranked.append(RankedCandidate(c, nominated, same_district, distance_km(c.location, patient_location), ""))

    def key(r: RankedCandidate) -> tuple[bool, bool, bool, float, int, str]:
        return (not (r.nominated and r.candidate.can_fill), not r.candidate.can_fill, not r.same_district,
                r.distance_km if r.distance_km is not None else math.inf, r.candidate.open_queue, r.candidate.code)

    ranked.sort(key=key)
    return [RankedCandidate(r.candidate, r.nominated, r.same_district, r.distance_km, _explain(r)) for r in ranked]


def _explain(r: RankedCandidate) -> str:
    c = r.candidate
    parts = []
    if r.nominated:
        parts.append("nominated by the prescriber")
    parts.append("can fill every item from usable stock" if c.can_fill
                 else "cannot fill " + ", ".join(c.short_items) + " from usable stock")
    if r.same_district:
        parts.append(f"in the patient's district ({c.district})")
    if r.distance_km is not None:
        parts.append(f"{r.distance_km:.1f} km from the patient")
    parts.append(f"{c.open_queue} open prescriptions")
    return f"{c.code}: " + "; ".join(parts)
