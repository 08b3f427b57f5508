"""Migrations that mend data: what they change, and what they leave."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from pharmacy.db import Database
from pharmacy.migrate import upgrade
from pharmacy.prescriptions.models import WebhookSubscription
from pharmacy.principal import SYSTEM
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import build_world


def test_0009_switches_off_webhooks_bound_to_another_consortiums_site(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "before.sqlite3")
    upgrade(create_engine(url), "0007")
    database = Database(url)
    world = build_world(database.session_factory)
    uow = UnitOfWork(database.session_factory, SYSTEM)
    with uow:
        for consortium, site in ((world.a.consortium_id, world.b.sites["LEAD"]),  # as subscribing allowed before
                                 (world.a.consortium_id, world.a.sites["LEAD"])):
            uow.session.add(WebhookSubscription(consortium_id=consortium, site_id=site, url="https://a.example/h",
                                                secret="s", active=True))
        uow.commit()
    database.dispose()
    engine = create_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT site_id, active FROM webhook_subscriptions")).all())
    engine.dispose()
    assert not rows[world.b.sites["LEAD"]] and rows[world.a.sites["LEAD"]]
