"""What a transaction writes last, written by its commit in one statement on PostgreSQL: the rows it only adds and
never reads back (the audit trail, the outbox of prescription events), and the last changes to rows it loaded.

A request that changes a prescription writes the change, its audit entry and its event: three round trips where
the last two carry nothing the request waits for. Kept on the session and written by its commit (after the last
flush, so that whatever they name exists), the rows of all their tables go as one ``INSERT`` with the others in
``WITH`` clauses on PostgreSQL, and as one ``INSERT`` per table elsewhere (SQLite has no writable ``WITH``). They
commit or roll back with the transaction, as they did when written at once; rows added inside a savepoint that
rolls back are dropped with it.

The changes still unwritten at the commit to rows of a model that says ``__written_at_commit__ = True`` (columns
only: no relationship, no key, no ``onupdate``) go in the same statement, each an ``UPDATE`` of its row by its key,
instead of the flush's own ``UPDATE``: by then no query of the transaction can read them. What a flush's
listeners do with such a change (the audit entry, the tenancy check) is done with them first
(:func:`before_written`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Executable, Table, bindparam, event, insert, inspect, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import UpdateBase

from pharmacy.db import column_changes, relationships_changed

ROWS = "rows_at_commit"
MARKS = "rows_at_commit_marks"  # savepoint -> how many rows were added before it began
# At most this many rows and changes go in one statement. Each row is an INSERT of its own in it: a statement of
# single-row INSERTs is compiled once and then taken from the engine's cache, where a multi-row VALUES is compiled
# anew every time. Past it (a bulk change's thousands of audit entries) the rows are inserted table by table in
# the driver's batches, and the flush writes the changes.
PACKED_ROWS = 20


def add_row(session: Session, table: Table, row: dict[str, Any]) -> None:
    """Write ``row`` into ``table`` when the session's transaction commits."""
    if not session.in_transaction():
        session.begin()  # the row belongs to this transaction: its rollback, not a later commit, decides it
    session.info.setdefault(ROWS, []).append((table, row))


Check = Callable[[Session, Sequence[Any]], None]
_BEFORE_WRITTEN: list[Check] = []


def before_written(check: Check) -> Check:
    """Have ``check`` see the changed objects whose changes the commit writes itself, before it does, as a flush's
    ``before_flush`` and ``after_flush`` listeners see the objects of a flush (it may refuse them, or add rows)."""
    _BEFORE_WRITTEN.append(check)
    return check


def _last_change(obj: Any) -> dict[Any, Any] | None:
    """The columns changed in ``obj`` and their new values, if the commit may write them itself."""
    if not getattr(type(obj), "__written_at_commit__", False):
        return None
    state = inspect(obj)
    mapper = state.mapper
    if state.key is None or mapper.version_id_col is not None or len(mapper.tables) != 1:
        return None
    if relationships_changed(obj):
        return None  # the flush sets the keys a relationship implies
    changed: dict[Any, Any] = {}
    for attr, history in column_changes(obj):
        column = attr.columns[0]
        if column.primary_key or column.onupdate is not None or column.server_onupdate is not None:
            return None
        changed[attr.key] = history.added[0] if history.added else None
    return changed or None


# A write of the commit: its table, the columns that find its row (none: the row is inserted), and the values of
# its columns, those included.
Write = tuple[Table, tuple[str, ...], dict[str, Any]]
Shape = tuple[tuple[Table, tuple[str, ...], tuple[str, ...]], ...]


@functools.lru_cache(maxsize=256)
def _statement(shape: Shape) -> Executable:
    """One statement of writes of ``shape`` (each its table, key columns and columns), its values bound by name
    (``w{n}_{column}``, ``w{n}_key_{column}``): built once a shape, so that the engine finds it compiled in its cache
    at once (the statement of a commit is the same few shapes again and again)."""
    statements: list[UpdateBase] = []
    for n, (table, keys, columns) in enumerate(shape):
        values = {table.c[c]: bindparam(f"w{n}_{c}", type_=table.c[c].type) for c in columns if c not in keys}
        if keys:
            statements.append(update(table).values(values).where(
                *(table.c[k] == bindparam(f"w{n}_key_{k}", type_=table.c[k].type) for k in keys)))
        else:
            statements.append(insert(table).values(values))
    # Each statement in WITH runs once whether the last one names it or not, all under the same snapshot: rows
    # that do not refer to one another, and no row changed twice (one UPDATE a row, of all its changes).
    return statements[-1].add_cte(*(statement.cte(f"written_{n}") for n, statement in enumerate(statements[:-1])))


def _execute(connection: Connection, writes: Sequence[Write]) -> None:
    shape = tuple((table, keys, tuple(values)) for table, keys, values in writes)
    connection.execute(_statement(shape), {
        f"w{n}_{'key_' if c in keys else ''}{c}": value
        for n, (_, keys, values) in enumerate(writes) for c, value in values.items()})


def _write(connection: Connection, rows: list[tuple[Table, dict[str, Any]]], updates: Sequence[Write]) -> None:
    if connection.dialect.name == "postgresql" and len(rows) + len(updates) <= PACKED_ROWS:
        _execute(connection, [*updates, *((table, (), row) for table, row in rows)])
        return
    for change in updates:
        _execute(connection, [change])
    groups: dict[tuple[Table, tuple[str, ...]], list[dict[str, Any]]] = {}
    for table, row in rows:
        groups.setdefault((table, tuple(row)), []).append(row)
    for (table, _), group in groups.items():
        connection.execute(insert(table), group)


@event.listens_for(Session, "before_commit")
def _write_last(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint's release: what is added in it waits for the transaction's commit
    taken = [(obj, changed) for obj in list(session.dirty) if (changed := _last_change(obj))]
    if len(taken) > PACKED_ROWS:
        taken = []  # a bulk change: the flush writes it in its batches
    if taken:
        objects = [obj for obj, _ in taken]
        for check in _BEFORE_WRITTEN:
            check(session, objects)
    updates: list[Write] = []
    for obj, changed in taken:
        mapper = inspect(obj).mapper
        keys = {column.key: getattr(obj, mapper.get_property_by_column(column).key) for column in mapper.primary_key}
        updates.append((mapper.local_table, tuple(keys), {
            **keys, **{mapper.get_property(key).columns[0].key: value for key, value in changed.items()}}))
        for key, value in changed.items():
            set_committed_value(obj, key, value)  # written here: the flush leaves it
    session.flush()  # what the rows name is written first, and the flush adds the audit entries of its changes
    rows = session.info.pop(ROWS, None) or []
    if rows or updates:
        _write(session.connection(), rows, updates)


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
