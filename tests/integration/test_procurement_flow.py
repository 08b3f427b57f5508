"""Procurement end to end against a real database: a simulated month, a plan run in the background, two
approvals at once, and the scheduler under several web worker processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pharmacy.clock import FixedClock
from pharmacy.dashboard.services import consortium_dashboard
from pharmacy.errors import Conflict
from pharmacy.inventory.models import Lot, Movement
from pharmacy.inventory.services import check_ledger
from pharmacy.prescriptions.models import Dispense, Prescription
from pharmacy.principal import system_for
from pharmacy.procurement.models import (
    PlanLine,
    PlanRun,
    PurchaseOrder,
    PurchaseOrderLine,
    TransferOrder,
    TransferParcel,
)
from pharmacy.procurement.plan_runs import (
    PlanSettings,
    approve_plan,
    cancel_plan_run,
    execute_run,
    get_plan_run,
    start_plan_run,
)
from pharmacy.procurement.services import (
    ReceiptLine,
    get_transfer_order,
    receive_purchase_order,
    receive_transfer,
    ship_transfer,
)
from pharmacy.system.models import JobRun
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import rx, send, stock
from tests.factories import World, add_drug, build_world
from tests.integration.test_stock_races import _run_together

ROOT = Path(__file__).resolve().parents[2]
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)


def _offers(client, world: World, drugs: list[dict]) -> None:
    headers = world.a.headers("procurement")
    supplier = client.post("/api/suppliers", json={"code": "S1", "name": "华东医药"}, headers=headers).get_json()
    cheap = client.post("/api/suppliers", json={"code": "S2", "name": "九州通"}, headers=headers).get_json()
    for drug in drugs:
        two_tiers = [{"min_packs": 0, "price_per_pack": 30.0}, {"min_packs": 10, "price_per_pack": 27.0}]
        for who, tiers, extra in ((supplier, two_tiers, {"default_delivery_cost": 0.6}),
                                  (cheap, [{"min_packs": 15, "price_per_pack": 25.0}], {"order_cost": 12.0})):
            response = client.post("/api/offers", headers=headers, json={
                "supplier_id": who["id"], "drug_id": drug["id"], "pack_size": drug["pack_size"], "tiers": tiers,
                "valid_from": "2026-10-01", "valid_until": "2027-09-30", **extra})
            assert response.status_code == 201, response.get_json()


def test_a_month_is_dispensed_planned_approved_and_received_and_stock_ledger_and_costs_agree(
        app, client, world: World) -> None:
    clock = FixedClock(NOON - timedelta(days=30))
    app.config["CLOCK"] = clock
    try:
        aml = add_drug(client, world.a, "AML5", generic_name="氨氯地平片", pack_size=28)
        mtf = add_drug(client, world.a, "MTF500", generic_name="二甲双胍片", pack_size=48)
        opening = {("C1", "AML5"): 450, ("C2", "AML5"): 120, ("C1", "MTF500"): 300, ("C2", "MTF500"): 500}
        for (site, code), units in opening.items():
            stock(client, world, site, aml if code == "AML5" else mtf, f"OPEN-{site}-{code}", "2027-06-30", units)
        # H2 holds AML5 that expires soon and dispenses none of it: the plan should move it, not waste it.
        stock(client, world, "H2", aml, "H2-NEAR", "2026-12-20", 200)

        # A month of prescriptions, nominated to C1 or C2, dispensed and handed over.
        number = 0
        for _day in range(30):
            for site, items in (("C1", [("AML5", 14), ("MTF500", 10)]), ("C2", [("MTF500", 16)])):
                number += 1
                body = rx(f"RX-M{number}", items=[{"drug_code": c, "quantity": q, "supply_days": 7} for c, q in items],
                          nominated_pharmacy=world.a.sites[site], issued_on=clock.today().isoformat(),
                          valid_until=clock.today().isoformat())
                created = send(client, world, body).get_json()
                assert created["status"] == "routed" and created["pharmacy_site_id"] == world.a.sites[site], created
                headers = world.a.headers("pharmacist" if site == "C1" else "pharmacist_c2")
                for step in ("accept", "prepare", "dispense", "hand-over"):
                    done = client.post(f"/api/prescriptions/{created['id']}/{step}", headers=headers, json={})
                    assert done.status_code == 200, done.get_json()
            clock.advance(days=1)
        assert clock.today() == date(2026, 11, 23)

        _offers(client, world, [aml, mtf])
        officer = world.a.headers("procurement")
        started = client.post("/api/plan-runs", headers=officer, json={"horizon_days": 30, "history_days": 30})
        run = client.get(f"/api/plan-runs/{started.get_json()['id']}", headers=officer).get_json()
        assert run["status"] == "succeeded", run
        result = run["result"]
        assert result["costs"]["total"] <= result["baseline"]["total"] + 1e-6
        assert result["summary"]["near_expiry_units_moved"] > 0
        approved = client.post(f"/api/plan-runs/{run['id']}/approve", headers=officer).get_json()
        assert approved["purchase_orders"] and approved["transfer_orders"]

        factory = app.extensions["pharmacy_db"].session_factory

        def system() -> UnitOfWork:
            return UnitOfWork(factory, system_for(world.a.consortium_id), clock)

        # The dashboard charts the approved plan's saving, on the day it was approved.
        assert consortium_dashboard(system(), 90).savings == [
            (clock.now().date().isoformat(), pytest.approx(result["summary"]["saving"]))]

        # Every order is delivered and received in full, each line as one lot.
        with factory() as session:
            lines = session.scalars(select(PurchaseOrderLine).order_by(PurchaseOrderLine.id)).all()
            totals = session.scalar(select(func.sum(PurchaseOrder.total)).where(PurchaseOrder.run_id == run["id"]))
        by_order_site: dict[tuple[int, int], list[PurchaseOrderLine]] = defaultdict(list)
        for line in lines:
            by_order_site[(line.order_id, line.site_id)].append(line)
        for (order_id, site_id), site_lines in by_order_site.items():
            receive_purchase_order(system(), order_id, site_id, [
                ReceiptLine(line.drug_id, f"PO{order_id}-{line.id}", date(2028, 1, 31), line.units)
                for line in site_lines])
        for order in approved["transfer_orders"]:
            ship_transfer(system(), order["id"])
            receive_transfer(system(), order["id"])
            assert get_transfer_order(system(), order["id"]).order.status == "received"

        # Costs: the orders carry exactly what the plan spends with suppliers.
        spending = result["costs"]["purchase"] + result["costs"]["delivery"] + result["costs"]["order"]
        assert float(totals) == pytest.approx(spending, abs=0.05)  # stored to the fen, the plan in floats
        # Stock: each lot is its movements, and each site's stock is its opening balance, plus what was
        # received and transferred in, less what was dispensed and transferred out.
        assert check_ledger(system()) == []
        with factory() as session:
            on_hand = dict(((s, d), q) for s, d, q in session.execute(
                select(Lot.site_id, Lot.drug_id, func.sum(Lot.quantity)).group_by(Lot.site_id, Lot.drug_id)))
            dispensed = dict(((s, d), q) for s, d, q in session.execute(
                select(Dispense.site_id, Dispense.drug_id, func.sum(Dispense.quantity))
                .group_by(Dispense.site_id, Dispense.drug_id)))
            parcels = session.execute(select(TransferParcel, TransferOrder).join(
                TransferOrder, TransferOrder.id == TransferParcel.order_id)).all()
            statuses = set(session.scalars(select(Prescription.status)))
            receipts = session.scalar(select(func.count()).select_from(Movement).where(Movement.kind == "receipt"))
            lines = session.scalars(select(PurchaseOrderLine).order_by(PurchaseOrderLine.id)).all()
        assert statuses == {"completed"}
        expected: dict[tuple[int, int], int] = defaultdict(int)
        for (site, code), units in opening.items():
            expected[(world.a.sites[site], aml["id"] if code == "AML5" else mtf["id"])] += units
        expected[(world.a.sites["H2"], aml["id"])] += 200
        for line in lines:
            expected[(line.site_id, line.drug_id)] += line.received_units
            assert line.received_units == line.units
        for parcel, order in parcels:
            expected[(order.from_site_id, parcel.drug_id)] -= parcel.shipped
            expected[(order.to_site_id, parcel.drug_id)] += parcel.received
        for key, units in dispensed.items():
            expected[key] -= units
        assert {k: v for k, v in on_hand.items() if v} == {k: v for k, v in expected.items() if v}
        assert receipts == len(opening) + 1 + len(lines)
    finally:
        app.config.pop("CLOCK", None)


def _committed_world_with_a_plan(app) -> tuple[World, int]:
    """A committed world with demand, stock and offers, and a finished plan run."""
    client = app.test_client()
    factory = app.extensions["pharmacy_db"].session_factory
    world = build_world(factory)
    app.config["CLOCK"] = FixedClock(NOON)
    aml = add_drug(client, world.a, "AML5", generic_name="氨氯地平片", pack_size=28)
    stock(client, world, "C1", aml, "NEAR", "2026-12-05", 20)
    for n in range(3):
        sent = send(client, world, rx(f"RX-W{n}", items=[{"drug_code": "AML5", "quantity": 200, "supply_days": 7}],
                                      nominated_pharmacy=world.a.sites["C1"]))
        assert sent.get_json()["status"] == "awaiting_stock"  # known demand the plan must buy for
    _offers(client, world, [aml])
    run = start_plan_run(UnitOfWork(factory, system_for(world.a.consortium_id), app.config["CLOCK"]),
                         horizon_days=30, history_days=30, on_queued=app.extensions["plan_runner"].submit)
    return world, run.id


def test_two_concurrent_approvals_of_one_plan_create_its_orders_once(committed_app) -> None:
    world, run_id = _committed_world_with_a_plan(committed_app)
    factory = committed_app.extensions["pharmacy_db"].session_factory
    officer = system_for(world.a.consortium_id)
    assert get_plan_run(UnitOfWork(factory, officer), run_id).status == "succeeded"

    results = _run_together(lambda _: approve_plan(UnitOfWork(factory, officer), run_id), 4)
    approvals = [r for r in results if not isinstance(r, Exception)]
    refusals = [r for r in results if isinstance(r, Exception)]
    assert len(approvals) == 1 and len(refusals) == 3
    assert all(isinstance(r, Conflict) and "approved already" in r.message for r in refusals), refusals
    with factory() as session:
        orders = session.scalars(select(PurchaseOrder).where(PurchaseOrder.run_id == run_id)).all()
        assert len(orders) == len(approvals[0].purchase_orders) >= 1
        assert session.get(PlanRun, run_id).status == "approved"
    committed_app.config.pop("CLOCK", None)


def test_a_cancel_racing_a_run_either_stops_it_or_is_refused_because_it_finished(committed_app) -> None:
    world, _ = _committed_world_with_a_plan(committed_app)
    database = committed_app.extensions["pharmacy_db"]
    officer = system_for(world.a.consortium_id)
    clock = committed_app.config["CLOCK"]
    # The cancel comes later each time (this run takes some 20 ms): before the run is claimed, while it reads its
    # inputs or solves, or once it has finished. Whichever it meets, the outcome is one of the two below.
    for delay in (0.0, 0.003, 0.006, 0.01, 0.015, 0.02, 0.5):
        run_id = start_plan_run(UnitOfWork(database.session_factory, officer, clock), horizon_days=30,
                                history_days=30).id  # queued: the race decides whether it runs

        def either(index: int, run_id: int = run_id, delay: float = delay) -> object:
            if index == 0:
                return execute_run(database, run_id, clock, PlanSettings())
            time.sleep(delay)
            return cancel_plan_run(UnitOfWork(database.session_factory, officer, clock), run_id, "race")

        ran, cancel = _run_together(either, 2)
        run = get_plan_run(UnitOfWork(database.session_factory, officer), run_id)
        with database.session_factory() as session:
            lines = session.scalar(select(func.count()).select_from(PlanLine).where(PlanLine.run_id == run_id))
        if isinstance(cancel, Exception):  # the run had finished: its plan stands
            assert isinstance(cancel, Conflict) and "is succeeded" in cancel.message, cancel
            assert ran == "succeeded" and run.status == "succeeded" and run.result is not None and lines
        else:  # cancelled before it ran ("taken": it never started) or while it ran: no plan is kept
            assert ran in ("taken", "cancelled"), ran
            assert run.status == "cancelled" and run.result is None and lines == 0 and run.finished_at
    committed_app.config.pop("CLOCK", None)


def test_a_plan_run_started_over_the_api_runs_in_the_background_and_reports_progress(committed_app) -> None:
    committed_app.extensions["plan_runner"].mode = "thread"
    try:
        world, first = _committed_world_with_a_plan(committed_app)  # (this one ran in the thread too)
        client = committed_app.test_client()
        officer = world.a.headers("procurement")
        response = client.post("/api/plan-runs", headers=officer, json={"horizon_days": 30, "history_days": 30})
        assert response.status_code == 202 and response.get_json()["status"] == "queued"
        deadline = time.monotonic() + 90
        seen = set()
        while time.monotonic() < deadline:
            run = client.get(f"/api/plan-runs/{response.get_json()['id']}", headers=officer).get_json()
            seen.add(run["status"])
            if run["status"] in ("succeeded", "failed"):
                break
            time.sleep(0.05)
        assert run["status"] == "succeeded", run
        assert run["progress"] == 1.0 and run["started_at"] and run["finished_at"]
        assert run["result"]["summary"]["purchase_lines"] >= 1
        # The same frozen inputs give the same plan as the first run.
        first_run = client.get(f"/api/plan-runs/{first}", headers=officer).get_json()
        assert first_run["result"]["costs"]["total"] == pytest.approx(run["result"]["costs"]["total"], rel=1e-6)
    finally:
        committed_app.extensions["plan_runner"].shutdown()
        committed_app.extensions["plan_runner"].mode = "inline"
        committed_app.config.pop("CLOCK", None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_scheduler_runs_once_when_the_app_runs_in_two_worker_processes(committed_app, tmp_path) -> None:
    database = committed_app.extensions["pharmacy_db"]
    url = database.engine.url.render_as_string(hide_password=False)
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "PHARMACY_RUN_SCHEDULER": "1", "PHARMACY_HEARTBEAT_SECONDS": "1",
           "PHARMACY_INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "test"}
    log = tmp_path / "gunicorn.log"
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                                   "wsgi:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and log.read_text().count("Booting worker") < 2:
            time.sleep(0.2)
        assert log.read_text().count("Booting worker") == 2, log.read_text()
        # Wait for five heartbeats (workers load the app at their own pace on a busy machine).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(_beats(database)) < 5:
            time.sleep(0.5)
        time.sleep(3)  # time for a second scheduler, if there were one, to beat too
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    beats = _beats(database)
    assert len(beats) >= 5, log.read_text()
    # Both workers loaded the app and tried the lock; one ran every beat.
    assert len({b.runner for b in beats}) == 1, {b.runner for b in beats}


def _beats(database) -> list[JobRun]:
    with database.session_factory() as session:
        return list(session.scalars(select(JobRun).where(JobRun.job_id == "system.heartbeat")))
