"""Stock rules as plain Python: movement kinds and reasons, and first-expiry first-out allocation."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from pharmacy.errors import Message, OutOfStock, ValidationFailed


class MovementKind(StrEnum):
    RECEIPT = "receipt"
    DISPENSE = "dispense"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    COUNT_ADJUSTMENT = "count_adjustment"
    EXPIRY_WRITE_OFF = "expiry_write_off"
    RETURN = "return"
    REVERSAL = "reversal"
    TRANSIT_LOSS = "transit_loss"  # units shipped by another member that did not arrive whole


class CauseType(StrEnum):
    PRESCRIPTION = "prescription"
    TRANSFER = "transfer"
    PURCHASE_ORDER = "purchase_order"
    COUNT = "count"
    MANUAL = "manual"


# Causes that are rows of the service: their id is the row's id. A manual cause names its own reference.
ROW_CAUSES = frozenset({CauseType.PRESCRIPTION, CauseType.TRANSFER, CauseType.PURCHASE_ORDER, CauseType.COUNT})
# What stock may be held for: a routed prescription, a transfer promised to another site, or a pharmacist's own
# hold (a ward's stock, a recall under investigation) under a reference of their choosing.
HOLD_CAUSES = frozenset({CauseType.PRESCRIPTION, CauseType.TRANSFER, CauseType.MANUAL})


@dataclass(frozen=True)
class Cause:
    """What caused a movement or a hold: a prescription, a transfer, a purchase order, a count (each by its row
    id), or a manual cause with a reference of its own."""

    type: CauseType
    id: str

    @property
    def row_id(self) -> int | None:
        """The id of the row that caused it; None for a manual cause (or an id that names no row)."""
        if self.type in ROW_CAUSES and self.id.isascii() and self.id.isdigit() and len(self.id) <= 18:
            return int(self.id)
        return None

    @property
    def may_hold(self) -> bool:
        """Whether stock may be held for it: a prescription or a transfer named by its row, or a manual hold."""
        if self.type is CauseType.MANUAL:
            return bool(self.id.strip())
        return self.type in HOLD_CAUSES and self.row_id is not None


_SPACES = re.compile(r"\s+")


def normalise_lot_number(raw: str) -> str:
    """The one spelling of a lot number, so that look-alikes are one lot: compatibility forms folded (full-width
    digits and letters, NFKC), invisible format characters (zero-width spaces) dropped, every kind of dash a
    hyphen-minus, runs of spaces one space, no space at either end, letters in upper case (printed lot numbers
    do not distinguish case)."""
    folded = unicodedata.normalize("NFKC", raw)
    kept = "".join("-" if unicodedata.category(c) == "Pd" else c for c in folded if unicodedata.category(c) != "Cf")
    return _SPACES.sub(" ", kept).strip().upper()


# Why units shipped by another member did not arrive whole: broken or spoiled on the way, not in the parcel, or
# another item than the one shipped.
TRANSIT_LOSS_REASONS = ("damaged", "missing", "wrong_item")


# Stock that comes in outside any order, and the movement each is: a donation or a central allocation is a receipt,
# a patient's return a return (to the shelf).
OUTSIDE_ORDER_RECEIPTS = {"donation": MovementKind.RECEIPT, "central_allocation": MovementKind.RECEIPT,
                          "patient_return": MovementKind.RETURN}
# Why stock is written off by hand: expired, recalled by its maker or the regulator, or damaged (broken, spoiled).
WRITE_OFF_REASONS = ("expired", "recalled", "damaged")


# Kinds a pharmacist records by hand on a lot; receipts, dispenses and reversals come through their own use cases.
MANUAL_KINDS = frozenset({MovementKind.EXPIRY_WRITE_OFF, MovementKind.RETURN, MovementKind.COUNT_ADJUSTMENT,
                          MovementKind.TRANSFER_OUT, MovementKind.TRANSFER_IN})

# No delivery, dispense or count moves more than ten million units at once (a province's year of a common drug
# is less), and no lot holds more than its quantity column can: beyond, a number is a typing slip or an attack.
MOST_UNITS_PER_MOVEMENT = 10_000_000
MOST_UNITS_PER_LOT = 2**31 - 1


# Which reason codes each kind of movement accepts, and the sign its quantity must have
# (+1 adds stock, -1 removes it, 0 either way).
REASONS: dict[MovementKind, tuple[int, frozenset[str]]] = {
    MovementKind.RECEIPT: (+1, frozenset({"purchase", "donation", "opening_balance", "central_allocation"})),
    MovementKind.DISPENSE: (-1, frozenset({"prescription", "emergency"})),
    MovementKind.TRANSFER_OUT: (-1, frozenset({"redistribution", "shortage_cover", "near_expiry"})),
    MovementKind.TRANSFER_IN: (+1, frozenset({"redistribution", "shortage_cover", "near_expiry"})),
    MovementKind.COUNT_ADJUSTMENT: (0, frozenset({"count_difference"})),
    MovementKind.EXPIRY_WRITE_OFF: (-1, frozenset({"expired", "recalled", "damaged"})),
    MovementKind.RETURN: (0, frozenset({"patient_return", "return_to_supplier"})),
    MovementKind.REVERSAL: (0, frozenset({"entry_error"})),
    MovementKind.TRANSIT_LOSS: (-1, frozenset(TRANSIT_LOSS_REASONS)),
}
# Patients return stock to the shelf; stock goes back to suppliers off it.
RETURN_SIGN = {"patient_return": +1, "return_to_supplier": -1}


def check_movement(kind: MovementKind, reason_code: str, quantity: int) -> None:
    """Refuse a movement whose reason or sign does not fit its kind."""
    sign, reasons = REASONS[kind]
    if reason_code not in reasons:
        raise ValidationFailed(
            f"reason code {reason_code!r} is not valid for a {kind.value} movement; use one of: "
            + ", ".join(sorted(reasons)), {"reason_code": reason_code})
    if quantity == 0:
        raise ValidationFailed("a movement changes the quantity: it cannot be zero", {"quantity": 0})
    if abs(quantity) > MOST_UNITS_PER_MOVEMENT:
        raise ValidationFailed(Message("a movement moves at most %(most)s units, not %(units)s",
                                       most=MOST_UNITS_PER_MOVEMENT, units=abs(quantity)), {"quantity": quantity})
    if kind is MovementKind.RETURN:
        sign = RETURN_SIGN[reason_code]
    if sign and (quantity > 0) != (sign > 0):
        direction = "adds" if sign > 0 else "removes"
        raise ValidationFailed(f"a {kind.value} ({reason_code}) {direction} stock; the quantity sign is wrong",
                               {"quantity": quantity})


@dataclass(frozen=True)
class LotStock:
    """What allocation needs to know of a lot."""

    lot_id: int
    lot_number: str
    expiry_date: date
    on_hand: int
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


@dataclass(frozen=True)
class Allocation:
    lot_id: int
    lot_number: str
    expiry_date: date
    quantity: int


def usable_on(expiry_date: date, day: date) -> bool:
    """The one rule of "usable on day D": a lot is good through its expiry date, and expired from the day after.
    Its SQL twin is :meth:`pharmacy.inventory.models.Lot.usable_on`."""
    return expiry_date >= day


def days_usable(expiry_date: date, today: date) -> int:
    """How many days a lot can still be used, today included (0 once it has expired): a lot expiring today has
    one day left."""
    return max(0, (expiry_date - today).days + 1)


SOON_DAYS = 30  # a lot this close to its expiry needs using up or moving now


def expiry_band(expiry_date: date, today: date, near_days: int) -> str:
    """How close a lot is to its expiry, as pages colour it and alerts name it: ``expired`` (not usable today),
    ``soon`` (within :data:`SOON_DAYS` days), ``near`` (within the near-expiry window) or ``ok``."""
    days = days_usable(expiry_date, today)
    if days == 0:
        return "expired"
    if days <= SOON_DAYS:
        return "soon"
    if days <= near_days:
        return "near"
    return "ok"


def is_usable(lot: LotStock, today: date, supply_until: date) -> bool:
    """A lot is usable for a supply if it is usable today and still on the day the patient's supply ends."""
    return usable_on(lot.expiry_date, max(today, supply_until))


def usable_quantity(lots: Iterable[LotStock], today: date, supply_until: date) -> int:
    return sum(max(lot.available, 0) for lot in lots if is_usable(lot, today, supply_until))


def allocate_fefo(lots: Sequence[LotStock], quantity: int, today: date, supply_until: date,
                  *, drug: str = "the drug") -> list[Allocation]:
    """Choose lots first-expiry first-out for ``quantity`` units.

    Skips expired lots and lots that expire before ``supply_until``; ties on expiry go to the lot with
    less available stock first (to empty part-used lots), then by lot number, so the choice is stable.
    Raises :class:`OutOfStock` saying how much is usable when there is not enough.
    """
    if quantity <= 0:
        raise ValidationFailed(Message("the quantity to allocate must be positive"), {"quantity": quantity})
    usable = sorted((lot for lot in lots if is_usable(lot, today, supply_until) and lot.available > 0),
                    key=lambda lot: (lot.expiry_date, lot.available, lot.lot_number, lot.lot_id))
    total = sum(lot.available for lot in usable)
    if total < quantity:
        raise OutOfStock(Message(
            "not enough usable stock of %(drug)s: %(wanted)s wanted, %(usable)s usable (unexpired on %(day)s and not "
            "reserved)", drug=drug, wanted=quantity, usable=total, day=supply_until.isoformat()),
            {"wanted": quantity, "usable": total, "supply_until": supply_until.isoformat()})
    allocations, remaining = [], quantity
    for lot in usable:
        take = min(lot.available, remaining)
        allocations.append(Allocation(lot.lot_id, lot.lot_number, lot.expiry_date, take))
        remaining -= take
        if remaining == 0:
            break
    return allocations


def check_lot_total(lot_number: str, on_hand: int, quantity: int) -> None:
    """Refuse a movement that would take a lot past what it can hold."""
    if on_hand + quantity > MOST_UNITS_PER_LOT:
        raise ValidationFailed(Message("lot %(lot)s holds %(on_hand)s: it can hold at most %(most)s units",
                                       lot=lot_number, on_hand=on_hand, most=MOST_UNITS_PER_LOT),
                               {"quantity": quantity})
