from datetime import date

import pytest

from pharmacy.errors import OutOfStock, ValidationFailed
from pharmacy.inventory.domain import LotStock, MovementKind, allocate_fefo, check_movement, usable_quantity

TODAY = date(2026, 11, 23)
SUPPLY_END = date(2026, 12, 21)  # four weeks of supply


def lot(lot_id: int, expiry: date, on_hand: int, reserved: int = 0, number: str | None = None) -> LotStock:
    return LotStock(lot_id, number or f"L{lot_id}", expiry, on_hand, reserved)


def picked(allocations):
    return [(a.lot_id, a.quantity) for a in allocations]


def test_dispenses_earliest_expiring_lot_first():
    lots = [lot(1, date(2027, 6, 1), 50), lot(2, date(2027, 1, 31), 50), lot(3, date(2028, 1, 1), 50)]
    assert picked(allocate_fefo(lots, 30, TODAY, SUPPLY_END)) == [(2, 30)]


def test_splits_across_lots_in_expiry_order():
    lots = [lot(1, date(2027, 6, 1), 40), lot(2, date(2027, 1, 31), 25), lot(3, date(2028, 1, 1), 100)]
    assert picked(allocate_fefo(lots, 90, TODAY, SUPPLY_END)) == [(2, 25), (1, 40), (3, 25)]


def test_skips_expired_lots():
    lots = [lot(1, date(2026, 11, 22), 100), lot(2, date(2027, 5, 1), 10)]
    assert picked(allocate_fefo(lots, 10, TODAY, TODAY)) == [(2, 10)]


def test_skips_lots_that_expire_before_the_supply_ends():
    lots = [lot(1, date(2026, 12, 20), 100), lot(2, date(2026, 12, 21), 5), lot(3, date(2027, 3, 1), 10)]
    # Lot 1 would expire the day before the patient's last dose; a lot expiring on that day still serves.
    assert picked(allocate_fefo(lots, 12, TODAY, SUPPLY_END)) == [(2, 5), (3, 7)]


def test_ties_on_expiry_empty_the_smaller_lot_first_then_by_lot_number():
    same_day = date(2027, 2, 1)
    lots = [lot(1, same_day, 30, number="B"), lot(2, same_day, 10, number="C"), lot(3, same_day, 30, number="A")]
    assert picked(allocate_fefo(lots, 45, TODAY, SUPPLY_END)) == [(2, 10), (3, 30), (1, 5)]


def test_reserved_units_are_not_allocated_again():
    lots = [lot(1, date(2027, 1, 1), 20, reserved=15), lot(2, date(2027, 2, 1), 20, reserved=20),
            lot(3, date(2027, 3, 1), 20)]
    assert picked(allocate_fefo(lots, 10, TODAY, SUPPLY_END)) == [(1, 5), (3, 5)]


def test_not_enough_usable_stock_says_how_much_is_usable():
    lots = [lot(1, date(2026, 12, 1), 500), lot(2, date(2027, 1, 1), 8), lot(3, date(2027, 1, 1), 10, reserved=5)]
    with pytest.raises(OutOfStock) as raised:
        allocate_fefo(lots, 20, TODAY, SUPPLY_END, drug="AMX500")
    assert raised.value.errors["usable"] == 13
    assert "20 wanted, 13 usable" in raised.value.message and "AMX500" in raised.value.message
    assert usable_quantity(lots, TODAY, SUPPLY_END) == 13


def test_a_quantity_must_be_positive():
    with pytest.raises(ValidationFailed):
        allocate_fefo([lot(1, date(2027, 1, 1), 5)], 0, TODAY, SUPPLY_END)


@pytest.mark.parametrize(("kind", "reason", "quantity"), [
    (MovementKind.RECEIPT, "purchase", 10),
    (MovementKind.DISPENSE, "prescription", -3),
    (MovementKind.COUNT_ADJUSTMENT, "count_difference", -2),
    (MovementKind.COUNT_ADJUSTMENT, "count_difference", 2),
    (MovementKind.RETURN, "patient_return", 1),
    (MovementKind.RETURN, "return_to_supplier", -10),
])
def test_movements_with_a_fitting_reason_and_sign_are_accepted(kind, reason, quantity):
    check_movement(kind, reason, quantity)


@pytest.mark.parametrize(("kind", "reason", "quantity", "message"), [
    (MovementKind.RECEIPT, "purchase", -10, "sign"),
    (MovementKind.DISPENSE, "prescription", 3, "sign"),
    (MovementKind.EXPIRY_WRITE_OFF, "because", -1, "not valid"),
    (MovementKind.RETURN, "return_to_supplier", 10, "sign"),
    (MovementKind.COUNT_ADJUSTMENT, "count_difference", 0, "zero"),
])
def test_movements_with_a_wrong_reason_or_sign_are_refused(kind, reason, quantity, message):
    with pytest.raises(ValidationFailed, match=message):
        check_movement(kind, reason, quantity)
