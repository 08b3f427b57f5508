"""Database engine and session factory, one per application (nothing is created at import)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, inspect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import ColumnProperty, DeclarativeBase, sessionmaker
from sqlalchemy.orm.attributes import History
from sqlalchemy.types import TypeDecorator

from pharmacy import clock

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always returned timezone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Now, for a row stamped by a column default: the clock of the unit of work writing it."""
    return clock.now()


def column_changes(obj: Any) -> list[tuple[ColumnProperty[Any], History]]:
    """The columns of a loaded object changed since it was loaded (or last flushed), each with its history. Only
    the attributes the session marked as set are asked for theirs: a history is an object made anew for every
    column asked, and a prescription has forty columns, of which an action changes two or three."""
    state = inspect(obj)
    untouched = state.unmodified
    changes = []
    for attr in state.mapper.column_attrs:
        if attr.key not in untouched and (history := state.attrs[attr.key].history).has_changes():
            changes.append((attr, history))
    return changes


def relationships_changed(obj: Any) -> bool:
    """Whether a relationship of a loaded object was set since it was loaded (or last flushed)."""
    state = inspect(obj)
    untouched = state.unmodified
    return any(rel.key not in untouched and state.attrs[rel.key].history.has_changes()
               for rel in state.mapper.relationships)


def contains(text: str) -> str:
    """A LIKE pattern that finds ``text`` anywhere, its own wildcards escaped (use it with ``escape="\\"``)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def make_engine(url: str, echo: bool = False) -> Engine:
    """Create the engine; on SQLite, make transactions real so row changes serialise safely."""
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        _make_sqlite_transactional(engine)
        return engine
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20)
    _ping_when_idle(engine)
    return engine


# A pooled connection is pinged before it is used only once it has lain unused this long. A busy service's
# connections were in use a moment ago, and a ping each time one is taken (pool_pre_ping) would be one more round
# trip in every request. One lost since it was last used (the server restarted) fails its request's first
# statement instead; nothing of the request was written, and it is run again on a new one (pharmacy.retries).
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "idle_since"


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError(f"a pooled connection is lost: {error}") from error  # the pool connects anew


def _make_sqlite_transactional(engine: Engine) -> None:
    # pysqlite opens transactions lazily and never around reads, which breaks SAVEPOINT and lets two
    # writers read the same stock; we take over BEGIN ourselves (the SQLAlchemy-documented recipe),
    # and BEGIN IMMEDIATE makes writers queue instead of failing on lock upgrade.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine and session factory of one application."""

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._on_dispose: list[Callable[[], None]] = []

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def on_dispose(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the database is let go (to stop what works beside the pool)."""
        self._on_dispose.append(callback)

    def dispose(self) -> None:
        for callback in self._on_dispose:
            callback()
        self.engine.dispose()
