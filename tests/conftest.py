"""Test set-up: one migrated database per run, one rolled-back transaction per test.

Every test runs on SQLite by default and on PostgreSQL when ``DATABASE_URL`` names one. A test run
pointed at PostgreSQL fails, never skips, when the database cannot be reached.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Connection, text
from sqlalchemy.orm import sessionmaker

from pharmacy import create_app
from pharmacy.clock import FixedClock
from pharmacy.db import Base, Database
from pharmacy.migrate import rebuild, upgrade
from tests.factories import World, build_world

POSTGRES = (os.environ.get("DATABASE_URL") or "").startswith("postgres")
# Plan runs execute in the request's process at once (the background thread is tested on its own), and
# the optimizer solves in-process: forking test processes is slow and gains nothing on tiny plans.
TEST_CONFIG = {"PLAN_RUNNER": "inline", "PLAN_WORKERS": 1}


def _url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    return "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _url(tmp_path_factory)


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp("instance")
    application = create_app({"DATABASE_URL": database_url, "TESTING": True, "SECRET_KEY": "test", **TEST_CONFIG})
    application.instance_path = str(instance)
    database: Database = application.extensions["pharmacy_db"]
    try:
        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:  # a configured database that does not answer is a failure, not a skip
        pytest.fail(f"cannot reach the test database {database_url}: {error}", pytrace=False)
    rebuild(database.engine)  # every run proves the migrations
    yield application
    database.dispose()


@pytest.fixture
def connection(app: Flask) -> Iterator[Connection]:
    """One outer transaction per test; services' commits become savepoints inside it."""
    database: Database = app.extensions["pharmacy_db"]
    original = database.session_factory
    conn = database.engine.connect()
    outer = conn.begin()
    database.session_factory = sessionmaker(bind=conn, expire_on_commit=False,
                                            join_transaction_mode="create_savepoint")
    try:
        yield conn
    finally:
        database.session_factory = original
        outer.rollback()
        conn.close()


@pytest.fixture
def session_factory(app: Flask, connection: Connection) -> Any:
    return app.extensions["pharmacy_db"].session_factory


@pytest.fixture
def world(app: Flask, connection: Connection) -> World:
    """Two consortia with a small tree each and a key per role (see tests/factories.py)."""
    return build_world(app.extensions["pharmacy_db"].session_factory)


@pytest.fixture
def client(app: Flask, connection: Connection) -> Any:
    return app.test_client()


@pytest.fixture
def committed_app(tmp_path: Path, database_url: str, app: Flask) -> Iterator[Flask]:
    """An app whose transactions really commit (for races and jobs); emptied afterwards."""
    url = database_url if POSTGRES else "sqlite:///" + str(tmp_path / "committed.sqlite3")
    application = create_app({"DATABASE_URL": url, "TESTING": True, "SECRET_KEY": "test", **TEST_CONFIG})
    application.instance_path = str(tmp_path)
    database: Database = application.extensions["pharmacy_db"]
    if not POSTGRES:
        upgrade(database.engine)
    try:
        yield application
    finally:
        if POSTGRES:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            with database.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        database.dispose()


NOON_IN_HANGZHOU = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


@pytest.fixture
def clock(app: Flask) -> Iterator[FixedClock]:
    """A clock standing at noon on 2026-11-23 in the consortium's time zone, for this test's requests."""
    fixed = FixedClock(NOON_IN_HANGZHOU)
    app.config["CLOCK"] = fixed
    try:
        yield fixed
    finally:
        app.config.pop("CLOCK", None)
