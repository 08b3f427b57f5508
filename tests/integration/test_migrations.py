"""Migrations that mend data: what they change, and what they leave."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from pharmacy.db import Database
from pharmacy.migrate import upgrade
from pharmacy.prescriptions.models import WebhookSubscription
from pharmacy.principal import SYSTEM
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import World, build_world


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


def _before(tmp_path: Path, revision: str) -> tuple[str, Database, World]:
    url = "sqlite:///" + str(tmp_path / "before.sqlite3")
    upgrade(create_engine(url), revision)
    database = Database(url)
    return url, database, build_world(database.session_factory)


def test_0008_types_each_holds_cause_and_releases_holds_no_row_would_ever_release(tmp_path: Path) -> None:
    from datetime import UTC, date, datetime

    from pharmacy.catalog.services import create_drug
    from pharmacy.inventory.services import receive_stock
    from pharmacy.principal import system_for
    from tests.factories import drug_data

    url, database, world = _before(tmp_path, "0007")
    uow = UnitOfWork(database.session_factory, system_for(world.a.consortium_id))
    drug = create_drug(uow, drug_data("AML5")).id
    lot = receive_stock(uow, world.a.sites["C1"], drug, "L1", date(2030, 1, 1), 100).lot_id
    now = datetime(2026, 11, 23, 4, tzinfo=UTC)
    with database.engine.begin() as conn:
        rx = conn.execute(text(
            "INSERT INTO prescriptions (consortium_id, number, prescriber_site_id, prescriber, patient_ref, kind, "
            "issued_on, valid_until, status, status_reason, routing, returned_from, issues_total, current_issue, "
            "request_hash, source, created_at, updated_at) VALUES (:c, 'RX-1', :s, '', 'P1', 'ordinary', "
            "'2026-11-23', '2026-11-25', 'routed', '', '{}', '[]', 1, 0, 'x', 'api', :now, :now) RETURNING id"),
            {"c": world.a.consortium_id, "s": world.a.sites["LEAD"], "now": now}).scalar_one()
        for cause_type, cause_id, quantity in (("prescription", str(rx), 5), ("prescription", "RX-GONE", 3),
                                               ("manual", "ward-0", 2)):
            conn.execute(text(
                "INSERT INTO reservations (consortium_id, lot_id, site_id, drug_id, quantity, status, cause_type, "
                "cause_id, supply_until, created_at) VALUES (:c, :lot, :site, :drug, :q, 'held', :t, :id, "
                "'2026-11-30', :now)"), {"c": world.a.consortium_id, "lot": lot, "site": world.a.sites["C1"],
                                          "drug": drug, "q": quantity, "t": cause_type, "id": cause_id, "now": now})
        conn.execute(text("UPDATE lots SET reserved = 10 WHERE id = :lot"), {"lot": lot})
    database.dispose()
    engine = create_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        holds = conn.execute(text("SELECT cause_type, prescription_id, reference, status, quantity FROM reservations "
                                  "ORDER BY id")).all()
        reserved = conn.execute(text("SELECT reserved FROM lots WHERE id = :lot"), {"lot": lot}).scalar_one()
    engine.dispose()
    assert [tuple(h) for h in holds] == [("prescription", rx, None, "held", 5),
                                         ("manual", None, "prescription:RX-GONE", "released", 3),
                                         ("manual", None, "ward-0", "held", 2)]
    assert reserved == 7  # the hold no prescription would ever release is given back


def test_0011_moves_an_offers_prices_into_numeric_rows(tmp_path: Path) -> None:
    from decimal import Decimal

    url, database, world = _before(tmp_path, "0009")
    from pharmacy.catalog.services import create_drug
    from pharmacy.principal import system_for
    from tests.factories import drug_data

    uow = UnitOfWork(database.session_factory, system_for(world.a.consortium_id))
    drug = create_drug(uow, drug_data("AML5")).id
    with database.engine.begin() as conn:
        supplier = conn.execute(text(
            "INSERT INTO suppliers (consortium_id, code, name, active, created_at) VALUES (:c, 'S1', 's', true, "
            "'2026-11-23 04:00:00+00:00') RETURNING id"), {"c": world.a.consortium_id}).scalar_one()
        conn.execute(text(
            "INSERT INTO offers (consortium_id, supplier_id, drug_id, pack_size, tiers, lead_time_days, order_cost, "
            "default_delivery_cost, delivery_costs, valid_from, valid_until, updated_at) VALUES (:c, :s, :d, 28, "
            ":tiers, 2, 15.5, 0.3, :costs, '2026-11-01', '2027-10-31', '2026-11-23 04:00:00+00:00')"),
            {"c": world.a.consortium_id, "s": supplier, "d": drug,
             "tiers": '[{"min_packs": 0, "price_per_pack": 12.345}, {"min_packs": 100, "price_per_pack": 11.8}]',
             "costs": f'{{"{world.a.sites["C1"]}": 0.25}}'})
    database.dispose()
    engine = create_engine(url)
    upgrade(engine)
    with engine.connect() as conn:
        tiers = conn.execute(text("SELECT min_packs, price_per_pack FROM offer_tiers ORDER BY min_packs")).all()
        costs = conn.execute(text("SELECT site_id, cost_per_pack FROM offer_delivery_costs")).all()
        order_cost = conn.execute(text("SELECT order_cost FROM offers")).scalar_one()
    engine.dispose()
    assert [(m, Decimal(str(p))) for m, p in tiers] == [(0, Decimal("12.345")), (100, Decimal("11.8"))]
    assert [(s, Decimal(str(c))) for s, c in costs] == [(world.a.sites["C1"], Decimal("0.25"))]
    assert Decimal(str(order_cost)) == Decimal("15.5")
