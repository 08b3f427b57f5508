"""The transaction boundary every service uses.

A unit of work opens one session for one principal. Nothing is written unless the service calls
:meth:`UnitOfWork.commit`; leaving the block otherwise rolls back. A service called from inside another
service's unit of work shares it: entering again only counts depth, and only the outermost commit
commits (cosmicpython's unit of work; one transaction boundary, as in Superset's ``transaction``).

Events published on it (:meth:`UnitOfWork.publish`) are handled just before the outermost commit, in the same
transaction (see :mod:`pharmacy.events`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from datetime import date, datetime
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from pharmacy import events
from pharmacy.clock import Clock, running_on, system_clock
from pharmacy.errors import Forbidden, Message, NotFound
from pharmacy.principal import Principal

T = TypeVar("T")


class UnitOfWork:
    """One transaction for one principal; see the module docstring."""

    def __init__(self, session_factory: Callable[[], Session], principal: Principal,
                 clock: Clock | None = None) -> None:
        self._session_factory = session_factory
        self.principal = principal
        self.clock = clock or system_clock
        self._session: Session | None = None
        self._depth = 0
        self._after_commit: list[Callable[[], None]] = []
        self._events: list[events.Event] = []
        self._on_clock: contextlib.ExitStack | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("unit of work used outside its 'with' block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        if self._depth == 0:
            self._session = self._session_factory()
            self._session.info["principal"] = self.principal
            self._on_clock = contextlib.ExitStack()
            self._on_clock.enter_context(running_on(self.clock))
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth == 0 and self._session is not None:
            # close() rolls back whatever was not committed and detaches the objects without expiring
            # them, so a service can return what it loaded for the view to dump.
            self._session.close()
            self._session = None
            self._events.clear()  # what was published and not committed happened to nobody
            if self._on_clock is not None:
                self._on_clock.close()
                self._on_clock = None

    @property
    def open(self) -> bool:
        """Whether a block of this unit of work is open: a service entering it now joins a transaction that its
        caller owns (and only the caller can run again)."""
        return self._depth > 0

    def now(self) -> datetime:
        return self.clock.now()

    def today(self) -> date:
        """Today's date where the consortium is (not UTC: a day ends at local midnight)."""
        return self.clock.today()

    def publish(self, event: events.Event) -> None:
        """Publish a domain event: its handlers run before the outermost commit, in this transaction."""
        self._events.append(event)

    def commit(self, *, flush: bool = True) -> None:
        """Commit, unless a service further out owns the transaction (then only flush; or, with ``flush=False``,
        not even that, for a service whose caller reads nothing back of it by key: the caller's next query, flush
        or commit writes it, and the changes its commit writes itself go in the commit's one statement, see
        :mod:`pharmacy.rows_at_commit`); the events published are handled first (their handlers may publish more)."""
        if self._depth > 1:
            if flush:
                self.session.flush()
            return
        while self._events:
            events.handle(self, self._events.pop(0))
        self.session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def flush(self) -> None:
        self.session.flush()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the outermost transaction has committed (e.g. to wake a worker)."""
        self._after_commit.append(callback)

    # Loading -----------------------------------------------------------------------------------
    def get(self, model: type[T], ident: Any, *, for_update: bool = False, what: str | None = None) -> T:
        """Load one row of the principal's consortium by primary key, or raise NotFound.

        ``for_update`` takes a row lock (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's writers are
        already serialised by ``BEGIN IMMEDIATE``). Without it, a row this transaction has already loaded is answered
        from the session, as a query would answer it too (it never overwrites what the session holds), without the
        round trip; what the session holds was read through the principal's consortium.
        """
        if for_update:
            stmt = select(model).where(model.id == ident)  # type: ignore[attr-defined]
            stmt = stmt.with_for_update().execution_options(populate_existing=True)
            obj = self.session.scalars(stmt).one_or_none()
        else:
            obj = self.session.get(model, ident)
        if obj is None:
            raise NotFound(Message("%(what)s %(id)s not found", what=Message.word(what or model.__name__), id=ident))
        return obj

    def get_all(self, model: type[T], idents: Iterable[Any]) -> dict[Any, T]:
        """The rows of ``idents`` found in the principal's consortium, by id: those this transaction has loaded from
        the session, the others in one query."""
        found: dict[Any, T] = {}
        wanted = []
        for ident in sorted(set(idents)):
            held = self.session.identity_map.get(identity_key(model, ident))
            if held is not None and not inspect(held).expired:
                found[ident] = held
            else:
                wanted.append(ident)
        if wanted:
            found.update((obj.id, obj) for obj in self.session.scalars(  # type: ignore[attr-defined]
                select(model).where(model.id.in_(wanted))))  # type: ignore[attr-defined]
        return found

    def get_acting(self, model: type[T], ident: Any, *, for_update: bool = False,
                   what: str | None = None) -> T:
        """Load a row the principal will act on, and check that it may act for the row's site."""
        obj = self.get(model, ident, for_update=for_update, what=what)
        site_attr = getattr(model, "__acting_site__", "site_id")
        self.ensure_acts_for(getattr(obj, site_attr),
                             what=Message("%(what)s %(id)s", what=Message.word(what or model.__name__), id=ident))
        return obj

    def ensure_acts_for(self, site_id: int | None, what: str = Message("this site")) -> None:
        """A principal bound to one site acts for that site only; this is the one place that says so."""
        if not self.principal.may_act_for_site(site_id):
            raise Forbidden(Message("%(role)s of site %(mine)s may not act for %(what)s (site %(site)s)",
                                    role=Message.word(self.principal.role.value), mine=self.principal.site_id,
                                    what=what, site=site_id))
