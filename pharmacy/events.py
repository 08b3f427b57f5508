"""Domain events: how one part of the domain tells another that something happened, without calling it.

A service publishes an event on its unit of work (:meth:`UnitOfWork.publish`); the unit of work hands every
event to its handlers just before it commits, in the same transaction, so a change and what follows from it
commit or roll back together (cosmicpython's message bus). A handler may publish more events. The packages that
react register their handlers (see :func:`handles`); the package that publishes never imports them, so
prescriptions and procurement no longer call each other: routing asks for stock, procurement moves it, and
procurement's deliveries tell the prescriptions waiting for them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pharmacy.unit_of_work import UnitOfWork


class Event:
    """Something that happened, that another part of the domain may have to act on."""


@dataclass(frozen=True)
class StockRequested(Event):
    """A pharmacy short of a drug for a prescription asks another member, which has it, to send it."""

    consortium_id: int
    prescription_id: int
    from_site_id: int
    to_site_id: int
    drug_id: int
    units: int
    usable_until: date  # the stock must last until the patient's supply ends


@dataclass(frozen=True)
class StockArrived(Event):
    """Stock of these drugs arrived at a site (a delivery or a transfer); ``prescription_id`` is the one it was
    asked for, if any."""

    site_id: int
    drug_ids: tuple[int, ...]
    prescription_id: int | None = None


E = TypeVar("E", bound=Event)
Handler = Callable[["UnitOfWork", Any], None]
_HANDLERS: dict[type[Event], list[Handler]] = defaultdict(list)


def handles(event_type: type[E]) -> Callable[[Callable[[UnitOfWork, E], None]], Callable[[UnitOfWork, E], None]]:
    """Register a handler of ``event_type`` (once, however often its module is imported)."""

    def register(handler: Callable[[UnitOfWork, E], None]) -> Callable[[UnitOfWork, E], None]:
        if handler not in _HANDLERS[event_type]:
            _HANDLERS[event_type].append(handler)
        return handler

    return register


def handle(uow: UnitOfWork, event: Event) -> None:
    """Hand ``event`` to its handlers. An event nobody handles is a wiring mistake, never silently dropped."""
    handlers = _HANDLERS.get(type(event))
    if not handlers:
        raise RuntimeError(f"no handler is registered for {type(event).__name__}: import pharmacy.handlers")
    for handler in handlers:
        handler(uow, event)
