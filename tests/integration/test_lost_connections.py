"""A pooled connection lost while it lay unused (the server restarted, a network fault cut it) never shows as an
error: a connection unused for a while is pinged before it is used and replaced if it is gone, and one taken
soon after its last use that turns out lost fails its request's first statement, which is then run again on a new
connection. Real connections cut with ``pg_terminate_backend``, on PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, text

from pharmacy import db
from pharmacy.accounts.services import create_api_key, create_user
from pharmacy.consortium.services import create_consortium
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_pages import PASSWORD, sign_in
from tests.conftest import POSTGRES

pytestmark = pytest.mark.skipif(not POSTGRES, reason="connections are cut on the PostgreSQL server")


def _admin_key(app: Flask) -> str:
    """An API key of a new consortium's admin, whose officer ``wang`` can sign in to the pages."""
    factory = app.extensions["pharmacy_db"].session_factory
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), "LOST", "lost connections")
    uow = UnitOfWork(factory, system_for(consortium.id))
    create_user(uow, consortium.id, "wang", PASSWORD, Role.PROCUREMENT)
    _, plain = create_api_key(uow, consortium.id, "admin", Role.ADMIN)
    return f"Bearer {plain}"


def _cut_pooled_connections(engine: Engine) -> int:
    """End, on the server, the sessions of every connection lying in ``engine``'s pool; how many there were."""
    held = [engine.connect() for _ in range(engine.pool.checkedin())]  # type: ignore[attr-defined]
    pids = [conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in held]
    for conn in held:
        conn.close()  # back to the pool, alive for now
    elsewhere = create_engine(engine.url)
    try:
        with elsewhere.begin() as conn:
            for pid in pids:
                assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        elsewhere.dispose()
    return len(pids)


def _requests_after_the_cut(app: Flask, key: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    client, officer = app.test_client(), app.test_client()
    sign_in(officer, "wang")
    assert client.get("/api/sites", headers={"Authorization": key}).status_code == 200
    assert officer.get("/dashboard").status_code == 200
    assert _cut_pooled_connections(app.extensions["pharmacy_db"].engine) > 0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pharmacy.retries"):
        assert officer.get("/dashboard").status_code == 200  # the page's reading of who is signed in
        for _ in range(3):
            response = client.get("/api/sites", headers={"Authorization": key})
            assert response.status_code == 200, response.get_json()
        created = client.post("/api/api-keys", headers={"Authorization": key},
                              json={"name": "after the cut", "role": "procurement"})
        assert created.status_code == 201, created.get_json()
    return [record.getMessage() for record in caplog.records]


def test_a_connection_lost_soon_after_its_last_use_fails_a_statement_and_the_request_runs_again(
        committed_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    said = _requests_after_the_cut(committed_app, _admin_key(committed_app), caplog)
    assert any("transient database failure" in message for message in said)  # it was met, and run again


def test_a_connection_unused_for_a_while_is_pinged_and_replaced_before_any_statement(
        committed_app: Flask, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _admin_key(committed_app)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection taken from the pool has lain unused
    said = _requests_after_the_cut(committed_app, key, caplog)
    assert not any("transient database failure" in message for message in said)  # no request met the lost one
