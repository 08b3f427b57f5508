"""The append-only audit trail: who changed what, when.

Every flush that creates, changes or deletes an audited object (a model with ``__audited__ = True``)
writes one entry per object in the same transaction, so a change and its record commit or roll back
together. Services add entries for domain actions (``record``). There is no update or delete path:
the API offers none and database triggers refuse both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import ForeignKey, Integer, String, Table, Text, event, inspect, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from pharmacy.db import Base, UTCDateTime, column_changes, utcnow
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.principal import Principal
from pharmacy.rows_at_commit import add_row, before_written

if TYPE_CHECKING:
    from pharmacy.unit_of_work import UnitOfWork


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not ConsortiumOwned: the admin's read filters explicitly, and deployment-wide actions have none.
    consortium_id: Mapped[int | None] = mapped_column(ForeignKey("consortia.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(160))
    actor_role: Mapped[str] = mapped_column(String(20))
    site_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40), index=True)
    object_type: Mapped[str] = mapped_column(String(60), index=True)
    object_id: Mapped[str] = mapped_column(String(60), index=True)
    summary: Mapped[str] = mapped_column(Text, default="")


_AUDIT_TABLE = cast(Table, AuditEntry.__table__)
_HIDDEN_SUFFIXES = ("_hash", "password")
_SUMMARY_LIMIT = 500

APPEND_ONLY_TABLES = ("audit_entries",)


def record(session: Session, action: str, object_type: str, object_id: Any, summary: str,
           consortium_id: int | None = None) -> None:
    """Add an entry for a domain action (dispense, approve, ...) to the current transaction (written when it
    commits, see :mod:`pharmacy.rows_at_commit`)."""
    principal: Principal | None = session.info.get("principal")
    add_row(session, _AUDIT_TABLE, _entry(principal, action, object_type, object_id, summary, consortium_id))


def _entry(principal: Principal | None, action: str, object_type: str, object_id: Any, summary: str,
           consortium_id: int | None) -> dict[str, Any]:
    return {
        "consortium_id": consortium_id if consortium_id is not None else (
            principal.consortium_id if principal else None),
        "at": utcnow(),
        "actor": principal.label if principal else "system:unknown",
        "actor_role": principal.role.value if principal else "system",
        "site_id": principal.site_id if principal else None,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "summary": summary[:_SUMMARY_LIMIT],
    }


def _visible(key: str) -> bool:
    return not key.endswith(_HIDDEN_SUFFIXES) and key not in {"created_at", "updated_at"}


def _private(obj: Any, key: str) -> bool:
    """A column whose value the audit trail names but never shows (a patient's clinical facts: the trail is read
    by administrators, who may not see them)."""
    return key in getattr(obj, "__audit_private__", ())


def _describe_new(obj: Any) -> str:
    mapper = inspect(obj).mapper
    parts = []
    for attr in mapper.column_attrs:
        if attr.key in {"id", "consortium_id"} or not _visible(attr.key):
            continue
        value = getattr(obj, attr.key)
        if value is not None and value != "":
            parts.append(f"{attr.key} set" if _private(obj, attr.key) else f"{attr.key}={value}")
    return "created " + ", ".join(parts)


def _describe_change(obj: Any) -> str | None:
    changes = column_changes(obj)
    parts = []
    for attr, history in changes:
        if not _visible(attr.key):
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == after:
            continue
        parts.append(f"{attr.key} changed" if _private(obj, attr.key) else f"{attr.key}: {before} -> {after}")
    parts.extend(f"{attr.key} changed" for attr, _ in changes if attr.key.endswith(_HIDDEN_SUFFIXES))
    return "changed " + "; ".join(parts) if parts else None


def _consortium_of(obj: Any) -> int | None:
    if type(obj).__tablename__ == "consortia":
        return int(obj.id)
    return getattr(obj, "consortium_id", None)


def _update_entries(principal: Principal | None, changed: Iterable[Any]) -> list[dict[str, Any]]:
    rows = []
    for obj in changed:
        if getattr(obj, "__audited__", False):
            summary = _describe_change(obj)
            if summary:
                rows.append(_entry(principal, "update", type(obj).__name__, obj.id, summary, _consortium_of(obj)))
    return rows


@before_written
def _record_last_changes(session: Session, changed: Sequence[Any]) -> None:
    """The entries of the changes a commit writes itself (see :mod:`pharmacy.rows_at_commit`)."""
    for row in _update_entries(session.info.get("principal"), changed):
        add_row(session, _AUDIT_TABLE, row)


@event.listens_for(Session, "after_flush")
def _record_changes(session: Session, flush_context: Any) -> None:
    principal: Principal | None = session.info.get("principal")
    rows = []
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            rows.append(_entry(principal, "create", type(obj).__name__, obj.id, _describe_new(obj),
                               _consortium_of(obj)))
    rows += _update_entries(principal, session.dirty)  # an object whose columns are as loaded says nothing
    for obj in session.deleted:
        if getattr(obj, "__audited__", False):
            rows.append(_entry(principal, "delete", type(obj).__name__, obj.id, "deleted",
                               _consortium_of(obj)))
    for row in rows:  # written with the transaction's other added rows when it commits: no ORM state, no flush
        add_row(session, _AUDIT_TABLE, row)


def append_only_trigger_sql(dialect: str, table: str) -> list[str]:
    """DDL that makes ``table`` refuse UPDATE and DELETE, for the migrations."""
    if dialect == "postgresql":
        return [
            """CREATE OR REPLACE FUNCTION refuse_change() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END; $$ LANGUAGE plpgsql""",
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
        f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
    ]


def read_audit_trail(uow: UnitOfWork, page: PageRequest, *, object_type: str | None = None,
                     object_id: str | None = None, actor: str | None = None, action: str | None = None,
                     since: datetime | None = None, until: datetime | None = None) -> Page[AuditEntry]:
    """The consortium's audit entries, newest first, filtered."""
    with uow:
        stmt = select(AuditEntry).where(AuditEntry.consortium_id == uow.principal.consortium_id)
        for column, value in ((AuditEntry.object_type, object_type), (AuditEntry.object_id, object_id),
                              (AuditEntry.actor, actor), (AuditEntry.action, action)):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEntry.at < until)
        return fetch_page(uow.session, stmt.order_by(AuditEntry.id.desc()), page)
