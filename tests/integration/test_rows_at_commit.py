"""Rows a transaction only adds are written by its commit (in one statement on PostgreSQL), and not at all when it,
or the savepoint they were added in, rolls back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, func, select

from pharmacy.audit import _AUDIT_TABLE, AuditEntry
from pharmacy.db import utcnow
from pharmacy.rows_at_commit import PACKED_ROWS, add_row
from tests.conftest import POSTGRES


def _entry(action: str, **more: Any) -> dict[str, Any]:
    return {"consortium_id": None, "at": utcnow(), "actor": "system:test", "actor_role": "system",
            "action": action, "object_type": "Test", "object_id": "1", "summary": "", **more}


def _written(session_factory: Any, action: str) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action))


def test_rows_are_written_by_the_commit_in_one_statement_on_postgresql(session_factory: Any,
                                                                       connection: Any) -> None:
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "INSERT" in statement:
            sent.append(statement)

    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-commit"))
        add_row(session, _AUDIT_TABLE, _entry("t-commit", site_id=None))  # another set of columns: another INSERT
        add_row(session, _AUDIT_TABLE, _entry("t-commit"))
        assert _written(session_factory, "t-commit") == 0  # nothing before the commit
        event.listen(connection, "before_cursor_execute", count)
        try:
            session.commit()
        finally:
            event.remove(connection, "before_cursor_execute", count)
    assert _written(session_factory, "t-commit") == 3
    assert len(sent) == (1 if POSTGRES else 2)


def test_rows_of_a_transaction_rolled_back_are_never_written(session_factory: Any) -> None:
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-rollback"))
        session.rollback()
        session.commit()
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-rollback"))
        # closed without a commit
    with session_factory() as session:
        session.commit()
    assert _written(session_factory, "t-rollback") == 0


def test_rows_added_in_a_savepoint_rolled_back_are_dropped_with_it(session_factory: Any) -> None:
    with session_factory() as session:
        add_row(session, _AUDIT_TABLE, _entry("t-kept"))
        savepoint = session.begin_nested()
        add_row(session, _AUDIT_TABLE, _entry("t-dropped"))
        savepoint.rollback()
        kept = session.begin_nested()
        add_row(session, _AUDIT_TABLE, _entry("t-kept"))
        kept.commit()
        session.commit()
    assert (_written(session_factory, "t-kept"), _written(session_factory, "t-dropped")) == (2, 0)


def test_a_bulk_of_rows_is_written_whole(session_factory: Any) -> None:
    with session_factory() as session:
        for n in range(PACKED_ROWS * 3):
            add_row(session, _AUDIT_TABLE, _entry("t-bulk") if n % 2 else _entry("t-bulk", site_id=n))
        session.commit()
    assert _written(session_factory, "t-bulk") == PACKED_ROWS * 3
