"""The command line, the demo and the one-scheduler rule, against a database that really commits."""

from __future__ import annotations

import os
import re

from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from pharmacy.cli import main
from pharmacy.demo import DEMO_SITES, load_demo
from pharmacy.scheduler import DeploymentLock, recorded
from pharmacy.system.models import JobRun


def run(app, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app), input=input,
                              catch_exceptions=False)


def test_cli_creates_a_consortium_a_key_and_a_user_that_can_sign_in(committed_app):
    assert run(committed_app, "create-consortium", "CX", "城西医联体").exit_code == 0
    key = run(committed_app, "create-key", "--consortium", "CX", "--role", "admin").output.strip()
    assert key.startswith("cph_")
    client = committed_app.test_client()
    site = client.post("/api/sites", headers={"Authorization": f"Bearer {key}"},
                       json={"code": "CX-LEAD", "name": "lead", "kind": "lead_hospital", "dispenses": True})
    assert site.status_code == 201
    created = run(committed_app, "create-user", "--consortium", "CX", "--role", "pharmacist", "--site",
                  "CX-LEAD", "--username", "li", input="a good password\na good password\n")
    assert created.exit_code == 0, created.output
    import base64

    basic = base64.b64encode(b"li:a good password").decode()
    assert client.get("/api/sites", headers={"Authorization": f"Basic {basic}"}).status_code == 200


def test_cli_says_what_is_wrong_instead_of_a_traceback(committed_app):
    run(committed_app, "create-consortium", "CX", "x")
    again = run(committed_app, "create-consortium", "CX", "x")
    assert again.exit_code != 0 and "already exists" in again.output
    bad_site = run(committed_app, "create-key", "--consortium", "CX", "--role", "pharmacist", "--site", "NOPE")
    assert bad_site.exit_code != 0 and "site NOPE not found" in bad_site.output


def test_demo_loads_a_consortium_once_with_keys_that_work(committed_app):
    keys = load_demo(committed_app)
    assert keys is not None and {k.role for k in keys} == {"admin", "procurement", "prescriber", "pharmacist"}
    # ...and sign-ins for the pages: two pharmacists of one pharmacy, a prescriber and an officer.
    people = {k.username: k for k in keys if k.username}
    assert set(people) == {"li", "zhou", "dr-wang", "wang"}
    pages = committed_app.test_client()
    form = pages.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    signed_in = pages.post("/login", data={"csrf_token": token, "username": "li", "password": people["li"].key})
    assert signed_in.status_code == 302 and pages.get("/worklist").status_code == 200
    client = committed_app.test_client()
    admin = next(k.key for k in keys if k.role == "admin")
    response = client.get("/api/sites?page_size=100", headers={"Authorization": f"Bearer {admin}"})
    assert len(response.get_json()) == len(DEMO_SITES) == 20
    assert load_demo(committed_app) is None  # a database that is not empty is left alone
    drugs = client.get("/api/drugs?q=amxl", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert drugs and drugs[0]["generic_name"] == "阿莫西林胶囊"
    stock = client.get("/api/inventory/stock", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert stock and all(row["on_hand"] > 0 for row in stock)
    routed = client.get("/api/prescriptions", headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert len(routed) == 5 and all(p["status"] in ("routed", "awaiting_stock") for p in routed)
    # The demo is ready to plan: the command line runs a plan against its history and offers.
    planned = run(committed_app, "plan", "--consortium", "XH-1PLUSX", "--history", "45", "--time-limit", "20")
    assert planned.exit_code == 0, planned.output
    assert "site by site" in planned.output and "saving:" in planned.output
    officer = next(k.key for k in keys if k.role == "procurement" and not k.username)
    runs = client.get("/api/plan-runs", headers={"Authorization": f"Bearer {officer}"}).get_json()
    assert [(r["trigger"], r["status"]) for r in runs] == [("command", "succeeded")]

    checked = run(committed_app, "check-ledger")
    assert checked.exit_code == 0 and "ledger consistent" in checked.output


def test_only_one_scheduler_runs_per_deployment(committed_app):
    database = committed_app.extensions["pharmacy_db"]
    first = DeploymentLock(database, committed_app.instance_path)
    second = DeploymentLock(database, committed_app.instance_path)
    assert first.acquire()
    try:
        assert not second.acquire()
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_jobs_are_data_with_stable_ids_and_run_against_the_database(committed_app):
    from pharmacy.scheduler import build_scheduler, job_definitions, recorded

    jobs = job_definitions(committed_app.config)
    assert [j.id for j in jobs] == [
        "prescriptions.expire_uncollected", "prescriptions.prepare_due_installments", "prescriptions.deliver_webhooks",
        "procurement.run_queued_plans", "procurement.nightly_plan", "inventory.near_expiry_alerts",
        "inventory.low_stock_alerts", "inventory.release_expired_reservations", "system.heartbeat"]
    scheduler = build_scheduler(committed_app)
    assert {j.id for j in scheduler.get_jobs()} == {j.id for j in jobs}
    database = committed_app.extensions["pharmacy_db"]
    results = [recorded(job, database)() for job in jobs]
    assert results == [0, 0, {"delivered": 0, "retrying": 0, "failed": 0}, 0, 0, 0, 0, 0, "alive"]
    # Every run is on record with its outcome, readable over the API.
    with database.session_factory() as session:
        runs = session.scalars(select(JobRun).order_by(JobRun.id)).all()
    assert [(r.job_id, r.outcome) for r in runs] == [(j.id, "ok") for j in jobs]
    assert runs[0].runner.endswith(f":{os.getpid()}") and runs[0].finished_at is not None


def test_a_failing_job_is_recorded_as_failed_with_its_error(committed_app):
    from pharmacy.scheduler import JobDefinition

    def broken(database):
        raise RuntimeError("supplier feed unreachable")

    database = committed_app.extensions["pharmacy_db"]
    recorded(JobDefinition("test.broken", broken, "interval", {"hours": 1}), database)()
    with database.session_factory() as session:
        run = session.scalars(select(JobRun).where(JobRun.job_id == "test.broken")).one()
    assert run.outcome == "failed" and "supplier feed unreachable" in run.detail


def test_offers_are_imported_from_the_command_line_and_bad_files_say_where(committed_app, tmp_path):
    assert run(committed_app, "create-consortium", "CY", "城东医联体").exit_code == 0
    key = run(committed_app, "create-key", "--consortium", "CY", "--role", "admin").output.strip()
    client = committed_app.test_client()
    client.post("/api/drugs", headers={"Authorization": f"Bearer {key}"}, json={
        "code": "AML5", "generic_name": "氨氯地平片", "dosage_form": "tablet", "strength_amount": "5",
        "strength_unit": "mg", "dispensing_unit": "tablet", "pack_size": 28})
    good = tmp_path / "offers.csv"
    good.write_text("supplier_code,supplier_name,drug_code,pack_size,tiers,valid_from,valid_until\n"
                    "S1,华东医药,AML5,28,0:30;20:27,2026-11-01,2027-10-31\n", encoding="utf-8")
    imported = run(committed_app, "import-offers", "--consortium", "CY", str(good))
    assert imported.exit_code == 0 and "1 created" in imported.output, imported.output
    bad = tmp_path / "bad.csv"
    bad.write_text("supplier_code,drug_code,pack_size,tiers,valid_from,valid_until\n"
                   "S1,AML5,28,0:30;20:35,2026-11-01,2027-10-31\n", encoding="utf-8")
    refused = run(committed_app, "import-offers", "--consortium", "CY", str(bad))
    assert refused.exit_code != 0 and "line 2, tiers" in refused.output
