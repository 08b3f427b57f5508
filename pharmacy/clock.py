"""The service's notion of now and today, replaceable in tests and jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

CONSORTIUM_TIMEZONE = ZoneInfo("Asia/Shanghai")


class Clock:
    """Real time: ``now`` in UTC, ``today`` in the consortium's local time zone."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(CONSORTIUM_TIMEZONE).date()


@dataclass
class FixedClock(Clock):
    """A clock that stands still until moved (tests, replays)."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at = self.at + timedelta(**delta)


system_clock = Clock()
