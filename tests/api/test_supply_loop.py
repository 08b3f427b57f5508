"""Every unit counted once where one part of the supply chain hands over to the next."""

from __future__ import annotations

from datetime import date

import pytest

from pharmacy.principal import SYSTEM
from pharmacy.procurement.services import raise_low_stock_alerts
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import factory, stock
from tests.api.test_procurement import history
from tests.api.test_procurement import market as market  # a fixture: the plan's drugs, history and offers
from tests.factories import World, add_drug, receive

pytestmark = pytest.mark.usefixtures("clock")  # 2026-11-23, noon in Hangzhou
TODAY = "2026-11-23"


@pytest.fixture
def aml(client, world: World) -> dict:
    return add_drug(client, world.a, "AML5", generic_name="氨氯地平片", pack_size=28)


def test_a_lot_on_its_expiry_date_is_usable_that_day_everywhere(client, world, aml, clock) -> None:
    """One rule: a lot is good through its expiry date. Receipts, stock levels, routing, alerts and the stock page
    all say so on its last day."""
    stock(client, world, "C1", aml, "USED-UP", "2027-06-30", 300)
    history(client, world, "C1", aml, [10] * 30)  # used 10 a day, all of it
    assert receive(client, world.a, "C1", aml["id"], "LAST-DAY", TODAY, 50).status_code == 201
    level = client.get(f"/api/inventory/stock?site_id={world.a.sites['C1']}",
                       headers=world.a.headers("pharmacist")).get_json()[0]
    assert (level["usable"], level["expired"]) == (50, 0)
    assert raise_low_stock_alerts(UnitOfWork(factory(client), SYSTEM, clock), 4) == 0  # 50 cover 5 days, not 0
    held = client.post("/api/inventory/reservations", headers=world.a.headers("pharmacist"), json={
        "site_id": world.a.sites["C1"], "drug_id": aml["id"], "quantity": 20, "supply_until": TODAY,
        "cause_type": "manual", "cause_id": "ward-1"})
    assert held.status_code == 201, held.get_json()
    page_rows = client.get(f"/api/inventory/lots?site_id={world.a.sites['C1']}",
                           headers=world.a.headers("pharmacist")).get_json()
    assert [(lot["lot_number"], lot["available"]) for lot in page_rows] == [("LAST-DAY", 30)]
    clock.advance(days=1)
    level = client.get(f"/api/inventory/stock?site_id={world.a.sites['C1']}",
                       headers=world.a.headers("pharmacist")).get_json()[0]
    assert (level["usable"], level["expired"]) == (0, 0 + level["on_hand"])
    assert receive(client, world.a, "C1", aml["id"], "YESTERDAY", TODAY, 5).status_code == 422


def test_the_stock_page_shows_a_lot_expired_only_from_the_day_after_its_expiry_date(client, world, aml, clock):
    from pharmacy.accounts.services import create_user
    from pharmacy.principal import Role, system_for
    from tests.api.test_pages import PASSWORD, sign_in

    create_user(UnitOfWork(factory(client), system_for(world.a.consortium_id)), world.a.consortium_id, "li",
                PASSWORD, Role.PHARMACIST, world.a.sites["C1"])
    receive(client, world.a, "C1", aml["id"], "LAST-DAY", TODAY, 50)
    sign_in(client, "li")
    assert 'class="expired"' not in client.get("/stock").get_data(as_text=True)
    clock.advance(days=1)
    assert 'class="expired"' in client.get("/stock").get_data(as_text=True)


# Inventory position: on hand - held + on order + in transit, in one place ---------------------------------

def position_of(client, world: World, site: str, drug: dict) -> dict:
    rows = client.get(f"/api/inventory/position?site_id={world.a.sites[site]}&drug_id={drug['id']}",
                      headers=world.a.headers("procurement")).get_json()
    return rows[0] if rows else {}


def test_the_position_counts_stock_held_promised_on_order_and_in_transit_once(client, world, market) -> None:
    from tests.api.test_procurement import run_plan

    aml = market["aml"]
    before = position_of(client, world, "C2", aml)
    assert (before["on_hand"], before["available"], before["held"], before["on_order"]) == (430, 430, 0, 0)
    # Promised to the lead hospital: held at C2, on its way to LEAD.
    order = client.post("/api/transfer-orders", headers=world.a.headers("procurement"), json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["LEAD"],
        "lines": [{"drug_id": aml["id"], "quantity": 100}]}).get_json()["order"]
    c2 = position_of(client, world, "C2", aml)
    assert (c2["on_hand"], c2["held_for_transfers"], c2["available"], c2["position"]) == (430, 100, 330, 330)
    lead = position_of(client, world, "LEAD", aml)
    assert (lead["available"], lead["in_transit"], lead["position"]) == (0, 100, 100)
    assert [(i["kind"], i["units"], i["order_number"]) for i in lead["incoming"]] == [
        ("transfer_requested", 100, order["number"])]
    client.post(f"/api/transfer-orders/{order['id']}/ship", headers=world.a.headers("pharmacist_c2"))
    c2 = position_of(client, world, "C2", aml)
    assert (c2["on_hand"], c2["held"], c2["available"]) == (330, 0, 330)
    lead = position_of(client, world, "LEAD", aml)
    assert [(i["kind"], i["units"]) for i in lead["incoming"]] == [("in_transit", 100)]
    # An approved plan's purchases are on order at the sites they go to, from their expected day.
    run = run_plan(client, world, history_days=28)
    approved = client.post(f"/api/plan-runs/{run['id']}/approve", headers=world.a.headers("procurement")).get_json()
    ordered: dict[int, int] = {}
    for po in approved["purchase_orders"]:
        for line in client.get(f"/api/purchase-orders/{po['id']}", headers=world.a.headers("procurement")
                               ).get_json()["lines"]:
            if line["drug_id"] == aml["id"] and line["site_id"] == world.a.sites["C1"]:
                ordered[line["id"]] = line["units"]
                assert line["expected_on"] in ("2026-11-23", "2026-11-25")  # lead times of 0 and 2 days
    c1 = position_of(client, world, "C1", aml)
    assert c1["on_order"] == sum(ordered.values()) > 0
    assert c1["position"] == c1["available"] + c1["on_order"] + c1["in_transit"]


def test_a_supplier_promised_day_moves_what_is_expected(client, world, market) -> None:
    from tests.api.test_procurement import run_plan

    run = run_plan(client, world, history_days=28)
    po = client.post(f"/api/plan-runs/{run['id']}/approve", headers=world.a.headers("procurement")
                     ).get_json()["purchase_orders"][0]
    promised = client.post(f"/api/purchase-orders/{po['id']}/promise", headers=world.a.headers("procurement"),
                           json={"expected_on": "2026-12-01"})
    assert promised.status_code == 200, promised.get_json()
    assert {line["expected_on"] for line in promised.get_json()["lines"]} == {"2026-12-01"}
    assert client.post(f"/api/purchase-orders/{po['id']}/promise", headers=world.a.headers("procurement"),
                       json={"expected_on": "2026-11-01"}).status_code == 422


# Dispensing from the page: nothing is not everything, and what stays held is what is left -----------------

@pytest.fixture
def li(client, world: World) -> str:
    from pharmacy.accounts.services import create_user
    from pharmacy.principal import Role, system_for
    from tests.api.test_pages import PASSWORD

    create_user(UnitOfWork(factory(client), system_for(world.a.consortium_id)), world.a.consortium_id, "li",
                PASSWORD, Role.PHARMACIST, world.a.sites["C1"])
    return "li"


def prepared(client, world: World, quantity: int) -> dict:
    from tests.api.test_prescriptions import act, rx, send

    body = send(client, world, rx("RX-D1", items=[{"drug_code": "AML5", "quantity": quantity, "supply_days": 7}],
                                  nominated_pharmacy=world.a.sites["C1"])).get_json()
    assert body["status"] == "routed", body
    act(client, world, body["id"], "accept")
    return act(client, world, body["id"], "prepare").get_json()


def dispense_form(client, rx_id: int) -> tuple[str, dict[str, str]]:
    """The dispense form as the page fills it: its token and each lot's pre-filled quantity."""
    import re

    from tests.api.test_pages import token

    page = client.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
    return token(page), dict(re.findall(r'name="(lot-\d+-\d+)" value="(\d+)"', page))


def test_a_dispense_form_with_every_lot_at_zero_dispenses_nothing(client, world, aml, li) -> None:
    from tests.api.test_pages import sign_in

    stock(client, world, "C1", aml, "A1", "2027-06-30", 100)
    stock(client, world, "C1", aml, "A2", "2027-09-30", 100)
    rx = prepared(client, world, 116)
    sign_in(client, li)
    csrf, lots = dispense_form(client, rx["id"])
    assert sorted(int(v) for v in lots.values()) == [16, 100]
    zeros = {name: "0" for name in lots} | {f"changed-{rx['items'][0]['id']}": "1"}
    answer = client.post(f"/prescriptions/{rx['id']}/dispense", data={"csrf_token": csrf, **zeros},
                         follow_redirects=True).get_data(as_text=True)
    assert "没有可发的药品" in answer
    after = client.get(f"/api/prescriptions/{rx['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert after["status"] == "prepared" and after["dispenses"] == []
    assert sum(lot["quantity"] for lot in client.get("/api/inventory/lots", headers=world.a.headers(
        "pharmacist")).get_json()) == 200


def test_after_a_partial_dispense_from_another_lot_what_stays_held_is_what_is_left(client, world, aml, li) -> None:
    from tests.api.test_pages import sign_in

    held_lot = receive(client, world.a, "C1", aml["id"], "EARLY", "2027-03-31", 100).get_json()["lot_id"]
    other = receive(client, world.a, "C1", aml["id"], "LATE", "2027-12-31", 100).get_json()["lot_id"]
    rx = prepared(client, world, 100)
    item = rx["items"][0]["id"]
    sign_in(client, li)
    csrf, lots = dispense_form(client, rx["id"])
    assert lots == {f"lot-{item}-{held_lot}": "100", f"lot-{item}-{other}": "0"}
    # The patient wants half now, from the later lot, with a reason.
    client.post(f"/prescriptions/{rx['id']}/dispense", data={
        "csrf_token": csrf, f"lot-{item}-{held_lot}": "0", f"lot-{item}-{other}": "50", f"changed-{item}": "1",
        f"reason-{item}": "patient asked for one box of the other lot"})
    listed = {lot["lot_number"]: lot for lot in client.get("/api/inventory/lots", headers=world.a.headers(
        "pharmacist")).get_json()}
    assert (listed["EARLY"]["reserved"], listed["LATE"]["quantity"]) == (50, 50)
    # The next dispense works from the form as the page fills it.
    csrf, lots = dispense_form(client, rx["id"])
    assert lots == {f"lot-{item}-{held_lot}": "50", f"lot-{item}-{other}": "0"}
    client.post(f"/prescriptions/{rx['id']}/dispense", data={"csrf_token": csrf, **lots, f"changed-{item}": "0"})
    after = client.get(f"/api/prescriptions/{rx['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert after["status"] == "dispensed"
    assert [(d["lot_number"], d["quantity"]) for d in after["dispenses"]] == [("LATE", 50), ("EARLY", 50)]
    assert sum(lot["reserved"] for lot in client.get("/api/inventory/lots", headers=world.a.headers(
        "pharmacist")).get_json()) == 0


# Stocktakes: a count is applied against the book it was made from -----------------------------------------

def count_sheet(client, blind: bool = False) -> tuple[str, dict[str, str]]:
    import re

    from tests.api.test_pages import token

    page = client.get("/stocktake" + ("?blind=1" if blind else "")).get_data(as_text=True)
    return token(page), dict(re.findall(r'name="((?:book|count)-\d+)" value="(\d*)"', page))


def test_a_count_sheet_opened_before_a_dispense_and_sent_unchanged_loses_no_dispense(client, world, aml, li) -> None:
    from tests.api.test_pages import sign_in
    from tests.api.test_prescriptions import act, rx, send

    lot = receive(client, world.a, "C1", aml["id"], "L150", "2027-06-30", 150).get_json()["lot_id"]
    sign_in(client, li)
    csrf, sheet = count_sheet(client)
    assert sheet == {f"book-{lot}": "150", f"count-{lot}": "150"}
    # While the sheet is out, 7 tablets are dispensed.
    rx_id = send(client, world, rx("RX-S", items=[{"drug_code": "AML5", "quantity": 7, "supply_days": 7}],
                                   nominated_pharmacy=world.a.sites["C1"])).get_json()["id"]
    for step in ("accept", "prepare", "dispense"):
        assert act(client, world, rx_id, step).status_code == 200
    client.post("/stocktake", data={"csrf_token": csrf, **sheet})
    listed = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [lot["quantity"] for lot in listed] == [143]  # not set back to 150
    # A count that differs moves the lot by the difference from its book.
    csrf, sheet = count_sheet(client)
    client.post("/stocktake", data={"csrf_token": csrf, **sheet, f"count-{lot}": "140"})
    listed = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [lot["quantity"] for lot in listed] == [140]


def test_a_blind_count_hides_the_book_and_still_counts_against_it(client, world, aml, li) -> None:
    from tests.api.test_pages import sign_in

    lot = receive(client, world.a, "C1", aml["id"], "L150", "2027-06-30", 150).get_json()["lot_id"]
    sign_in(client, li)
    page = client.get("/stocktake?blind=1").get_data(as_text=True)
    assert ">150<" not in page  # no quantity on record shown
    csrf, sheet = count_sheet(client, blind=True)
    assert sheet[f"count-{lot}"] == ""
    client.post("/stocktake", data={"csrf_token": csrf, "blind": "1", **sheet, f"count-{lot}": "149"})
    assert [x["quantity"] for x in client.get("/api/inventory/lots", headers=world.a.headers(
        "pharmacist")).get_json()] == [149]


def test_a_count_below_what_is_held_says_what_it_releases_and_holds_it_again_elsewhere(client, world, aml, li):
    from tests.api.test_pages import sign_in
    from tests.api.test_prescriptions import rx, send

    early = receive(client, world.a, "C1", aml["id"], "EARLY", "2027-03-31", 30).get_json()["lot_id"]
    receive(client, world.a, "C1", aml["id"], "LATE", "2027-12-31", 50)
    rx_id = send(client, world, rx("RX-H", items=[{"drug_code": "AML5", "quantity": 28, "supply_days": 7}],
                                   nominated_pharmacy=world.a.sites["C1"])).get_json()["id"]
    sign_in(client, li)
    csrf, sheet = count_sheet(client)
    typed = {**sheet, f"count-{early}": "10", "note": "shelf check"}
    refused = client.post("/stocktake", data={"csrf_token": csrf, **typed})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "18" in text and "RX-H" not in text
    assert f'name="count-{early}" value="10"' in text and 'value="shelf check"' in text  # kept as typed
    assert "release_excess" in text
    client.post("/stocktake", data={"csrf_token": csrf, **typed, "release_excess": "1"})
    lots = {lot["lot_number"]: lot for lot in client.get("/api/inventory/lots", headers=world.a.headers(
        "pharmacist")).get_json()}
    assert (lots["EARLY"]["quantity"], lots["EARLY"]["reserved"]) == (10, 10)
    assert lots["LATE"]["reserved"] == 18  # the 18 the shelf did not have, held again from the next lot
    held = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert held["status"] == "routed"
    from pharmacy.inventory.services import check_ledger

    assert check_ledger(UnitOfWork(factory(client), SYSTEM)) == []


# Money is Decimal, rounded once where it is stored --------------------------------------------------------

def test_money_is_exact_from_the_offer_to_the_purchase_order(client, world, aml) -> None:
    from decimal import Decimal

    from pharmacy.procurement.models import PurchaseOrder, PurchaseOrderLine

    headers = world.a.headers("procurement")
    supplier = client.post("/api/suppliers", json={"code": "S9", "name": "华东医药"}, headers=headers).get_json()
    offer = client.post("/api/offers", headers=headers, json={
        "supplier_id": supplier["id"], "drug_id": aml["id"], "pack_size": 28, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 2.675}],
        "order_cost": 0.1}).get_json()
    assert offer["tiers"] == [{"min_packs": 0, "price_per_pack": 2.675}]
    placed = client.post("/api/purchase-orders", headers=headers, json={
        "supplier_id": supplier["id"], "lines": [{"site_id": world.a.sites["C1"], "offer_id": offer["id"],
                                                  "packs": 1}]})
    assert placed.status_code == 201, placed.get_json()
    with factory(client)() as session:
        line = session.query(PurchaseOrderLine).one()
        order = session.query(PurchaseOrder).one()
    # 2.675 yuan is 2.68 to the fen (half up); as a float it is 2.67499999..., which rounds to 2.67.
    assert round(2.675, 2) == 2.67
    assert (line.price_per_pack, line.cost) == (Decimal("2.6750"), Decimal("2.68"))
    assert order.total == Decimal("2.78")  # and the offer's cost per order, once
    assert placed.get_json()["total"] == 2.78


# Plans count what is on order and on its way, and charge only their decisions ------------------------------

def approve(client, world: World, run: dict) -> dict:
    approved = client.post(f"/api/plan-runs/{run['id']}/approve", headers=world.a.headers("procurement"))
    assert approved.status_code == 201, approved.get_json()
    return approved.get_json()


def purchases_of(client, world: World, run: dict) -> list[dict]:
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json()
    return [line for line in lines if line["kind"] == "purchase" and line["packs"]]


def test_a_plan_run_straight_after_approving_the_last_buys_nothing_more(client, world, market) -> None:
    from tests.api.test_procurement import run_plan

    first = run_plan(client, world, history_days=28)
    assert purchases_of(client, world, first)
    approve(client, world, first)
    second = run_plan(client, world, history_days=28)
    assert purchases_of(client, world, second) == []  # what the first bought is on order, and counted
    inputs = client.get(f"/api/plan-runs/{second['id']}/inputs", headers=world.a.headers("procurement")).get_json()
    arriving = [lot for lot in inputs["problem"]["lots"] if lot["arrives_in_days"] > 0]
    assert arriving and all(lot["id"].startswith(("P", "H")) for lot in arriving)


def test_no_plan_moves_stock_worth_less_than_the_trip(client, world, market) -> None:
    from tests.api.test_procurement import run_plan

    run = run_plan(client, world, history_days=28)
    inputs = client.get(f"/api/plan-runs/{run['id']}/inputs", headers=world.a.headers("procurement")).get_json()
    value = {lot["id"]: lot["unit_value"] for lot in inputs["problem"]["lots"]}
    assert all(arc["fixed_cost"] == 20.0 for arc in inputs["problem"]["arcs"])
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json()
    trips: dict[tuple[int, int], float] = {}
    for line in lines:
        if line["kind"] == "transfer":
            pair = (line["from_site_id"], line["site_id"])
            trips[pair] = trips.get(pair, 0.0) + line["units"] * value.get(f"L{line['lot_id']}", 0.0)
    assert trips and all(worth >= 20.0 for worth in trips.values()), trips
    orders = approve(client, world, run)["transfer_orders"]
    assert len(orders) == len(trips)  # one shipment per pair of sites


def test_a_plan_does_not_charge_itself_for_stock_already_expired(client, world, market, clock) -> None:
    from tests.api.test_procurement import run_plan

    stock(client, world, "C1", market["aml"], "GONE", "2026-11-24", 500)  # usable one more day only
    clock.advance(days=2)
    run = run_plan(client, world, history_days=28)
    costs, summary = run["result"]["costs"], run["result"]["summary"]
    assert costs["unavoidable_waste"] >= 500 * 24 / 28  # 500 units at 24 a pack of 28, the cheapest offer
    assert costs["total"] == pytest.approx(sum(costs[k] for k in ("purchase", "delivery", "order", "transfer",
                                                                   "shortage", "waste")))
    assert summary["unavoidable_waste"] == costs["unavoidable_waste"]
    assert summary["saving"] == pytest.approx(run["result"]["baseline"]["total"] - costs["total"])
    # The officer sees it apart from the plan's cost, on the plan's page.
    from pharmacy.accounts.services import create_user
    from pharmacy.principal import Role, system_for
    from pharmacy.web.desk import yuan
    from tests.api.test_pages import PASSWORD, sign_in

    create_user(UnitOfWork(factory(client), system_for(world.a.consortium_id)), world.a.consortium_id, "wang",
                PASSWORD, Role.PROCUREMENT, None)
    sign_in(client, "wang")
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    tile = page[page.index('id="unavoidable-waste"'):]
    assert costs["unavoidable_waste"] > 0 and yuan(costs["unavoidable_waste"]) in tile[:tile.index("</div>")]


def test_packs_bought_for_one_site_and_moved_on_wait_for_the_delivery_then_are_asked_for(client, world, clock):
    from tests.api.test_procurement import history, run_plan

    headers = world.a.headers("procurement")
    drug = add_drug(client, world.a, "INS-G", generic_name="甘精胰岛素注射液", pack_size=10)
    stock(client, world, "C1", drug, "USED", "2027-06-30", 600)
    history(client, world, "C1", drug, [20] * 28)  # C1 uses 20 a day and has 40 left
    supplier = client.post("/api/suppliers", json={"code": "YT", "name": "英特药业"}, headers=headers).get_json()
    assert client.post("/api/offers", headers=headers, json={  # delivered to the lead hospital only
        "supplier_id": supplier["id"], "drug_id": drug["id"], "pack_size": 10, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 50}], "lead_time_days": 1,
        "delivery_costs": {"A-LEAD": 0}}).status_code == 201
    run = run_plan(client, world, history_days=28)
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=headers).get_json()
    bought = [x for x in lines if x["kind"] == "purchase"]
    moved = [x for x in lines if x["kind"] == "transfer"]
    assert [x["site_id"] for x in bought] == [world.a.sites["LEAD"]]
    assert [(x["from_site_id"], x["site_id"]) for x in moved] == [(world.a.sites["LEAD"], world.a.sites["C1"])]
    approved = approve(client, world, run)
    order = approved["transfer_orders"][0]
    assert order["status"] == "awaiting_stock"  # nothing to hold at the lead hospital yet
    po = approved["purchase_orders"][0]
    line = client.get(f"/api/purchase-orders/{po['id']}", headers=headers).get_json()["lines"][0]
    from pharmacy.principal import system_for
    from pharmacy.procurement.services import ReceiptLine, receive_purchase_order

    receive_purchase_order(UnitOfWork(factory(client), system_for(world.a.consortium_id), clock), po["id"],
                           world.a.sites["LEAD"], [ReceiptLine(drug["id"], "YT-1", date(2028, 1, 31), line["units"])])
    after = client.get(f"/api/transfer-orders/{order['id']}", headers=headers).get_json()
    assert after["order"]["status"] == "requested"
    lots = client.get(f"/api/inventory/lots?site_id={world.a.sites['LEAD']}", headers=headers).get_json()
    assert sum(lot["reserved"] for lot in lots) == sum(x["units"] for x in moved)
