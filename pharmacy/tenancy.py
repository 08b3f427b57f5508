"""Consortium isolation, enforced once for every query and every write.

Every table that belongs to a consortium carries ``consortium_id`` through :class:`ConsortiumOwned`.
A session working for a principal filters every ORM ``SELECT`` to that principal's consortium
(``with_loader_criteria``), and refuses to flush an object that belongs to another consortium.
So a principal never reads or changes another consortium's data, whatever the route or service does.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ForeignKey, event
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column, with_loader_criteria

from pharmacy.errors import Message, NotFound
from pharmacy.principal import Principal
from pharmacy.rows_at_commit import before_written


class ConsortiumOwned:
    """Mixin for rows that belong to one consortium."""

    consortium_id: Mapped[int] = mapped_column(ForeignKey("consortia.id"), index=True)


def principal_of(session: Session) -> Principal | None:
    return session.info.get("principal")


def scoped_consortium_id(session: Session) -> int | None:
    principal = principal_of(session)
    return principal.consortium_id if principal else None


@event.listens_for(Session, "do_orm_execute")
def _filter_to_consortium(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_consortia"):
        return
    consortium_id = scoped_consortium_id(state.session)
    if consortium_id is None:
        return
    state.statement = state.statement.options(*_criteria_of(consortium_id))


@functools.lru_cache(maxsize=1024)
def _criteria_of(consortium_id: int) -> tuple[Any, ...]:
    """The options that confine a statement to one consortium: made once a consortium, not for every statement."""
    from pharmacy.consortium.models import Consortium  # the root table has no consortium_id

    return (with_loader_criteria(ConsortiumOwned, lambda cls: cls.consortium_id == consortium_id,
                                 include_aliases=True),
            with_loader_criteria(Consortium, lambda cls: cls.id == consortium_id, include_aliases=True))


@event.listens_for(Session, "before_flush")
def _refuse_foreign_writes(session: Session, flush_context: Any, instances: Any) -> None:
    _refuse_foreign(session, list(session.new) + list(session.dirty))


@before_written
def _refuse_foreign(session: Session, objects: Sequence[Any]) -> None:
    consortium_id = scoped_consortium_id(session)
    if consortium_id is None:
        return
    for obj in objects:
        if isinstance(obj, ConsortiumOwned):
            if obj.consortium_id is None:
                obj.consortium_id = consortium_id
            elif obj.consortium_id != consortium_id:
                # Said as "not found": another consortium's objects do not exist for this principal.
                raise NotFound(Message("%(what)s not found", what=Message.word(type(obj).__name__)))
