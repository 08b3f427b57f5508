"""Migrations that mend data: what they change, and what they leave."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from pharmacy.migrate import upgrade


def test_0009_switches_off_webhooks_bound_to_another_consortiums_site(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "before.sqlite3")
    engine = create_engine(url)
    upgrade(engine, "0007")
    # The rows as the schema of 0007 held them (today's models have columns 0007 did not).
    with engine.begin() as conn:
        for consortium in (1, 2):
            conn.execute(text("INSERT INTO consortia (id, code, name, tight, created_at) "
                              "VALUES (:id, :code, :code, 1, CURRENT_TIMESTAMP)"), {"id": consortium,
                                                                                  "code": f"C{consortium}"})
            conn.execute(text("INSERT INTO sites (id, consortium_id, code, name, kind, level, district, dispenses, "
                              "active, created_at) VALUES (:id, :id, :code, :code, 'lead_hospital', 1, 'D1', 1, 1, "
                              "CURRENT_TIMESTAMP)"), {"id": consortium, "code": f"LEAD-{consortium}"})
        for site in (2, 1):  # consortium 1 subscribed to consortium 2's site, as subscribing allowed before
            conn.execute(text("INSERT INTO webhook_subscriptions (consortium_id, site_id, url, secret, active, "
                              "created_at) VALUES (1, :site, 'https://a.example/h', 's', 1, CURRENT_TIMESTAMP)"),
                         {"site": site})
    upgrade(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT site_id, active FROM webhook_subscriptions")).all())
    engine.dispose()
    assert not rows[2] and rows[1]
