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


def local(at: datetime) -> datetime:
    """A moment as the consortium's clocks show it (Beijing time)."""
    return at.astimezone(CONSORTIUM_TIMEZONE)


def local_text(at: datetime) -> str:
    """A moment in Beijing time, to the minute, as pages and messages say it: ``2026-11-23 12:05``."""
    return local(at).strftime("%Y-%m-%d %H:%M")
