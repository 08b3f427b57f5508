"""Rows a transaction only adds, and never reads back before it ends (the audit trail, the outbox of prescription
events): written when it commits, all in one statement on PostgreSQL.

A request that changes a prescription writes the change, its audit entry and its event: three round trips where
the last two carry nothing the request waits for. Kept on the session and written by its commit (after the last
flush, so that whatever they name exists), the rows of all their tables go as one ``INSERT`` with the others in
``WITH`` clauses on PostgreSQL, and as one ``INSERT`` per table elsewhere (SQLite has no writable ``WITH``). They
commit or roll back with the transaction, as they did when written at once; rows added inside a savepoint that
rolls back are dropped with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table, event, insert
from sqlalchemy.orm import Session, SessionTransaction

ROWS = "rows_at_commit"
MARKS = "rows_at_commit_marks"  # savepoint -> how many rows were added before it began
# At most this many rows go in one statement of several tables; a bulk change's thousands of audit entries are
# inserted table by table in the driver's batches (PostgreSQL takes at most 65,535 parameters a statement).
PACKED_ROWS = 200


def add_row(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Write ``row`` into ``table`` when the session's transaction commits."""
    if not session.in_transaction():
        session.begin()  # the row belongs to this transaction: its rollback, not a later commit, decides it
    session.info.setdefault(ROWS, []).append((table, row))


def _write(connection: Connection, rows: list[tuple[Table, dict[str, Any]]]) -> None:
    groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, row in rows:
        groups.setdefault((table, tuple(row)), []).append(row)
    if connection.dialect.name == "postgresql" and len(groups) > 1 and len(rows) <= PACKED_ROWS:
        statements = [insert(table).values(group) for (table, _), group in groups.items()]
        # Each INSERT in WITH runs once whether the statement names it or not, under the same snapshot: rows of
        # tables that do not refer to one another.
        connection.execute(statements[-1].add_cte(
            *(statement.cte(f"rows_{n}") for n, statement in enumerate(statements[:-1]))))
        return
    for (table, _), group in groups.items():
        connection.execute(insert(table), group)


@event.listens_for(Session, "before_commit")
def _write_rows(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint's release: its rows wait for the transaction's commit
    session.flush()  # what the rows name is written first, and the flush adds the audit entries of its changes
    rows = session.info.pop(ROWS, None)
    if rows:
        _write(session.connection(), rows)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        session.info.setdefault(MARKS, {})[transaction] = len(session.info.get(ROWS, ()))


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.nested:
        mark = session.info.get(MARKS, {}).pop(previous_transaction, None)
        if mark is not None and ROWS in session.info:
            del session.info[ROWS][mark:]
    else:
        session.info.pop(ROWS, None)
        session.info.pop(MARKS, None)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed (its rows written) or rolled back: nothing carries over
        session.info.pop(ROWS, None)
        session.info.pop(MARKS, None)
