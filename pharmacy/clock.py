"""The service's notion of now and today, replaceable in tests and jobs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
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

# The clock of the unit of work running here: rows stamped by a column default (created_at, an audit entry's
# at) take the service's time, as the dates a service sets itself do, not the machine's.
_running: ContextVar[Clock] = ContextVar("clock", default=system_clock)


def now() -> datetime:
    """Now by the clock of the work running in this context (the real clock outside any)."""
    return _running.get().now()


@contextmanager
def running_on(clock: Clock) -> Iterator[None]:
    """Run a block on ``clock``: :func:`now` reads it until the block ends."""
    token = _running.set(clock)
    try:
        yield
    finally:
        _running.reset(token)


def local(at: datetime) -> datetime:
    """A moment as the consortium's clocks show it (Beijing time)."""
    return at.astimezone(CONSORTIUM_TIMEZONE)


def local_text(at: datetime) -> str:
    """A moment in Beijing time, to the minute, as pages and messages say it: ``2026-11-23 12:05``."""
    return local(at).strftime("%Y-%m-%d %H:%M")
