"""Drug trace codes (药品追溯码) as a scanner types them: plain Python, no Flask, no session.

A pack's code comes in one of two forms:

- the national code: 20 digits (most domestic drugs);
- a GS1 element string (some imported drugs, and a DataMatrix on some domestic ones): (01) GTIN, (17) expiry,
  (10) lot, (21) serial, read by `biip <https://pypi.org/project/biip/>`_, typed by the scanner either as the
  printed form ``(01)06901234567892(17)271231(10)A123(21)X9`` or raw, variable fields ended by the GS character
  (``\\x1d``), perhaps after a symbology identifier (``]d2``). A GS1 code names one pack only with its serial.

A keyboard-wedge scanner types the code and then Enter; whatever it typed around the code (spaces, the symbology
identifier) is not part of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from biip import ParseError
from biip.gs1_messages import GS1Message
from biip.gtin import Gtin

from pharmacy.errors import Message, ValidationFailed
from pharmacy.inventory.domain import normalise_lot_number

NATIONAL = "national"
GS1 = "gs1"
NATIONAL_CODE = re.compile(r"\d{20}")
SYMBOLOGY_IDENTIFIER = re.compile(r"^\][A-Za-z][0-9A-Za-z]")
GROUP_SEPARATOR = "\x1d"
LONGEST_SCAN = 100


@dataclass(frozen=True)
class ScannedCode:
    """One pack's code as read: ``code`` is its one spelling (the 20 digits, or ``(01)<GTIN>(21)<serial>``), the
    key under which it belongs to one lot; a GS1 code also says its lot and expiry, when printed."""

    code: str
    kind: str
    gtin: str | None = None
    serial: str | None = None
    lot_number: str | None = None
    expiry_date: date | None = None

    @property
    def product(self) -> str:
        """What product and pack the code is of: the GTIN, or the national code's first 7 digits (药品标识码)."""
        return self.gtin if self.gtin else self.code[:7]


def read_trace_code(raw: str) -> ScannedCode:
    """The code a scan typed, or :class:`ValidationFailed` saying why it is not one."""
    typed = raw.strip().replace(" ", "")
    if len(typed) > LONGEST_SCAN:
        raise _unreadable(raw[:40] + "…", Message("longer than %(most)s characters", most=LONGEST_SCAN))
    typed = SYMBOLOGY_IDENTIFIER.sub("", typed)
    if not typed:
        raise _unreadable(raw, Message("nothing was scanned"))
    if NATIONAL_CODE.fullmatch(typed):
        return ScannedCode(typed, NATIONAL)
    if typed.isdigit() and len(typed) in (8, 12, 13, 14):
        raise _unreadable(typed, Message("this is the product's barcode (GTIN), not a pack's trace code: scan the "
                                         "trace code (20 digits or a GS1 DataMatrix)"))
    try:
        message = GS1Message.parse_hri(typed) if typed.startswith("(") else GS1Message.parse(typed)
    except ParseError:
        raise _unreadable(typed, Message("not a trace code: a national code has 20 digits, a GS1 code starts with "
                                         "(01) and its GTIN")) from None
    fields = {element.ai.ai: element for element in message.element_strings}
    gtin = fields.get("01")
    if gtin is None:
        raise _unreadable(typed, Message("a GS1 trace code starts with (01), the product's GTIN"))
    try:
        Gtin.parse(gtin.value)
    except ParseError:
        raise _unreadable(typed, Message("the GTIN %(gtin)s has a wrong check digit: scan it again",
                                         gtin=gtin.value)) from None
    serial = fields.get("21")
    if serial is None or not serial.value:
        raise _unreadable(typed, Message("this GS1 code names a product, not one pack: it has no serial number (21)"))
    lot = fields.get("10")
    expiry = fields.get("17")
    return ScannedCode(f"(01){gtin.value}(21){serial.value}", GS1, gtin=gtin.value, serial=serial.value,
                       lot_number=lot.value if lot is not None else None,
                       expiry_date=expiry.date if expiry is not None else None)


def _unreadable(typed: str, why: Message) -> ValidationFailed:
    return ValidationFailed(Message("%(code)s cannot be read as a trace code: %(why)s", code=typed, why=why),
                            {"trace_codes": why})


def packs_for(units: int, pack_size: int) -> int:
    """How many packs ``units`` come from: a part pack is a pack (拆零: its code goes with the first part given)."""
    return -(-units // max(pack_size, 1))


def lot_and_expiry(codes: Sequence[ScannedCode]) -> tuple[str, date] | None:
    """The lot number and expiry the scanned GS1 codes print, when they all print the same ones."""
    said = {(c.lot_number, c.expiry_date) for c in codes if c.lot_number and c.expiry_date}
    if len(said) != 1:
        return None
    lot, expiry = said.pop()
    assert lot is not None and expiry is not None
    return lot, expiry


def assign_to_lots(codes: Sequence[ScannedCode], lots: Sequence[tuple[int, str, int]], pack_size: int,
                   taken: Mapping[int, int] | None = None) -> dict[str, int]:
    """Which of the ``lots`` a dispense took (lot id, lot number, units, first-expiry first-out) each code not yet
    known comes from: the lot it prints, else the lots in order, as many codes to each as it gave packs (less the
    packs ``taken`` by codes known to be of that lot). A code printing a lot the dispense did not take, or more
    codes than packs, is refused."""
    room = {lot_id: packs_for(units, pack_size) - (taken or {}).get(lot_id, 0) for lot_id, _, units in lots}
    by_number = {number: lot_id for lot_id, number, _ in lots}
    assigned: dict[str, int] = {}
    for code in codes:
        if code.lot_number:
            lot_id = by_number.get(normalise_lot_number(code.lot_number))
            if lot_id is None:
                raise ValidationFailed(Message(
                    "trace code %(code)s is of lot %(lot)s, which this dispense does not take: give that lot, or scan "
                    "the pack in hand", code=code.code, lot=code.lot_number), {"trace_codes": code.code})
            assigned[code.code] = lot_id
            room[lot_id] -= 1
    for code in codes:
        if code.code in assigned:
            continue
        lot_id = next((lot for lot, left in room.items() if left > 0), None)
        if lot_id is None:
            break
        assigned[code.code] = lot_id
        room[lot_id] -= 1
    if len(assigned) < len(codes) or any(left < 0 for left in room.values()):
        packs = sum(packs_for(units, pack_size) for _, _, units in lots)
        scanned = len(codes) + sum((taken or {}).values())
        raise ValidationFailed(Message("%(count)s trace codes scanned for %(packs)s packs given: each pack has one",
                                       count=scanned, packs=packs), {"trace_codes": scanned})
    return assigned
