"""Migrations that mend data: what they change, and what they leave."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

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


def _schema_at(tmp_path: Path, revision: str) -> Engine:
    """A database at ``revision``, with one consortium, a lead hospital (site 1), a pharmacy (site 2) and a drug
    (drug 1), as the schema of that revision held them."""
    engine = create_engine("sqlite:///" + str(tmp_path / "before.sqlite3"))
    upgrade(engine, revision)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO consortia (id, code, name, tight, created_at) VALUES (1, 'C1', 'c', 1, "
                          "CURRENT_TIMESTAMP)"))
        for site, kind, level, parent in ((1, "lead_hospital", 1, None), (2, "community_health_centre", 3, 1)):
            conn.execute(text("INSERT INTO sites (id, consortium_id, code, name, kind, level, parent_id, district, "
                              "dispenses, active, created_at) VALUES (:id, 1, :code, :code, :kind, :level, :parent, "
                              "'D1', 1, 1, CURRENT_TIMESTAMP)"),
                         {"id": site, "code": f"S{site}", "kind": kind, "level": level, "parent": parent})
        conn.execute(text(
            "INSERT INTO drugs (id, consortium_id, code, generic_name, pinyin_initials, pinyin_full, search_key, "
            "dosage_form, strength_amount, strength_unit, dispensing_unit, pack_size, essential, insurance_class, "
            "controlled_class, special_storage, active, version, updated_at) VALUES (1, 1, 'AML5', 'a', 'a', 'a', "
            "'a', 'tablet', 5, 'mg', 'tablet', 28, 1, 'A', 'none', 'none', 1, 1, CURRENT_TIMESTAMP)"))
    return engine


def test_0008_types_each_holds_cause_and_releases_holds_no_row_would_ever_release(tmp_path: Path) -> None:
    engine = _schema_at(tmp_path, "0007")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO lots (id, consortium_id, site_id, drug_id, lot_number, expiry_date, quantity, "
                          "reserved, created_at) VALUES (1, 1, 2, 1, 'L1', '2030-01-01', 100, 10, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO prescriptions (id, consortium_id, number, prescriber_site_id, prescriber, patient_ref, kind, "
            "issued_on, valid_until, status, status_reason, routing, returned_from, issues_total, current_issue, "
            "request_hash, source, created_at, updated_at) VALUES (7, 1, 'RX-1', 1, '', 'P1', 'ordinary', "
            "'2026-11-23', '2026-11-25', 'routed', '', '{}', '[]', 1, 0, 'x', 'api', CURRENT_TIMESTAMP, "
            "CURRENT_TIMESTAMP)"))
        for cause_type, cause_id, quantity in (("prescription", "7", 5), ("prescription", "RX-GONE", 3),
                                               ("manual", "ward-0", 2)):
            conn.execute(text(
                "INSERT INTO reservations (consortium_id, lot_id, site_id, drug_id, quantity, status, cause_type, "
                "cause_id, supply_until, created_at) VALUES (1, 1, 2, 1, :q, 'held', :t, :id, '2026-11-30', "
                "CURRENT_TIMESTAMP)"), {"q": quantity, "t": cause_type, "id": cause_id})
    upgrade(engine)
    with engine.connect() as conn:
        holds = conn.execute(text("SELECT cause_type, prescription_id, reference, status, quantity FROM reservations "
                                  "ORDER BY id")).all()
        reserved = conn.execute(text("SELECT reserved FROM lots WHERE id = 1")).scalar_one()
    engine.dispose()
    assert [tuple(h) for h in holds] == [("prescription", 7, None, "held", 5),
                                         ("manual", None, "prescription:RX-GONE", "released", 3),
                                         ("manual", None, "ward-0", "held", 2)]
    assert reserved == 7  # the hold no prescription would ever release is given back


def test_0011_moves_an_offers_prices_into_numeric_rows(tmp_path: Path) -> None:
    engine = _schema_at(tmp_path, "0010")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO suppliers (id, consortium_id, code, name, active, created_at) VALUES "
                          "(1, 1, 'S1', 's', 1, CURRENT_TIMESTAMP)"))
        conn.execute(text(
            "INSERT INTO offers (consortium_id, supplier_id, drug_id, pack_size, tiers, lead_time_days, order_cost, "
            "default_delivery_cost, delivery_costs, valid_from, valid_until, updated_at) VALUES (1, 1, 1, 28, "
            ":tiers, 2, 15.5, 0.3, :costs, '2026-11-01', '2027-10-31', CURRENT_TIMESTAMP)"),
            {"tiers": '[{"min_packs": 0, "price_per_pack": 12.345}, {"min_packs": 100, "price_per_pack": 11.8}]',
             "costs": '{"2": 0.25}'})
    upgrade(engine)
    with engine.connect() as conn:
        tiers = conn.execute(text("SELECT min_packs, price_per_pack FROM offer_tiers ORDER BY min_packs")).all()
        costs = conn.execute(text("SELECT site_id, cost_per_pack FROM offer_delivery_costs")).all()
        order_cost = conn.execute(text("SELECT order_cost FROM offers")).scalar_one()
    engine.dispose()
    assert [(m, Decimal(str(p))) for m, p in tiers] == [(0, Decimal("12.345")), (100, Decimal("11.8"))]
    assert [(s, Decimal(str(c))) for s, c in costs] == [(2, Decimal("0.25"))]
    assert Decimal(str(order_cost)) == Decimal("15.5")
