"""Procurement rules that need no database."""

from datetime import date

import pytest

from pharmacy.procurement.domain import installments_due


@pytest.mark.parametrize(("next_due", "interval", "remaining", "until", "expected"), [
    (date(2026, 11, 25), 28, 2, date(2026, 12, 23), 2),   # 25 Nov and 23 Dec, the horizon's last day
    (date(2026, 11, 25), 28, 2, date(2026, 12, 22), 1),   # the second falls a day after the horizon
    (date(2026, 11, 25), 7, 2, date(2026, 12, 23), 2),    # more would fall due, but only two issues remain
    (date(2026, 11, 25), 7, 10, date(2026, 12, 23), 5),   # 25 Nov, 2, 9, 16 and 23 Dec
    (date(2026, 12, 24), 7, 3, date(2026, 12, 23), 0),    # the next issue is beyond the horizon
    (date(2026, 11, 25), 0, 3, date(2026, 12, 23), 1),    # no interval: only the next issue is dated
    (None, 28, 2, date(2026, 12, 23), 0),                 # nothing scheduled
    (date(2026, 11, 25), 28, 0, date(2026, 12, 23), 0),   # every issue given already
])
def test_installments_due_within_the_horizon(next_due: date | None, interval: int, remaining: int, until: date,
                                             expected: int) -> None:
    assert installments_due(next_due, interval, remaining, until) == expected
