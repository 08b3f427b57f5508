"""Procurement rules as plain Python: demand forecasts, price tiers, which transfers the consortium allows,
shortage penalties, and the states of purchase and transfer orders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import reduce
from statistics import NormalDist
from typing import Any, Protocol

from optimizer.plan import BudgetUse
from pharmacy.errors import InvalidTransition, Message, ValidationFailed

# Forecasts --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Forecast:
    """A site's need for a drug over a horizon: usage from the ledger, safety stock, known demand."""

    daily_usage: float
    daily_sd: float
    expected: float  # usage over the horizon at the historical rate
    safety: float  # cover for the usage's variability at the service level over the horizon
    known: int  # routed prescriptions not yet served and installments due within the horizon
    units: int  # what the plan must provide: max(expected, known) + safety, whole units


def forecast(daily_dispensed: Sequence[int], horizon_days: int, service_level: float, known_units: int = 0,
             ) -> Forecast:
    """Forecast over ``horizon_days`` from the units dispensed on each day of the history window.

    Usage is the window's daily mean; safety stock is z(service level) x daily standard deviation x
    sqrt(horizon). Known demand (prescriptions already routed, installments falling due) is part of usage
    that the history already reflects, so it raises the expected usage only where it exceeds it.
    """
    if not daily_dispensed:
        raise ValueError("the history window has no days")
    if not 0.5 <= service_level < 1:
        raise ValidationFailed("the service level is a probability from 0.5 to below 1",
                               {"service_level": service_level})
    n = len(daily_dispensed)
    mean = sum(daily_dispensed) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in daily_dispensed) / (n - 1)) if n > 1 else 0.0
    expected = mean * horizon_days
    safety = NormalDist().inv_cdf(service_level) * sd * math.sqrt(horizon_days)
    units = math.ceil(max(expected, known_units) + safety - 1e-9)
    return Forecast(mean, sd, expected, safety, known_units, max(units, 0))


def installments_due(next_due: date | None, interval_days: int, remaining: int, until: date) -> int:
    """How many of a long prescription's ``remaining`` issues, the next on ``next_due`` and then every
    ``interval_days``, fall due on or before ``until`` (no interval: only the next one can)."""
    if next_due is None or remaining <= 0 or next_due > until:
        return 0
    if interval_days <= 0:
        return 1
    return min(remaining, (until - next_due).days // interval_days + 1)


# Offers -----------------------------------------------------------------------------------------------

CENT = Decimal("0.01")
PRICE_PLACES = Decimal("0.0001")


def money(amount: float | Decimal | int) -> Decimal:
    """An amount as stored: Decimal yuan to the fen, rounded half up, once, where it is stored (the optimizer
    computes in floats)."""
    return Decimal(str(amount)).quantize(CENT, ROUND_HALF_UP)


def price(amount: float | Decimal | int) -> Decimal:
    """A price per pack or per unit as stored: to a hundredth of a fen."""
    return Decimal(str(amount)).quantize(PRICE_PLACES, ROUND_HALF_UP)


class PriceTier(Protocol):
    """An all-units price: from ``min_packs`` packs of an offer, every pack costs ``price_per_pack``."""

    min_packs: int
    price_per_pack: Decimal


def parse_tiers(text: str) -> list[dict[str, Any]]:
    """``"0:12.50;100:11.80"`` (minimum packs : price per pack; ascending) into checked tiers."""
    tiers: list[dict[str, Any]] = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        bits = part.split(":")
        if len(bits) != 2:
            raise ValueError(Message("tier %(tier)r is not minimum_packs:price_per_pack", tier=part))
        try:
            tiers.append({"min_packs": int(bits[0]), "price_per_pack": price(Decimal(bits[1].strip()))})
        except (ValueError, InvalidOperation):
            raise ValueError(Message("tier %(tier)r: the minimum is a whole number of packs and the price a number",
                                     tier=part)) from None
    check_tiers(tiers)
    return tiers


def check_tiers(tiers: Sequence[dict[str, Any]]) -> None:
    """At least one tier; minimums ascending from zero or more; prices positive and never rising."""
    if not tiers:
        raise ValueError(Message("an offer needs at least one price tier"))
    for n, tier in enumerate(tiers):
        if tier["min_packs"] < 0 or tier["price_per_pack"] <= 0:
            raise ValueError(Message("tier %(n)s: the minimum is not negative and the price is positive", n=n + 1))
        if n and tier["min_packs"] <= tiers[n - 1]["min_packs"]:
            raise ValueError(Message("tier %(n)s: minimums must ascend (%(before)s then %(after)s)", n=n + 1,
                                     before=tiers[n - 1]["min_packs"], after=tier["min_packs"]))
        if n and tier["price_per_pack"] > tiers[n - 1]["price_per_pack"]:
            raise ValueError(Message("tier %(n)s: a larger volume cannot cost more per pack", n=n + 1))


def parse_site_costs(text: str) -> dict[str, Decimal]:
    """``"XH-C01:0.5;XH-C02:0.8"`` (site code : delivery cost per pack)."""
    costs: dict[str, Decimal] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        code, _, cost = part.rpartition(":")
        try:
            value = price(Decimal(cost.strip()))
        except (ValueError, InvalidOperation):
            raise ValueError(Message("%(part)r is not site_code:cost_per_pack", part=part)) from None
        if not code or value < 0:
            raise ValueError(Message("%(part)r is not site_code:cost_per_pack with a cost of 0 or more", part=part))
        costs[code] = value
    return costs


def tier_price(tiers: Sequence[PriceTier], packs: int) -> Decimal:
    """The price per pack of an all-units offer for ``packs``: the highest tier whose minimum they reach."""
    reached = [t for t in tiers if packs >= t.min_packs] or [tiers[0]]
    return reached[-1].price_per_pack


def base_unit_price(tiers: Sequence[PriceTier], pack_size: int) -> float:
    """What a dispensing unit costs at an offer's first tier (the optimizer's float)."""
    return float(tiers[0].price_per_pack) / pack_size


# Transfers and penalties ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    code: str
    district: str | None
    parent_code: str | None
    at: tuple[float, float] | None


def transfer_allowed(a: Place, b: Place, distance: float | None, max_km: float) -> bool:
    """The consortium moves stock within a district, along the tree (a site and its upper site), or
    between any two sites closer than ``max_km``."""
    if a.code == b.code:
        return False
    return bool((a.district and a.district == b.district) or a.parent_code == b.code or b.parent_code == a.code
                or (distance is not None and distance <= max_km))


ESSENTIAL_PENALTY_FACTOR = 20.0  # a missing essential drug costs the consortium far more than its price
OTHER_PENALTY_FACTOR = 5.0
MIN_PENALTY = 1.0


def shortage_penalty(unit_price: float, essential: bool) -> float:
    factor = ESSENTIAL_PENALTY_FACTOR if essential else OTHER_PENALTY_FACTOR
    return max(MIN_PENALTY, unit_price * factor)


# Orders -----------------------------------------------------------------------------------------------

class TransferStatus(StrEnum):
    # A plan's move of stock that is not at the sender yet (packs it buys, stock another transfer brings): the
    # order waits, holding nothing, and is asked for once the stock arrives there.
    AWAITING_STOCK = "awaiting_stock"
    REQUESTED = "requested"
    SHIPPED = "shipped"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    CANCELLED = "cancelled"


TRANSFER_ACTIONS: dict[str, frozenset[TransferStatus]] = {
    "ship": frozenset({TransferStatus.REQUESTED}),
    "receive": frozenset({TransferStatus.SHIPPED, TransferStatus.PARTIALLY_RECEIVED}),
    "cancel": frozenset({TransferStatus.REQUESTED, TransferStatus.AWAITING_STOCK}),
}


# Orders a site still has to ship or receive.
OPEN_TRANSFER_STATUSES = frozenset({TransferStatus.AWAITING_STOCK, TransferStatus.REQUESTED, TransferStatus.SHIPPED,
                                    TransferStatus.PARTIALLY_RECEIVED})
OPEN_PURCHASE_ORDER_STATUSES = frozenset({"open", "partially_received"})


ALERT_QUIET_DAYS = 7  # an alert taken in hand is not raised again for this long


def alert_step(open_alert: bool, acknowledged_on: date | None, today: date, *, worse: bool = False) -> str:
    """What raising an alert does, given the latest alert with its key: ``refresh`` the one still open (no second
    alert of one thing), stay ``quiet`` a while after it was acknowledged unless things got ``worse`` (a lot now
    within 30 days of its expiry, or expired), or raise a ``new`` one."""
    if open_alert:
        return "refresh"
    if acknowledged_on is not None and (today - acknowledged_on).days < ALERT_QUIET_DAYS and not worse:
        return "quiet"
    return "new"


def check_transfer_action(status: str, action: str) -> None:
    if TransferStatus(status) not in TRANSFER_ACTIONS[action]:
        allowed = reduce(lambda either, other: Message("%(either)s or %(other)s", either=either, other=other),
                         [Message.word(s.value) for s in sorted(TRANSFER_ACTIONS[action])])
        raise InvalidTransition(Message("the transfer order is %(status)s: only an order that is %(allowed)s can "
                                        "%(action)s", status=Message.word(status), allowed=allowed,
                                        action=Message.word(action)), {"status": status})


def is_late(expected_on: date | None, outstanding: int, today: date) -> bool:
    """Whether what an order still has to bring is late: expected before today and not all here yet (what is
    expected today is not late until the day is over)."""
    return outstanding > 0 and expected_on is not None and expected_on < today


def received_status(received: int, expected: int) -> str:
    """The state of an order once ``received`` of ``expected`` units arrived."""
    if received <= 0:
        return "open"
    return "received" if received >= expected else "partially_received"


class PlanStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    APPROVED = "approved"
    CANCELLED = "cancelled"


CANCELLABLE_PLAN_STATUSES = frozenset({PlanStatus.QUEUED, PlanStatus.RUNNING})


def check_plan_cancellable(run_id: int, status: str) -> None:
    """Only a run that has not finished can be cancelled: a queued one never runs, a running one stops."""
    if PlanStatus(status) not in CANCELLABLE_PLAN_STATUSES:
        raise InvalidTransition(Message("plan run %(id)s is %(status)s: only a queued or running run can be "
                                        "cancelled", id=run_id, status=Message.word(status)),
                                {"status": status})


@dataclass(frozen=True)
class RunProgress:
    """Where a plan run is: its step and the step's facts. Said in English for the API (``text``, the run's
    ``progress_note``); pages say the facts (``facts``, its ``progress_facts``) in their own language.

    Steps: ``queued``, ``reading`` (forecasts, stock and offers), ``inputs`` (frozen: so many drugs, sites,
    offers and lots), ``models`` (``done`` of ``total`` drug models solved), ``baseline`` (the site-by-site
    baseline, ``done`` of ``total`` drugs), ``planned`` (the plan's status, gap and how it kept within a
    budget), and the ends without a plan, ``cancelled`` and ``failed``."""

    step: str
    done: int | None = None
    total: int | None = None
    drugs: int | None = None
    sites: int | None = None
    offers: int | None = None
    lots: int | None = None
    plan_status: str | None = None
    gap: float | None = None
    budget_use: BudgetUse | None = None

    def text(self) -> str:
        if self.step == "reading":
            return "reading forecasts, stock and offers"
        if self.step == "inputs":
            return f"inputs frozen: {self.drugs} drugs, {self.sites} sites, {self.offers} offers, {self.lots} lots"
        if self.step == "models":
            return f"{self.done} of {self.total} drug models solved"
        if self.step == "baseline":
            return f"site-by-site baseline: {self.done} of {self.total} drugs"
        if self.step == "planned":
            budget = f"; {self.budget_use.text()}" if self.budget_use else ""
            return f"planned: {self.plan_status}, gap {100 * (self.gap or 0):.2f}%{budget}"
        return self.step

    def facts(self) -> dict[str, Any]:
        """The facts as JSON: the step and what applies to it."""
        facts = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        if self.budget_use is not None:
            facts["budget_use"] = asdict(self.budget_use)
        return facts
