"""A process answers the keys it has read from memory only while PostgreSQL tells it of every change to a key: a key
revoked anywhere (another process, psql) is refused once the change has committed, and nothing is kept while the
notices are not heard. Real commits, on PostgreSQL (SQLite has no channel and reads every key)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, text

from pharmacy.accounts.services import create_api_key
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.key_cache import KeyCache
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.conftest import POSTGRES
from tests.factories import site_data

on_postgresql = pytest.mark.skipif(not POSTGRES, reason="the channel of key changes is PostgreSQL's")

HEARD_WITHIN = 5.0  # seconds for a new listener to connect


class KeyReads:
    def __init__(self) -> None:
        self.count = 0


@pytest.fixture
def key_reads(committed_app: Flask) -> Iterator[KeyReads]:
    engine = committed_app.extensions["pharmacy_db"].engine
    reads = KeyReads()

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM api_keys" in statement:
            reads.count += 1

    event.listen(engine, "before_cursor_execute", count)
    yield reads
    event.remove(engine, "before_cursor_execute", count)


def _keys(app: Flask) -> tuple[dict[str, str], dict[str, int]]:
    factory = app.extensions["pharmacy_db"].session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "KEYS", "keys")
    uow = UnitOfWork(factory, system_for(consortium.id))
    lead = create_site(uow, consortium.id, site_data("Y-LEAD", "lead_hospital")).id
    admin, admin_plain = create_api_key(uow, consortium.id, "admin", Role.ADMIN)
    his, his_plain = create_api_key(uow, consortium.id, "his", Role.PRESCRIBER, lead)
    return ({"admin": f"Bearer {admin_plain}", "his": f"Bearer {his_plain}"}, {"admin": admin.id, "his": his.id})


def _heard(app: Flask) -> None:
    """Wait for the process's listener to hear the channel (it starts with the first request that names a key)."""
    cache: KeyCache = app.extensions["pharmacy_keys"]
    cache.generation()
    deadline = time.monotonic() + HEARD_WITHIN
    while cache.generation() is None:
        assert time.monotonic() < deadline, "the listener never heard the channel"
        time.sleep(0.02)


def _refused_within(client: Any, key: str, seconds: float) -> float:
    """Seconds until a request with ``key`` is refused (fails past ``seconds``)."""
    started = time.monotonic()
    while client.get("/api/sites", headers={"Authorization": key}).status_code != 401:
        assert time.monotonic() - started < seconds, "a revoked key still works"
        time.sleep(0.001)
    return time.monotonic() - started


@on_postgresql
def test_a_key_once_read_is_not_read_again_while_unchanged(committed_app: Flask, key_reads: KeyReads) -> None:
    keys, _ = _keys(committed_app)
    client = committed_app.test_client()
    _heard(committed_app)
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    read = key_reads.count
    for _ in range(5):
        assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    assert key_reads.count == read


@on_postgresql
def test_a_key_revoked_through_the_api_is_refused_by_the_next_request(committed_app: Flask) -> None:
    keys, ids = _keys(committed_app)
    client = committed_app.test_client()
    _heard(committed_app)
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    revoked = client.post(f"/api/api-keys/{ids['his']}/revoke", headers={"Authorization": keys["admin"]})
    assert revoked.status_code == 200
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 401


@on_postgresql
def test_a_key_revoked_by_another_process_is_refused_once_its_change_commits(committed_app: Flask) -> None:
    keys, ids = _keys(committed_app)
    client = committed_app.test_client()
    _heard(committed_app)
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    elsewhere = create_engine(committed_app.config["DATABASE_URL"])  # not the app's: as psql or another worker
    try:
        with elsewhere.begin() as conn:
            conn.execute(text("UPDATE api_keys SET active = false WHERE id = :id"), {"id": ids["his"]})
    finally:
        elsewhere.dispose()
    # The notice is on its way once the commit returns; a millisecond or two on one host.
    assert _refused_within(client, keys["his"], 1.0) < 1.0


@on_postgresql
def test_nothing_is_kept_while_the_channel_is_not_heard(committed_app: Flask, key_reads: KeyReads) -> None:
    keys, _ = _keys(committed_app)
    client = committed_app.test_client()
    _heard(committed_app)
    engine = committed_app.extensions["pharmacy_db"].engine
    with engine.begin() as conn:  # the listener's connection is cut, as by a restart or a network fault
        cut = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE query LIKE 'LISTEN api_keys_changed%' AND pid <> pg_backend_pid()")).all()
    assert cut, "no listener was connected"
    cache: KeyCache = committed_app.extensions["pharmacy_keys"]
    deadline = time.monotonic() + HEARD_WITHIN
    while cache.generation() is not None and time.monotonic() < deadline:
        time.sleep(0.01)  # the listener learns of the cut
    assert cache.generation() is None, "the listener did not notice that its connection was cut"
    read = key_reads.count
    for _ in range(3):  # not heard: every request reads its key
        assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    assert key_reads.count >= read + 3
    _heard(committed_app)  # and it listens again by itself
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    read = key_reads.count
    assert client.get("/api/sites", headers={"Authorization": keys["his"]}).status_code == 200
    assert key_reads.count == read


def test_on_sqlite_every_request_reads_its_key(tmp_path: Any) -> None:
    engine = create_engine("sqlite:///" + str(tmp_path / "k.sqlite3"))
    cache = KeyCache(engine, 60)
    assert cache.generation() is None and cache.principal("anything") is None
