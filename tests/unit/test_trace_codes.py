"""Trace codes as a scanner types them: the national 20 digits, and GS1 element strings read properly."""

from __future__ import annotations

from datetime import date

import pytest

from pharmacy.errors import ValidationFailed
from pharmacy.inventory.trace_codes import (
    GS1,
    NATIONAL,
    ScannedCode,
    assign_to_lots,
    lot_and_expiry,
    packs_for,
    read_trace_code,
)

GTIN = "06901234567892"  # a valid GTIN-14 (check digit 2)


def test_reads_the_national_twenty_digit_code_with_what_the_scanner_typed_around_it() -> None:
    code = read_trace_code("  81234567890123456789\n")
    assert (code.code, code.kind, code.product) == ("81234567890123456789", NATIONAL, "8123456")


def test_reads_a_gs1_code_in_its_printed_form_with_lot_expiry_and_serial() -> None:
    code = read_trace_code(f"(01){GTIN}(17)271231(10)A123(21)SN0001")
    assert code == ScannedCode(f"(01){GTIN}(21)SN0001", GS1, gtin=GTIN, serial="SN0001", lot_number="A123",
                               expiry_date=date(2027, 12, 31))


def test_reads_a_raw_gs1_code_with_group_separators_and_a_symbology_identifier() -> None:
    code = read_trace_code(f"]d201{GTIN}17271200" + "10A-9\x1d21X77")
    assert (code.code, code.lot_number, code.expiry_date) == (f"(01){GTIN}(21)X77", "A-9", date(2027, 12, 31))
    # The same pack scanned in its other form is the same code.
    assert read_trace_code(f"(01){GTIN}(21)X77(10)A-9").code == code.code


@pytest.mark.parametrize(("typed", "why"), [
    ("", "nothing was scanned"),
    ("6901234567892", "product's barcode"),
    ("1234567890", "not a trace code"),
    (f"(01){GTIN[:-1]}1(21)X", "wrong check digit"),
    (f"(01){GTIN}(10)A1", "no serial number"),
    ("(10)A1(21)X", "starts with (01)"),
    ("9" * 101, "longer than 100"),
])
def test_refuses_what_is_not_one_packs_code_saying_why(typed: str, why: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        read_trace_code(typed)
    assert why in str(refused.value)


def test_a_part_pack_counts_as_a_pack() -> None:
    assert [packs_for(units, 28) for units in (1, 28, 29, 56)] == [1, 1, 2, 2]


def test_lot_and_expiry_come_from_gs1_codes_only_when_they_agree() -> None:
    a = read_trace_code(f"(01){GTIN}(17)271231(10)L1(21)1")
    b = read_trace_code(f"(01){GTIN}(17)271231(10)L1(21)2")
    other = read_trace_code(f"(01){GTIN}(17)280131(10)L2(21)3")
    assert lot_and_expiry([a, b]) == ("L1", date(2027, 12, 31))
    assert lot_and_expiry([a, other]) is None and lot_and_expiry([read_trace_code("8" * 20)]) is None


def test_codes_go_to_the_lot_they_print_else_to_the_lots_given_in_order_one_per_pack() -> None:
    printed = read_trace_code(f"(01){GTIN}(10)l-2(21)1")  # lot numbers are compared in their one spelling
    plain = [read_trace_code(f"8{n:019d}") for n in range(3)]
    lots = [(11, "L-1", 30), (12, "L-2", 10)]  # 30 units are 2 packs of 28, 10 units 1 pack
    assert assign_to_lots([*plain[:2], printed], lots, 28) == {plain[0].code: 11, plain[1].code: 11,
                                                               printed.code: 12}
    with pytest.raises(ValidationFailed, match="4 trace codes scanned for 3 packs"):
        assign_to_lots([*plain, printed], lots, 28)
    with pytest.raises(ValidationFailed, match="which this dispense does not take"):
        assign_to_lots([read_trace_code(f"(01){GTIN}(10)L-9(21)1")], lots, 28)
