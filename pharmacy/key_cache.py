"""API keys' principals kept between requests, for as long as the database can say at once that a key changed.

Every API request names its key, and reading the key is a round trip and an ORM load in each of them. A
process keeps the principals of the keys it has seen, but only while it listens on PostgreSQL's
``api_keys_changed`` channel: a trigger on ``api_keys`` (migration 0016) notifies it when any key is changed or
deleted, by the API, a page or a hand in psql, and the process then forgets every key it holds. So a revoked key
is refused by the next request that follows the revocation's commit, as when each request read it.

Nothing is kept while the channel is not heard (SQLite, a listener that lost its connection, a process just
forked): every request then reads its key. An entry also ages out after ``PRINCIPAL_CACHE_SECONDS``, a bound on
what a notice lost in some way no one foresaw could cost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from pharmacy.principal import Principal

log = logging.getLogger(__name__)

CHANNEL = "api_keys_changed"
MOST_KEYS = 10_000  # a province's systems and integrations; past it the oldest are read again
RECONNECT_SECONDS = 2.0
WAKE_SECONDS = 1.0  # how often the listener looks up from the channel to see whether it is to stop

_CACHES: weakref.WeakSet[KeyCache] = weakref.WeakSet()


class KeyCache:
    """The principals of the API keys one process has seen, by key hash, while the channel is heard."""

    def __init__(self, engine: Engine, seconds: float) -> None:
        self._engine = engine
        self._seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[Principal, float]] = {}
        self._generation = 0  # moves on at every notice and every (re)connection: what was read before is stale
        self._heard = False
        self._pid: int | None = None
        self._stop = threading.Event()
        self._enabled = seconds > 0 and engine.dialect.name == "postgresql"
        _CACHES.add(self)

    def generation(self) -> int | None:
        """The mark to read a key under, or None when nothing may be kept (then read it and do not :meth:`keep`)."""
        if not self._enabled:
            return None
        self._listen()
        with self._lock:
            return self._generation if self._heard else None

    def principal(self, key_hash: str) -> Principal | None:
        """The principal of a key seen lately and unchanged since, or None (read it)."""
        if not self._enabled:
            return None
        with self._lock:
            if not self._heard:
                return None
            kept = self._kept.get(key_hash)
            if kept is None or kept[1] < time.monotonic():
                return None
            return kept[0]

    def keep(self, key_hash: str, principal: Principal, generation: int) -> None:
        """Keep what was read under ``generation``, unless a key changed (or the channel was lost) meanwhile."""
        with self._lock:
            if not self._heard or generation != self._generation:
                return
            if len(self._kept) >= MOST_KEYS:
                self._kept.pop(next(iter(self._kept)))
            self._kept[key_hash] = (principal, time.monotonic() + self._seconds)

    def forget(self) -> None:
        """Forget every key: one of them changed."""
        with self._lock:
            self._generation += 1
            self._kept.clear()

    def close(self) -> None:
        self._stop.set()
        self.forget()

    # The listener -------------------------------------------------------------------------------------------
    def _listen(self) -> None:
        """Start this process's listener, once (again in a forked child: a thread does not survive a fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._heard = False
            self._kept.clear()
        threading.Thread(target=self._run, name="api-key-listener", daemon=True).start()

    def _run(self) -> None:
        pid = self._pid
        while not self._stop.is_set() and pid == os.getpid():
            connection = None
            try:
                connection = self._engine.raw_connection()
                listener: Any = connection.driver_connection
                connection.detach()  # its own connection for good, not one of the pool's
                listener.autocommit = True
                listener.execute(f"LISTEN {CHANNEL}")
                with self._lock:
                    self._generation += 1
                    self._kept.clear()
                    self._heard = True
                while not self._stop.is_set():
                    for _ in listener.notifies(timeout=WAKE_SECONDS):
                        self.forget()
            except Exception as error:  # the channel is lost: read every key until it is heard again
                log.warning("no longer hearing of API key changes (%s); reading keys on every request", error)
            finally:
                with self._lock:
                    self._heard = False
                    self._generation += 1
                    self._kept.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):  # already broken: nothing to give back
                        connection.close()
            self._stop.wait(RECONNECT_SECONDS)


def forget_all() -> None:
    """Forget every key in every cache of this process (a key changed in a transaction of this process: its own
    requests must not wait for the notice, which comes only once the change commits)."""
    for cache in list(_CACHES):
        cache.forget()


@event.listens_for(Session, "after_flush")
def _forget_changed_keys(session: Session, flush_context: Any) -> None:
    from pharmacy.accounts.models import ApiKey

    if any(isinstance(obj, ApiKey) for obj in (*session.dirty, *session.deleted)):
        forget_all()


def trigger_sql() -> list[str]:
    """The PostgreSQL trigger that notifies the channel of any change to a key (for the migration)."""
    return [
        f"""CREATE OR REPLACE FUNCTION notify_api_keys_changed() RETURNS trigger AS $$
        BEGIN PERFORM pg_notify('{CHANNEL}', ''); RETURN NULL; END; $$ LANGUAGE plpgsql""",
        "CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE OR TRUNCATE ON api_keys "
        "FOR EACH STATEMENT EXECUTE FUNCTION notify_api_keys_changed()",
    ]
