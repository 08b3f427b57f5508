"""Procurement over HTTP: offers, forecasts, plan runs, edits, approval, receipts, transfers, alerts, jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pharmacy.clock import FixedClock
from pharmacy.inventory.domain import CauseType
from pharmacy.inventory.services import Cause, check_ledger, dispense_stock
from pharmacy.principal import system_for
from pharmacy.procurement import plan_runs
from pharmacy.procurement.models import PlanRun
from pharmacy.procurement.plan_runs import PlanSettings, execute_run, run_queued_plans
from pharmacy.procurement.services import OFFER_CSV_COLUMNS, raise_low_stock_alerts, raise_near_expiry_alerts
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_foundation import assert_problem
from tests.api.test_prescriptions import stock
from tests.factories import World, add_drug

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou


def history(client, world: World, site: str, drug: dict, per_day: list[int]) -> None:
    """Dispense ``per_day[n]`` units on each of the last days (oldest first), as prescriptions would have."""
    factory = client.application.extensions["pharmacy_db"].session_factory
    days = len(per_day)
    for n, units in enumerate(per_day):
        if units <= 0:
            continue
        at = datetime(2026, 11, 23, 4, 0, tzinfo=UTC) - timedelta(days=days - n)
        uow = UnitOfWork(factory, system_for(world.a.consortium_id), FixedClock(at))
        dispense_stock(uow, world.a.sites[site], drug["id"], units, at.date(),
                       Cause(CauseType.PRESCRIPTION, f"history-{site}-{n}"))


@pytest.fixture
def market(client, world: World) -> dict:
    """Two drugs with a month of dispensing history, some stock near expiry, and two suppliers' offers."""
    aml = add_drug(client, world.a, "AML5", generic_name="氨氯地平片", pack_size=28)
    mtf = add_drug(client, world.a, "MTF500", generic_name="二甲双胍片", pack_size=48, essential=False)
    stock(client, world, "C1", aml, "A-HIST", "2027-12-31", 700)
    stock(client, world, "C2", aml, "A-C2", "2027-12-31", 200)
    stock(client, world, "LEAD", mtf, "M-HIST", "2027-12-31", 1500)
    history(client, world, "C1", aml, [20, 25, 15, 20] * 7)
    history(client, world, "C2", aml, [2, 3] * 14)
    history(client, world, "LEAD", mtf, [30, 40, 35, 25] * 7)
    # Near expiry at C2, which uses little: better moved to C1 than wasted.
    stock(client, world, "C2", aml, "A-NEAR", "2026-12-13", 300)
    headers = world.a.headers("procurement")
    s1 = client.post("/api/suppliers", json={"code": "S1", "name": "华东医药"}, headers=headers).get_json()
    s2 = client.post("/api/suppliers", json={"code": "S2", "name": "英特药业"}, headers=headers).get_json()
    offers = [
        {"supplier_id": s1["id"], "drug_id": aml["id"], "pack_size": 28, "valid_from": "2026-11-01",
         "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 30.0},
                                                {"min_packs": 20, "price_per_pack": 26.0}],
         "default_delivery_cost": 0.5, "lead_time_days": 2},
        {"supplier_id": s2["id"], "drug_id": aml["id"], "pack_size": 28, "valid_from": "2026-11-01",
         "valid_until": "2027-10-31", "tiers": [{"min_packs": 50, "price_per_pack": 24.0}], "order_cost": 20},
        {"supplier_id": s1["id"], "drug_id": mtf["id"], "pack_size": 48, "valid_from": "2026-11-01",
         "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 40.0},
                                                {"min_packs": 30, "price_per_pack": 36.0}]},
    ]
    made = []
    for offer in offers:
        response = client.post("/api/offers", json=offer, headers=headers)
        assert response.status_code == 201, response.get_json()
        made.append(response.get_json())
    return {"aml": aml, "mtf": mtf, "s1": s1, "s2": s2, "offers": made}


def run_plan(client, world: World, **settings) -> dict:
    response = client.post("/api/plan-runs", json={"horizon_days": 30, **settings},
                           headers=world.a.headers("procurement"))
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["status"] == "queued"
    run = client.get(f"/api/plan-runs/{response.get_json()['id']}", headers=world.a.headers("procurement")).get_json()
    assert run["status"] == "succeeded", run
    return run


# Offers -------------------------------------------------------------------------------------------------

def test_an_offer_with_rising_prices_or_an_unknown_site_is_refused_with_where(client, world, market) -> None:
    headers = world.a.headers("procurement")
    base = {"supplier_id": market["s1"]["id"], "drug_id": market["aml"]["id"], "pack_size": 28,
            "valid_from": "2027-01-01", "valid_until": "2027-12-31"}
    rising = client.post("/api/offers", headers=headers, json={**base, "tiers": [
        {"min_packs": 0, "price_per_pack": 10}, {"min_packs": 10, "price_per_pack": 12}]})
    assert_problem(rising, 422, "tiers")
    assert "cannot cost more" in rising.get_data(as_text=True)
    unknown = client.post("/api/offers", headers=headers, json={
        **base, "tiers": [{"min_packs": 0, "price_per_pack": 10}], "delivery_costs": {"NOWHERE": 1}})
    assert_problem(unknown, 422, "NOWHERE")
    backwards = client.post("/api/offers", headers=headers, json={
        **base, "valid_until": "2026-01-01", "tiers": [{"min_packs": 0, "price_per_pack": 10}]})
    assert_problem(backwards, 422, "valid_until")
    again = client.post("/api/offers", headers=headers, json={
        **base, "valid_from": "2026-11-01", "tiers": [{"min_packs": 0, "price_per_pack": 10}]})
    assert again.status_code == 409
    assert client.post("/api/offers", headers=world.a.headers("pharmacist"), json=base).status_code == 403


OFFERS_CSV = ",".join(OFFER_CSV_COLUMNS) + """
S3,九州通,AML5,28,0:29;40:25.5,3,500,10,,A-C1:0.4;A-C2:0.6,2026-11-01,2027-04-30
S3,九州通,MTF500,48,10:38,3,,10,0.8,,2026-11-01,2027-04-30
"""


def test_offers_import_from_csv_all_or_nothing_and_a_second_import_changes_nothing(client, world, market) -> None:
    headers = {**world.a.headers("procurement"), "Content-Type": "text/csv"}
    first = client.post("/api/offers/import", data=OFFERS_CSV, headers=headers)
    assert first.status_code == 200, first.get_json()
    assert first.get_json() == {"created": 2, "updated": 0, "unchanged": 0}
    assert client.post("/api/offers/import", data=OFFERS_CSV, headers=headers).get_json() == {
        "created": 0, "updated": 0, "unchanged": 2}
    listed = client.get(f"/api/offers?drug_id={market['aml']['id']}&valid_on=2027-02-01",
                        headers=world.a.headers("procurement")).get_json()
    s3 = next(o for o in listed if o["lead_time_days"] == 3)
    assert s3["tiers"] == [{"min_packs": 0, "price_per_pack": 29.0}, {"min_packs": 40, "price_per_pack": 25.5}]
    assert s3["delivery_costs"] == {str(world.a.sites["C1"]): 0.4, str(world.a.sites["C2"]): 0.6}

    bad = OFFERS_CSV.replace("0:29;40:25.5", "0:29;40:31").replace("MTF500", "NOPE") + \
        "S4,,AML5,0,0:1,,,,,,2026-11-01,2027-01-01\n"
    refused = client.post("/api/offers/import", data=bad, headers=headers)
    assert refused.status_code == 422
    lines = refused.get_json()["errors"]["lines"]
    assert {(int(line), column) for line, columns in lines.items() for column in columns} >= \
        {(2, "tiers"), (4, "pack_size")}
    suppliers = client.get("/api/suppliers", headers=world.a.headers("procurement")).get_json()
    assert "S4" not in {s["code"] for s in suppliers}  # nothing of the bad file was written


# Forecasts ----------------------------------------------------------------------------------------------

def test_the_forecast_follows_the_dispensing_ledger_with_safety_stock(client, world, market) -> None:
    response = client.get(f"/api/forecasts?horizon_days=30&history_days=28&drug_id={market['aml']['id']}",
                          headers=world.a.headers("procurement"))
    assert response.status_code == 200
    by_site = {f["site_id"]: f for f in response.get_json()}
    c1 = by_site[world.a.sites["C1"]]
    assert c1["daily_usage"] == pytest.approx(20.0)
    assert c1["expected"] == pytest.approx(600.0)
    assert 0 < c1["safety"] < 100 and c1["units"] == pytest.approx(600 + c1["safety"], abs=1)
    assert by_site[world.a.sites["C2"]]["daily_usage"] == pytest.approx(2.5)
    # a pharmacist sees the own site's forecast only
    mine = client.get("/api/forecasts?history_days=28", headers=world.a.headers("pharmacist")).get_json()
    assert {f["site_id"] for f in mine} == {world.a.sites["C1"]}


# Plan runs ----------------------------------------------------------------------------------------------

def test_a_plan_run_shows_its_plan_beside_the_site_by_site_baseline(client, world, market) -> None:
    run = run_plan(client, world, history_days=28)
    result = run["result"]
    assert result["status"] in ("optimal", "feasible_time_limit")
    assert set(result["costs"]) >= {"purchase", "delivery", "order", "transfer", "shortage", "waste", "total"}
    assert result["costs"]["total"] <= result["baseline"]["total"] + 1e-6
    assert result["summary"]["saving"] == pytest.approx(result["baseline"]["total"] - result["costs"]["total"])
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json()
    purchases = [line for line in lines if line["kind"] == "purchase"]
    transfers = [line for line in lines if line["kind"] == "transfer"]
    assert purchases and all(line["why"] for line in lines)
    # The near-expiry lot at C2 (which uses 2.5 a day) goes to C1 rather than to waste.
    # Expiring on 2026-12-13, the lot can be used on 21 days, today's included.
    near = [t for t in transfers if t["from_site_id"] == world.a.sites["C2"] and "expires in 21 days" in t["why"]]
    assert near and {t["site_id"] for t in near} == {world.a.sites["C1"]}
    assert result["summary"]["near_expiry_units_moved"] > 0
    # Inputs are frozen with the run.
    inputs = client.get(f"/api/plan-runs/{run['id']}/inputs", headers=world.a.headers("procurement")).get_json()
    assert inputs["as_of"] == "2026-11-23" and inputs["sites"]["A-C1"] == world.a.sites["C1"]
    assert {o["id"] for o in inputs["problem"]["offers"]} == {f"O{o['id']}" for o in market["offers"]}


def test_a_plan_run_within_a_budget_keeps_to_it_and_says_how(client, world, market) -> None:
    run = run_plan(client, world, history_days=28, budget=50.0)
    costs = run["result"]["costs"]
    assert costs["purchase"] + costs["delivery"] + costs["order"] <= 50.0 + 1e-6
    # The sites alone it is compared with share the same budget, so the plan still saves against them.
    baseline = run["result"]["baseline"]
    assert baseline["purchase"] + baseline["delivery"] + baseline["order"] <= 50.0 + 1e-6
    assert costs["total"] <= baseline["total"] + 1e-6
    assert run["progress_note"].startswith("planned: ") and "; budget planned in one model" in run["progress_note"]


def test_plan_runs_are_for_officers_and_stay_within_their_consortium(client, world, market) -> None:
    run = run_plan(client, world, history_days=28)
    assert client.get(f"/api/plan-runs/{run['id']}", headers=world.b.headers("procurement")).status_code == 404
    assert client.post("/api/plan-runs", json={}, headers=world.a.headers("pharmacist")).status_code == 403
    bad = client.post("/api/plan-runs", json={"horizon_days": 0, "solver": "gurobi"},
                      headers=world.a.headers("procurement"))
    assert_problem(bad, 422, "horizon_days")
    assert "solver" in bad.get_data(as_text=True)


@pytest.fixture
def queued_runs(app):
    """Plan runs wait in the queue until a test runs them (as when the scheduler runs them)."""
    runner = app.extensions["plan_runner"]
    runner.mode = "queue"
    try:
        yield
    finally:
        runner.mode = "inline"


def _queue_plan(client, world: World) -> dict:
    response = client.post("/api/plan-runs", json={"horizon_days": 30, "history_days": 28},
                           headers=world.a.headers("procurement"))
    assert response.status_code == 202 and response.get_json()["status"] == "queued"
    return response.get_json()


def _cancel(client, world: World, run_id: int, **body):
    return client.post(f"/api/plan-runs/{run_id}/cancel", json=body, headers=world.a.headers("procurement"))


def test_a_queued_plan_run_cancelled_never_runs_and_the_cancel_is_audited(
        app, client, world, market, queued_runs, clock) -> None:
    run = _queue_plan(client, world)
    assert_problem(_cancel(client, world, run["id"]), 422, "note")
    assert_problem(_cancel(client, world, run["id"], note="   "), 422, "say why")
    refused = client.post(f"/api/plan-runs/{run['id']}/cancel", json={"note": "x"},
                          headers=world.a.headers("pharmacist"))
    assert refused.status_code == 403
    assert client.post(f"/api/plan-runs/{run['id']}/cancel", json={"note": "x"},
                       headers=world.b.headers("procurement")).status_code == 404
    assert client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()[
        "status"] == "queued"  # nothing refused wrote anything

    cancelled = _cancel(client, world, run["id"], note="wrong horizon")
    assert cancelled.status_code == 200, cancelled.get_json()
    body = cancelled.get_json()
    assert body["status"] == "cancelled" and body["finished_at"] and body["cancel_requested_at"]
    assert body["cancelled_by"] == body["started_by"]
    # The scheduler's job finds nothing to run, and the run keeps no plan.
    database = app.extensions["pharmacy_db"]
    assert run_queued_plans(database, clock, PlanSettings()) == 0
    after = client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()
    assert after["status"] == "cancelled" and after["result"] is None and after["started_at"] is None
    assert client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json() == []
    assert [r["id"] for r in client.get("/api/plan-runs?status=cancelled",
                                        headers=world.a.headers("procurement")).get_json()] == [run["id"]]
    entries = client.get(f"/api/audit?object_type=PlanRun&object_id={run['id']}",
                         headers=world.a.headers("admin")).get_json()
    assert [e["summary"] for e in entries if e["action"] == "cancel"] == ["wrong horizon"]
    # Cancelled once is cancelled: a second cancel is refused, as is cancelling a finished run.
    assert_problem(_cancel(client, world, run["id"], note="again"), 409, "is cancelled")
    finished = _queue_plan(client, world)
    assert run_queued_plans(database, clock, PlanSettings()) == 1
    assert_problem(_cancel(client, world, finished["id"], note="too late"), 409, "is succeeded",
                   "only a queued or running run can be cancelled")


def test_a_running_plan_run_cancelled_stops_and_keeps_no_plan(app, client, world, market, queued_runs, clock) -> None:
    run = _queue_plan(client, world)
    database = app.extensions["pharmacy_db"]
    seen: list[str] = []

    def cancel_while_running(done: int, total: int) -> None:
        if not seen:  # the first model is solved: the officer cancels
            response = _cancel(client, world, run["id"], note="stop it")
            seen.append(response.get_json()["status"])

    status = execute_run(database, run["id"], clock, PlanSettings(), on_progress=cancel_while_running)
    assert seen == ["running"]  # a running run is asked to stop; it says so on its page until it does
    assert status == "cancelled"
    after = client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()
    assert after["status"] == "cancelled" and after["result"] is None and after["started_at"] and after["finished_at"]
    assert after["cancelled_by"] and after["progress_note"] == "cancelled"
    assert client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json() == []


def test_a_plan_run_cancelled_once_its_models_are_solved_stops_in_its_baseline(
        app, client, world, market, queued_runs, clock, monkeypatch) -> None:
    run = _queue_plan(client, world)
    stopped: list[str] = []
    original = plan_runs.baseline_costs

    def baseline(*args, **options):  # the run's own baseline step, watched
        try:
            return original(*args, **options)
        except plan_runs.RunCancelled:
            stopped.append("baseline")
            raise

    monkeypatch.setattr(plan_runs, "baseline_costs", baseline)

    def cancel_at_the_last_model(done: int, total: int) -> None:
        if done == total:
            assert _cancel(client, world, run["id"], note="stop it").status_code == 200

    status = execute_run(app.extensions["pharmacy_db"], run["id"], clock, PlanSettings(),
                         on_progress=cancel_at_the_last_model)
    assert status == "cancelled" and stopped == ["baseline"]
    after = client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()
    assert after["status"] == "cancelled" and after["result"] is None


def test_a_run_whose_process_died_is_failed_or_if_cancelled_cancelled(app, client, world, market, queued_runs,
                                                                        clock) -> None:
    silent, cancelled, alive = (_queue_plan(client, world)["id"] for _ in range(3))
    database = app.extensions["pharmacy_db"]
    with database.session_factory() as session:  # claimed by processes: two went silent, one still beats
        for run_id, beat in ((silent, timedelta(minutes=20)), (cancelled, timedelta(minutes=20)),
                             (alive, timedelta(minutes=1))):
            run = session.get(PlanRun, run_id)
            run.status, run.heartbeat_at = "running", clock.now() - beat
        session.commit()
    assert _cancel(client, world, cancelled, note="wrong budget").get_json()["status"] == "running"
    assert run_queued_plans(database, clock, PlanSettings()) == 0
    runs = {r["id"]: r for r in client.get("/api/plan-runs", headers=world.a.headers("procurement")).get_json()}
    assert runs[silent]["status"] == "failed" and "stopped before it finished" in runs[silent]["error"]
    assert runs[cancelled]["status"] == "cancelled" and runs[cancelled]["error"] == ""
    assert runs[alive]["status"] == "running"


def test_editing_a_line_recosts_the_plan_and_a_broken_rule_is_refused(client, world, market) -> None:
    run = run_plan(client, world, history_days=28)
    headers = world.a.headers("procurement")
    lines = client.get(f"/api/plan-runs/{run['id']}/lines?kind=purchase", headers=headers).get_json()
    line = max(lines, key=lambda x: x["packs"])
    edited = client.patch(f"/api/plan-runs/{run['id']}/lines", headers=headers, json={"purchases": [
        {"offer_id": line["offer_id"], "site_id": line["site_id"], "packs": line["packs"] + 5}]})
    assert edited.status_code == 200, edited.get_json()
    after = edited.get_json()
    assert after["edited"] is True
    assert after["result"]["costs"]["purchase"] > run["result"]["costs"]["purchase"]
    assert after["result"]["costs"]["total"] >= run["result"]["costs"]["total"] - 1e-6
    changed = next(x for x in client.get(f"/api/plan-runs/{run['id']}/lines?kind=purchase", headers=headers)
                   .get_json() if x["id"] == line["id"])
    assert changed["packs"] == line["packs"] + 5 and changed["edited"] is True
    # S2 sells only from 50 packs: 3 packs are refused, naming the rule, and the plan is unchanged.
    s2 = next(o for o in market["offers"] if o["supplier_id"] == market["s2"]["id"])
    refused = client.patch(f"/api/plan-runs/{run['id']}/lines", headers=headers, json={"purchases": [
        {"offer_id": s2["id"], "site_id": world.a.sites["C1"], "packs": 3}]})
    assert_problem(refused, 422, "minimum order")
    # More than one delivery's units (or a cost past what an order line holds) is no line of an order.
    huge = client.patch(f"/api/plan-runs/{run['id']}/lines", headers=headers, json={"purchases": [
        {"offer_id": s2["id"], "site_id": world.a.sites["C1"], "packs": 9_999_999}]})
    assert assert_problem(huge, 422, "more than one order line")["errors"]["purchases"]["0"]["packs"]
    half = client.patch(f"/api/plan-runs/{run['id']}/lines", headers=headers, json={"transfers": [
        {"lot_id": 1, "site_id": world.a.sites["C1"], "units": 2.5}]})
    assert_problem(half, 422, "transfers", "units", "Not a valid integer")  # stock moves in whole units
    assert client.get(f"/api/plan-runs/{run['id']}", headers=headers).get_json()["result"] == after["result"]


def test_approval_creates_orders_once_and_goods_are_received_against_them(client, world, market) -> None:
    run = run_plan(client, world, history_days=28)
    headers = world.a.headers("procurement")
    approved = client.post(f"/api/plan-runs/{run['id']}/approve", headers=headers)
    assert approved.status_code == 201, approved.get_json()
    body = approved.get_json()
    assert body["run"]["status"] == "approved"
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=headers).get_json()
    assert len(body["purchase_orders"]) == len({x["supplier_id"] for x in lines if x["kind"] == "purchase"})
    assert_problem(client.post(f"/api/plan-runs/{run['id']}/approve", headers=headers), 409, "approved already")
    purchase = next(x for x in lines if x["kind"] == "purchase")
    assert client.patch(f"/api/plan-runs/{run['id']}/lines", headers=headers, json={"purchases": [
        {"offer_id": purchase["offer_id"], "site_id": purchase["site_id"], "packs": 1}]}).status_code == 409

    # C1's pharmacist receives C1's line of the order, in two deliveries.
    pharmacist = world.a.headers("pharmacist")
    order = next(o for o in body["purchase_orders"]
                 if any(line["site_id"] == world.a.sites["C1"] for line in client.get(
                     f"/api/purchase-orders/{o['id']}", headers=headers).get_json()["lines"]))
    mine = client.get(f"/api/purchase-orders/{order['id']}", headers=pharmacist).get_json()
    assert {line["site_id"] for line in mine["lines"]} == {world.a.sites["C1"]}
    line = mine["lines"][0]
    receipt = {"site_id": world.a.sites["C1"], "lines": [
        {"drug_id": line["drug_id"], "lot_number": "PO-LOT-1", "expiry_date": "2028-06-30", "quantity": 1,
         "unit": "pack"}]}
    first = client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=pharmacist, json=receipt)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["lines"][0]["received_units"] == line["pack_size"]
    too_much = {**receipt, "lines": [{**receipt["lines"][0], "quantity": line["units"], "unit": "unit"}]}
    assert_problem(client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=pharmacist, json=too_much),
                   422, "exceed the order")
    wrong = {**receipt, "lines": [{**receipt["lines"][0], "drug_id": market["mtf"]["id"]}]}
    if market["mtf"]["id"] != line["drug_id"]:
        assert_problem(client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=pharmacist, json=wrong),
                       422, "not on purchase order")
    other_site = {**receipt, "site_id": world.a.sites["C2"]}
    assert client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=pharmacist,
                       json=other_site).status_code == 403
    rest = {**receipt, "lines": [{**receipt["lines"][0], "quantity": line["units"] - line["pack_size"],
                                  "unit": "unit"}]}
    second = client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=pharmacist, json=rest).get_json()
    assert second["lines"][0]["received_units"] == line["units"]
    lots = client.get(f"/api/inventory/lots?site_id={world.a.sites['C1']}&drug_id={line['drug_id']}",
                      headers=pharmacist).get_json()
    assert next(x for x in lots if x["lot_number"] == "PO-LOT-1")["quantity"] == line["units"]
    factory = client.application.extensions["pharmacy_db"].session_factory
    assert check_ledger(UnitOfWork(factory, system_for(world.a.consortium_id))) == []


# Transfers ----------------------------------------------------------------------------------------------

def test_a_transfer_is_shipped_by_one_site_and_received_in_parts_by_the_other(client, world, market) -> None:
    headers = world.a.headers("procurement")
    created = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["C1"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 250}]})
    assert created.status_code == 201, created.get_json()
    order = created.get_json()["order"]
    assert order["status"] == "requested"
    assert client.post(f"/api/transfer-orders/{order['id']}/ship",
                       headers=world.a.headers("pharmacist")).status_code == 403  # C1 does not send it
    shipped = client.post(f"/api/transfer-orders/{order['id']}/ship", headers=world.a.headers("pharmacist_c2"))
    assert shipped.status_code == 200, shipped.get_json()
    parcels = shipped.get_json()["parcels"]
    # First-expiry first-out: the near-expiry lot leaves first.
    assert [(p["lot_number"], p["shipped"]) for p in parcels] == [("A-NEAR", 250)]
    assert_problem(client.post(f"/api/transfer-orders/{order['id']}/cancel", headers=headers,
                               json={"note": "changed mind"}), 409, "shipped")
    part = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=world.a.headers("pharmacist"),
                       json={"parcels": [{"parcel_id": parcels[0]["id"], "quantity": 100}]})
    assert part.get_json()["order"]["status"] == "partially_received"
    over = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=world.a.headers("pharmacist"),
                       json={"parcels": [{"parcel_id": parcels[0]["id"], "quantity": 151}]})
    assert_problem(over, 422, "100 received already")
    rest = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=world.a.headers("pharmacist"), json={})
    assert rest.get_json()["order"]["status"] == "received"
    lots = client.get(f"/api/inventory/lots?site_id={world.a.sites['C1']}", headers=world.a.headers("pharmacist"))
    arrived = next(x for x in lots.get_json() if x["lot_number"] == "A-NEAR")
    assert arrived["quantity"] == 250 and arrived["expiry_date"] == "2026-12-13"
    factory = client.application.extensions["pharmacy_db"].session_factory
    assert check_ledger(UnitOfWork(factory, system_for(world.a.consortium_id))) == []


def test_a_transfer_asked_for_by_routing_moves_its_prescription_on_when_received(client, world, market) -> None:
    from tests.api.test_prescriptions import rx, send

    # No pharmacy holds 500 of AML5: it waits at the nominated C1 (140 on hand) for 360 from C2 (430 on hand).
    sent = send(client, world, rx("RX-T1", items=[{"drug_code": "AML5", "quantity": 500, "supply_days": 7}],
                                  nominated_pharmacy=world.a.sites["C1"]))
    assert sent.status_code == 201, sent.get_json()
    prescription = sent.get_json()
    assert prescription["status"] == "awaiting_stock", prescription
    orders = client.get(f"/api/transfer-orders?site_id={world.a.sites['C1']}&direction=incoming",
                        headers=world.a.headers("pharmacist")).get_json()
    order = next((o for o in orders if o["prescription_id"] == prescription["id"]), None)
    assert order is not None, (orders, prescription)
    assert order["reason"] == "shortage_cover"
    assert client.post(f"/api/transfer-orders/{order['id']}/ship",
                       headers=world.a.headers("pharmacist_c2")).status_code == 200
    received = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=world.a.headers("pharmacist"),
                           json={})
    assert received.get_json()["order"]["status"] == "received"
    after = client.get(f"/api/prescriptions/{prescription['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert after["status"] == "routed"
    lots = client.get(f"/api/inventory/lots?site_id={world.a.sites['C1']}", headers=world.a.headers("pharmacist"))
    assert sum(lot["reserved"] for lot in lots.get_json()) == 500


def lot_at(client, world: World, site: str, number: str) -> dict:
    lots = client.get(f"/api/inventory/lots?site_id={world.a.sites[site]}&include_empty=true",
                      headers=world.a.headers("procurement")).get_json()
    return next(lot for lot in lots if lot["lot_number"] == number)


def test_a_transfer_holds_its_stock_at_the_sender_from_the_moment_it_is_asked_for(client, world, market) -> None:
    headers = world.a.headers("procurement")
    near = lot_at(client, world, "C2", "A-NEAR")
    assert (near["quantity"], near["reserved"]) == (300, 0)
    created = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["C1"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 268, "lot_id": near["id"]}]}).get_json()
    assert lot_at(client, world, "C2", "A-NEAR")["reserved"] == 268  # promised: no longer available at C2
    # Asking for more than the sender has free is refused, and holds nothing.
    refused = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["LEAD"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 33, "lot_id": near["id"]}]})
    assert_problem(refused, 409, "32 available")
    assert lot_at(client, world, "C2", "A-NEAR")["reserved"] == 268
    cancelled = client.post(f"/api/transfer-orders/{created['order']['id']}/cancel", headers=headers,
                            json={"note": "C1 was supplied directly"})
    assert cancelled.status_code == 200
    assert lot_at(client, world, "C2", "A-NEAR")["reserved"] == 0
    # Shipping turns the hold into the transfer-out: the sender keeps no hold, and the units have left.
    again = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["C1"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 100, "lot_id": near["id"]}]}).get_json()
    client.post(f"/api/transfer-orders/{again['order']['id']}/ship", headers=world.a.headers("pharmacist_c2"))
    assert {k: lot_at(client, world, "C2", "A-NEAR")[k] for k in ("quantity", "reserved")} == {
        "quantity": 200, "reserved": 0}


def test_a_prescription_cannot_take_units_promised_to_another_site(client, world, market) -> None:
    from tests.api.test_prescriptions import rx, send

    headers = world.a.headers("procurement")
    # C2 holds 430 of AML5 (500 received, 70 dispensed); 400 are promised to the lead hospital.
    promised = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["LEAD"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 400}]})
    assert promised.status_code == 201, promised.get_json()
    sent = send(client, world, rx("RX-PROMISED", items=[{"drug_code": "AML5", "quantity": 60, "supply_days": 7}],
                                  nominated_pharmacy=world.a.sites["C2"], valid_until="2026-11-23")).get_json()
    assert (sent["status"], sent["pharmacy_site_id"]) == ("routed", world.a.sites["C1"])  # C2 has 30 free


def test_units_that_did_not_arrive_whole_are_booked_as_a_transit_loss_and_both_ledgers_add_up(
        client, world, market) -> None:
    headers = world.a.headers("procurement")
    order = client.post("/api/transfer-orders", headers=headers, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["C1"],
        "lines": [{"drug_id": market["aml"]["id"], "quantity": 250}]}).get_json()["order"]
    parcel = client.post(f"/api/transfer-orders/{order['id']}/ship",
                         headers=world.a.headers("pharmacist_c2")).get_json()["parcels"][0]
    pharmacist = world.a.headers("pharmacist")
    unexplained = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=pharmacist, json={
        "losses": [{"parcel_id": parcel["id"], "units": 12, "reason": "lost somehow"}]})
    assert unexplained.status_code == 422
    received = client.post(f"/api/transfer-orders/{order['id']}/receive", headers=pharmacist, json={
        "losses": [{"parcel_id": parcel["id"], "units": 12, "reason": "damaged", "note": "crushed box"}]}).get_json()
    assert received["order"]["status"] == "received"
    assert (received["parcels"][0]["received"], received["parcels"][0]["lost"]) == (238, 12)
    arrived = lot_at(client, world, "C1", "A-NEAR")
    assert arrived["quantity"] == 238
    card = client.get(f"/api/inventory/lots/{arrived['id']}/movements", headers=pharmacist).get_json()["movements"]
    assert [(m["kind"], m["quantity"], m["reason_code"]) for m in card] == [
        ("transfer_in", 250, "redistribution"), ("transit_loss", -12, "damaged")]
    sent = client.get(f"/api/inventory/lots/{parcel['from_lot_id']}/movements",
                      headers=world.a.headers("pharmacist_c2")).get_json()["movements"]
    assert sum(-m["quantity"] for m in sent if m["kind"] == "transfer_out") == 250  # out at C2 = in at C1
    factory = client.application.extensions["pharmacy_db"].session_factory
    assert check_ledger(UnitOfWork(factory, system_for(world.a.consortium_id))) == []


# Alerts and jobs ----------------------------------------------------------------------------------------

def test_alerts_name_near_expiry_lots_and_low_stock_once_a_day(client, world, market, clock) -> None:
    factory = client.application.extensions["pharmacy_db"].session_factory
    assert raise_near_expiry_alerts(UnitOfWork(factory, system_for(world.a.consortium_id), clock), 90) >= 1
    assert raise_near_expiry_alerts(UnitOfWork(factory, system_for(world.a.consortium_id), clock), 90) == 0
    # C1 used about 19 a day of late and has 140 left: less than 14 days' cover
    assert raise_low_stock_alerts(UnitOfWork(factory, system_for(world.a.consortium_id), clock), 14) >= 1
    alerts = client.get("/api/alerts", headers=world.a.headers("pharmacist_c2")).get_json()
    assert any(a["kind"] == "near_expiry" and "A-NEAR" in a["message"] for a in alerts)
    assert {a["site_id"] for a in alerts} == {world.a.sites["C2"]}
    low = client.get("/api/alerts?kind=low_stock", headers=world.a.headers("procurement")).get_json()
    assert any(a["site_id"] == world.a.sites["C1"] for a in low)


def test_jobs_are_listed_with_their_last_run(client, world) -> None:
    jobs = client.get("/api/jobs", headers=world.a.headers("admin"))
    assert jobs.status_code == 200
    ids = [j["id"] for j in jobs.get_json()]
    assert "procurement.nightly_plan" in ids and "inventory.near_expiry_alerts" in ids
    assert client.get("/api/jobs", headers=world.a.headers("pharmacist")).status_code == 403


def test_forecast_rejects_a_service_level_out_of_range(client, world) -> None:
    assert_problem(client.get("/api/forecasts?service_level=1.5", headers=world.a.headers("procurement")), 422,
                   "service_level")



def leave_undone(client, world: World) -> dict:
    """A drug the plan must leave short and partly wasted: no supplier offers diazepam, C2 uses a little of it,
    and the lead hospital, which uses none, holds a lot of it about to expire."""
    dzp = add_drug(client, world.a, "DZP2.5", pack_size=20)
    stock(client, world, "C2", dzp, "D-C2", "2027-12-31", 28)
    history(client, world, "C2", dzp, [1] * 28)  # all of it dispensed
    stock(client, world, "LEAD", dzp, "D-NEAR", "2026-12-10", 500)
    return dzp


def test_approval_raises_alerts_at_the_sites_for_what_the_plan_leaves_undone(client, world, market) -> None:
    dzp = leave_undone(client, world)
    run = run_plan(client, world, history_days=28)
    short = [s for s in run["result"]["shortages"] if s["drug"] == "DZP2.5"]
    wasted = [w for w in run["result"]["waste"] if w["drug"] == "DZP2.5"]
    assert [s["site"] for s in short] == ["A-C2"] and [w["site"] for w in wasted] == ["A-LEAD"]
    officer = world.a.headers("procurement")
    approved = client.post(f"/api/plan-runs/{run['id']}/approve", headers=officer).get_json()
    alerts = client.get("/api/alerts", headers=officer).get_json()
    planned = [a for a in alerts if a["kind"].startswith("planned_")]
    assert approved["alerts"] == len(planned) == len(run["result"]["shortages"]) + len(run["result"]["waste"])
    shortage = next(a for a in planned if a["kind"] == "planned_shortage" and a["drug_id"] == dzp["id"])
    assert shortage["site_id"] == world.a.sites["C2"] and shortage["lot_id"] is None
    assert shortage["message"].startswith(f"plan run {run['id']} leaves A-C2 short of {int(short[0]['units'])} units "
                                          "of DZP2.5 over the next 30 days: ")
    waste = next(a for a in planned if a["kind"] == "planned_waste" and a["drug_id"] == dzp["id"])
    assert waste["site_id"] == world.a.sites["LEAD"] and waste["lot_id"] is not None
    assert waste["message"].startswith(f"plan run {run['id']} expects {int(wasted[0]['units'])} units of DZP2.5 "
                                       "lot D-NEAR at A-LEAD to expire unused: ")
    # Each site's pharmacist sees the site's own, by kind.
    mine = client.get("/api/alerts?kind=planned_shortage", headers=world.a.headers("pharmacist_c2")).get_json()
    assert {a["site_id"] for a in mine} == {world.a.sites["C2"]} and shortage["id"] in {a["id"] for a in mine}


def test_a_plans_alerts_say_why_on_the_sites_page_in_its_language(client, world, market) -> None:
    from pharmacy.accounts.services import create_user
    from pharmacy.principal import Role
    from tests.api.test_pages import PASSWORD, sign_in

    leave_undone(client, world)
    run = run_plan(client, world, history_days=28)
    client.post(f"/api/plan-runs/{run['id']}/approve", headers=world.a.headers("procurement"))
    create_user(UnitOfWork(client.application.extensions["pharmacy_db"].session_factory,
                           system_for(world.a.consortium_id)), world.a.consortium_id, "zhao", PASSWORD,
                Role.PHARMACIST, world.a.sites["C2"])
    sign_in(client, "zhao")
    page = client.get("/alerts").get_data(as_text=True)
    assert (f"计划运行 {run['id']} 使 Site A-C2 在未来 30 天缺少 DZP2.5 共 12 单位："
            "没有报价送货到 Site A-C2，也没有可调往该处并能及时使用的库存") in page
    assert "no offer delivers" not in page
