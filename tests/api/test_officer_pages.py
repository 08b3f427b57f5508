"""The procurement officer's desk over HTTP: a plan read summary first, its lines by kind filtered, paged, exported
(and the export opened back and checked row for row against the page) and edited in place; orders followed to
delivery; suppliers and offers kept on pages beside their CSV import; the consortium's stock exported."""

from __future__ import annotations

import csv
import html
import io
import re
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_pages import PASSWORD, flashed_error, token
from tests.api.test_procurement import market as market  # a fixture: the plan's drugs, history and offers
from tests.api.test_procurement import run_plan
from tests.factories import World

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def officer(client, world: World) -> str:
    factory = client.application.extensions["pharmacy_db"].session_factory
    create_user(UnitOfWork(factory, system_for(world.a.consortium_id)), world.a.consortium_id, "wang", PASSWORD,
                Role.PROCUREMENT, None, "王采购")
    form = client.get("/login").get_data(as_text=True)
    assert client.post("/login", data={"csrf_token": token(form), "username": "wang",
                                       "password": PASSWORD}).status_code == 302
    return "wang"


def run_on_the_page(client, world: World) -> dict:
    """A plan run started by the signed-in officer from the plans page (it runs at once in tests)."""
    form = client.get("/plans").get_data(as_text=True)
    started = client.post("/plans", data={"csrf_token": token(form), "horizon_days": "30", "history_days": "28"})
    assert started.status_code == 302, started.get_data(as_text=True)
    run_id = int(started.headers["Location"].rsplit("/", 1)[1])
    run = client.get(f"/api/plan-runs/{run_id}", headers=world.a.headers("procurement")).get_json()
    assert run["status"] == "succeeded", run
    return run


def cells(row: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]


def table(page: str, table_id: str) -> list[list[str]]:
    found = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert found, f"no table {table_id}"
    return [cells(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.S)
            if "colspan" not in row]  # "nothing here" is no row


def yuan(amount: object) -> str:
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    return f"¥{value:,}"


def test_the_plan_page_says_its_summary_first_then_its_lines_by_name_and_who_started_it(client, world, market,
                                                                                       officer) -> None:
    run = run_on_the_page(client, world)
    assert run["started_by"] == "user:wang"
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    assert page.index('id="plan-summary"') < page.index('id="plan-lines"') < page.index('id="shortages"')
    assert "由 王采购 于" in page and "user:" not in page  # the person, never the account label
    assert "<td>王采购</td>" in client.get("/plans").get_data(as_text=True)
    # What the plan proved drug by drug, in the page's words, from the run's own verdicts.
    verdicts = client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()[
        "result"]["summary"]["drug_verdicts"]
    said = re.search(r'<span id="drug-verdicts"[^>]*>(.*?)</span>', page, re.S)
    assert verdicts and said and "各药" in said.group(1)
    for verdict in verdicts:
        assert f"{verdict['drugs']} {'最优' if verdict['status'] == 'optimal' else '停于节点上限'}" in said.group(1)
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json()
    purchases = sorted((x for x in lines if x["kind"] == "purchase"), key=lambda x: -x["cost"])
    rows = table(page, "purchases")
    assert len(rows) == len(purchases)
    first = rows[0]
    names = {market["aml"]["id"]: "AML5 氨氯地平片", market["mtf"]["id"]: "MTF500 二甲双胍片"}
    assert first[0] == names[purchases[0]["drug_id"]] and first[1].startswith("Site A-")
    assert first[2] in ("华东医药", "英特药业")
    assert first[6] == yuan(purchases[0]["cost"])  # amounts in yuan, costliest first
    # Why, in the page's language from the plan's codes and figures: the site by its name, money in yuan.
    assert purchases[0]["reasons"][0]["code"] == "tier_reached"
    assert first[7].startswith("医联体合并采购 ") and f"送到 {first[1]} 每单位 ¥" in first[7]
    assert not re.search(r"[a-z]{3,}", first[7].replace(first[1], "")), first[7]
    # Transfers by lot number and site names, and why in words with them.
    transfers = client.get(f"/plans/{run['id']}?kind=transfer").get_data(as_text=True)
    moved = table(transfers, "transfers")
    assert moved and moved[0][1] == "A-NEAR" and moved[0][2] == "Site A-C2"
    # No site code or lot id left bare (the sites here are named "Site <code>", the lot numbered A-NEAR).
    assert all(not re.search(r"(?<!Site )\b[A-Z]-[A-Z0-9]+\b|\bL\d+\b", row[-2].replace("A-NEAR", ""))
               for row in moved), [row[-2] for row in moved]
    client.get("/lang/en")
    english = table(client.get(f"/plans/{run['id']}?kind=transfer").get_data(as_text=True), "transfers")
    client.get("/lang/zh")
    assert [row[-2] for row in english] == [
        "lot A-NEAR expires in 21 days; Site A-C2 can use only 52 of its 300 before then",
        "lent: cheaper than buying for Site A-C1 (¥0.05 a unit to move)"]


def test_the_plan_lines_are_filtered_and_paged_and_the_export_says_what_the_page_says(app, client, world, market,
                                                                                      officer) -> None:
    run = run_plan(client, world, history_days=28)
    lines = client.get(f"/api/plan-runs/{run['id']}/lines", headers=world.a.headers("procurement")).get_json()
    purchases = [x for x in lines if x["kind"] == "purchase"]
    at_c1 = [x for x in purchases if x["site_id"] == world.a.sites["C1"]]
    assert at_c1 and len(at_c1) < len(purchases)
    htmx = {"HX-Request": "true"}
    swapped = client.get(f"/plans/{run['id']}/lines?kind=purchase&site_id={world.a.sites['C1']}", headers=htmx)
    # The address bar shows the whole page as filtered: reloading it, or the fragment's own address, gets the page.
    assert swapped.headers["HX-Push-Url"] == f"/plans/{run['id']}?kind=purchase&site_id={world.a.sites['C1']}"
    reloaded = client.get(f"/plans/{run['id']}/lines?kind=purchase&site_id={world.a.sites['C1']}")
    assert reloaded.status_code == 302 and reloaded.headers["Location"] == swapped.headers["HX-Push-Url"]
    assert client.get(f"/plans/{run['id']}/lines?run_id=999").status_code == 302  # a stray parameter is no error
    filtered = swapped.get_data(as_text=True)
    assert {row[1] for row in table(filtered, "purchases")} == {"Site A-C1"}
    by_supplier = client.get(f"/plans/{run['id']}/lines?supplier_id={market['s2']['id']}", headers=htmx).get_data(
        as_text=True)
    assert {row[2] for row in table(by_supplier, "purchases")} <= {"英特药业"}
    # One line a page: every page shows the next line, and the pager says where it is.
    app.config["DESK_PAGE_SIZE"] = 1
    try:
        seen = []
        for number in range(1, len(purchases) + 1):
            page = client.get(f"/plans/{run['id']}?page={number}").get_data(as_text=True)
            seen += table(page, "purchases")
            assert f"共 {len(purchases)} 行 · 第 {number}/{len(purchases)} 页" in page
        assert len(seen) == len(purchases) and len({tuple(r[:3]) for r in seen}) == len(purchases)
    finally:
        app.config.pop("DESK_PAGE_SIZE")
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    shown = table(page, "purchases")

    # The Excel export, opened back, holds every line of the page, row for row, as numbers where they are numbers.
    workbook = load_workbook(io.BytesIO(client.get(f"/plans/{run['id']}/lines.xlsx").data))
    sheet = workbook.active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:4] == ("药品编码", "药品", "机构", "供应商")
    assert len(rows) - 1 == len(shown)
    for exported, on_page in zip(rows[1:], shown, strict=True):
        code, name, site, supplier, packs, units, price, cost, why, _edited = exported
        assert [f"{code} {name}", site, supplier or "", str(packs), str(units), yuan(price), yuan(cost)] == on_page[:7]
        assert isinstance(cost, float | int) and isinstance(packs, int)  # numbers, not text
        assert on_page[7].startswith(why)
    # The CSV says the same, with a byte-order mark so that spreadsheets read its Chinese.
    body = client.get(f"/plans/{run['id']}/lines.csv?site_id={world.a.sites['C1']}").data
    assert body.startswith("\ufeff".encode())
    read = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert [r[2] for r in read[1:]] == ["Site A-C1"] * len(at_c1)
    transfers = list(csv.reader(io.StringIO(client.get(f"/plans/{run['id']}/lines.csv?kind=transfer").data.decode(
        "utf-8-sig"))))
    assert transfers[0][:5] == ["药品编码", "药品", "批号", "调出机构", "调入机构"] and transfers[1][2] == "A-NEAR"


def test_an_edit_comes_back_in_place_recosted_or_refused_in_the_pages_language(client, world, market,
                                                                              officer) -> None:
    run = run_plan(client, world, history_days=28)
    page = client.get(f"/plans/{run['id']}?kind=purchase&site_id={world.a.sites['C1']}").get_data(as_text=True)
    edit = re.search(r'<form class="inline" method="post" action="[^"]*/edit".*?</form>', page, re.S)
    assert edit
    form = edit.group(0)
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form))
    assert fields["site_id"] == str(world.a.sites["C1"]) and fields["keep.kind"] == "purchase"
    assert fields["keep.site_id"] == str(world.a.sites["C1"])
    packs = int(fields["packs"])
    htmx = {"HX-Request": "true"}
    again = client.post(f"/plans/{run['id']}/edit", data={**fields, "packs": str(packs + 5)}, headers=htmx)
    fragment = again.get_data(as_text=True)
    # Only the lines come back (as they were filtered), with what happened and the summary re-costed out of band.
    assert again.status_code == 200 and "<html" not in fragment and fragment.lstrip().startswith("<section")
    assert '<div class="flash ok" role="status" id="line-message">方案已重新核算</div>' in fragment
    assert 'id="plan-summary" aria-label="摘要" hx-swap-oob="true"' in fragment
    assert {row[1] for row in table(fragment, "purchases")} == {"Site A-C1"}
    assert any(row[3] == str(packs + 5) and "已修改" in row[7] for row in table(fragment, "purchases"))
    after = client.get(f"/api/plan-runs/{run['id']}", headers=world.a.headers("procurement")).get_json()
    assert after["edited"] and yuan(after["result"]["costs"]["total"]) in fragment
    # Edited by hand, the plan claims no solver's proof (it read "最优 · 差距 0.00%").
    assert 'id="re-costed"' in fragment and "差距 0.00%" not in fragment and 'id="drug-verdicts"' not in fragment
    # A broken rule is refused in place, said in Chinese (the optimizer's own reasons are still its English).
    refused = client.post(f"/plans/{run['id']}/edit", data={**fields, "packs": "100000000"},
                          headers=htmx).get_data(as_text=True)
    assert 'class="flash error"' in refused and "包 " in refused and "units" not in refused.split("flash error")[1][:80]
    unreadable = client.post(f"/plans/{run['id']}/edit", data={**fields, "packs": "many"},
                             headers=htmx).get_data(as_text=True)
    assert "请填写整数的包数或数量" in unreadable
    # Without htmx, the page comes back as it was filtered.
    plain = client.post(f"/plans/{run['id']}/edit", data={**fields, "packs": str(packs)})
    assert plain.status_code == 302 and f"site_id={world.a.sites['C1']}" in plain.headers["Location"]


def test_a_form_holding_a_nul_is_refused_and_changes_nothing(client, world, market, officer) -> None:
    page = client.get("/suppliers").get_data(as_text=True)
    refused = client.post("/suppliers/new", data={"csrf_token": token(page), "code": "S9", "name": "坏\x00名字"},
                          follow_redirects=True)
    assert refused.status_code == 422
    said = refused.get_data(as_text=True)
    assert "name" in said and "NUL" in said
    # A lone surrogate sent as the bytes a browser would send never reaches a service as one: it is not text.
    lone = client.post("/suppliers/new", data=f"csrf_token={token(page)}&code=S8&name=%ED%A0%80",
                       content_type="application/x-www-form-urlencoded", follow_redirects=True)
    assert lone.status_code in (200, 422)
    suppliers = client.get("/api/suppliers", headers=world.a.headers("procurement")).get_json()
    assert "S9" not in {s["code"] for s in suppliers}
    assert all(not any("\ud800" <= c <= "\udfff" for c in s["name"]) for s in suppliers)


def test_orders_are_followed_to_delivery_with_what_is_outstanding_and_late(client, world, market, officer,
                                                                         clock) -> None:
    run = run_on_the_page(client, world)
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    approved = client.post(f"/plans/{run['id']}/approve", data={"csrf_token": token(page)}, follow_redirects=True)
    said = approved.get_data(as_text=True)
    assert "计划已批准" in said and "采购订单" in said and "已由 王采购 于" in said
    officer_key = world.a.headers("procurement")
    orders = client.get(f"/api/purchase-orders?run_id={run['id']}", headers=officer_key).get_json()
    listed = client.get("/orders").get_data(as_text=True)
    rows = table(listed, "orders")
    assert {r[0] for r in rows} == {o["number"] for o in orders}
    order = next(o for o in orders if any(line["site_id"] == world.a.sites["C1"] for line in client.get(
        f"/api/purchase-orders/{o['id']}", headers=officer_key).get_json()["lines"]))
    detail = client.get(f"/api/purchase-orders/{order['id']}", headers=officer_key).get_json()
    line = next(x for x in detail["lines"] if x["site_id"] == world.a.sites["C1"])
    # C1 receives one pack of its line.
    receipt = client.post(f"/api/purchase-orders/{order['id']}/receipts", headers=world.a.headers("pharmacist"),
                          json={"site_id": world.a.sites["C1"], "lines": [
                              {"drug_id": line["drug_id"], "lot_number": "PO-LOT-7", "expiry_date": "2028-06-30",
                               "quantity": 1, "unit": "pack"}]})
    assert receipt.status_code == 201, receipt.get_json()
    outstanding = sum(x["units"] - x["received_units"] for x in receipt.get_json()["lines"])
    view = client.get(f"/orders/purchase/{order['id']}").get_data(as_text=True)
    assert "PO-LOT-7" in view and "部分到货" in view and "逾期" not in view
    received = table(view, "receipts")
    assert received[0][1] == "Site A-C1" and received[0][3] == "PO-LOT-7" and received[0][5] == str(line["pack_size"])
    c1_line = next(r for r in table(view, "order-lines") if r[0] == "Site A-C1")
    assert c1_line[6] == str(line["pack_size"]) and c1_line[7] == str(line["units"] - line["pack_size"])
    assert outstanding > 0
    # Days later nothing more came: the order is late against its expected day, and the list's filter finds it.
    clock.advance(days=10)
    late = client.get(f"/orders/purchase/{order['id']}").get_data(as_text=True)
    assert '<span class="badge late">逾期</span>' in late
    assert order["number"] in client.get("/orders?late=1").get_data(as_text=True)
    printable = client.get(f"/orders/purchase/{order['id']}/print").get_data(as_text=True)
    assert "@media print" in printable and order["number"] in printable and "Site A-C1" in printable
    assert "<header>" not in printable  # a document, without the pages' navigation
    # The export of the list, opened back, is the list.
    sheet = load_workbook(io.BytesIO(client.get("/orders.xlsx").data)).active
    exported = list(sheet.iter_rows(values_only=True))
    assert [r[0] for r in exported[1:]] == [r[0] for r in table(client.get("/orders").get_data(as_text=True),
                                                                 "orders")]
    # Transfers: asked for, held at the sender, said by name.
    transfers = client.get(f"/api/transfer-orders?run_id={run['id']}", headers=officer_key).get_json()
    assert transfers
    shown = client.get(f"/orders/transfer/{transfers[0]['id']}").get_data(as_text=True)
    assert "Site A-C2" in shown and "A-NEAR" in shown and "待发货" in shown and "逾期" in shown
    listed = table(client.get("/orders?kind=transfer").get_data(as_text=True), "orders")
    assert listed[0][0] == transfers[0]["number"] and listed[0][2] == "Site A-C2"
    clock.advance(days=-10)


def test_suppliers_and_offers_are_kept_on_pages_beside_the_csv_import(client, world, market, officer) -> None:
    page = client.get("/suppliers").get_data(as_text=True)
    assert "¥30.00" in page and "¥26.00" in page  # prices in yuan
    csrf = token(page)
    made = client.post("/suppliers/new", data={"csrf_token": csrf, "code": "JZT", "name": "九州通医药集团"},
                       follow_redirects=True).get_data(as_text=True)
    assert "已登记供应商" in made and "九州通医药集团" in made
    twice = client.post("/suppliers/new", data={"csrf_token": csrf, "code": "JZT", "name": "又一个"},
                        follow_redirects=True).get_data(as_text=True)
    assert flashed_error(twice) == "供应商 JZT 已存在"
    supplier = next(s for s in client.get("/api/suppliers", headers=world.a.headers("procurement")).get_json()
                    if s["code"] == "JZT")
    offer = {"csrf_token": csrf, "supplier_id": str(supplier["id"]), "drug_id": str(market["aml"]["id"]),
             "valid_from": "2026-11-20", "valid_until": "2027-06-30", "pack_size": "28",
             "tiers": "0:29.50;100:27.00", "lead_time_days": "2", "order_cost": "15", "delivery_costs": "A-C1:0.2"}
    rising = client.post("/offers/new", data={**offer, "tiers": "0:20;100:25"}, follow_redirects=True)
    assert flashed_error(rising.get_data(as_text=True)) == \
        "表单有无效字段：tiers · 第 2 档：采购量更大时每包价格不能更高"
    saved = client.post("/offers/new", data=offer, follow_redirects=True).get_data(as_text=True)
    assert "已记录报价" in saved
    offers = client.get(f"/api/offers?supplier_id={supplier['id']}", headers=world.a.headers("procurement")).get_json()
    assert [t["price_per_pack"] for t in offers[0]["tiers"]] == [29.5, 27.0]
    offer_id = offers[0]["id"]
    edit = client.get(f"/suppliers?edit={offer_id}").get_data(as_text=True)
    assert 'value="0:29.5;100:27"' in edit and 'value="A-C1:0.2"' in edit
    changed = client.post(f"/offers/{offer_id}", data={**offer, "tiers": "0:28.80", "lead_time_days": "3"},
                          follow_redirects=True).get_data(as_text=True)
    assert "已修改报价" in changed
    after = client.get(f"/api/offers/{offer_id}", headers=world.a.headers("procurement")).get_json()
    assert after["tiers"] == [{"min_packs": 0, "price_per_pack": 28.8}] and after["lead_time_days"] == 3
    retired = client.post(f"/offers/{offer_id}", data={"csrf_token": csrf, "active": "0"},
                          follow_redirects=True).get_data(as_text=True)
    assert "已停用报价" in retired
    assert client.get(f"/api/offers/{offer_id}", headers=world.a.headers("procurement")).get_json()["active"] is False
    assert "九州通医药集团" not in "".join(r[1] for r in table(client.get("/suppliers").get_data(as_text=True),
                                                               "offers"))
    audit = client.get(f"/api/audit?object_type=Offer&object_id={offer_id}", headers=world.a.headers("admin"))
    assert {e["action"] for e in audit.get_json()} >= {"create", "edit", "update"}
    # The CSV template has the import's columns; an import's problems are said in the page's language.
    template = client.get("/suppliers/offers-template.csv").data.decode("utf-8-sig").splitlines()
    assert template[0].startswith("supplier_code,supplier_name,drug_code,pack_size,tiers")
    bad = "\n".join([template[0], "JZT,九州通,NOPE,28,0:10,1,,0,,,2026-11-01,2027-10-31",
                     "JZT,九州通,AML5,x,0:10,1,,0,,,2026-11-01,2027-10-31", ""])
    imported = client.post("/suppliers/import", data={"csrf_token": csrf,
                                                       "file": (io.BytesIO(bad.encode()), "o.csv")},
                           follow_redirects=True).get_data(as_text=True)
    assert flashed_error(imported) == \
        "CSV 中有 1 处问题；未导入任何内容 · 第 3 行，pack_size：不是有效的整数（须为整数，不能是小数）"
    descending = "\n".join([template[0], "JZT,九州通,AML5,28,0:10;0:9,1,,0,,,2026-11-01,2027-10-31", ""])
    refused = client.post("/suppliers/import", data={"csrf_token": csrf,
                                                      "file": (io.BytesIO(descending.encode()), "o.csv")},
                          follow_redirects=True).get_data(as_text=True)
    assert flashed_error(refused) == \
        "CSV 中有 1 处问题；未导入任何内容 · 第 2 行，tiers：第 2 档：起订包数须逐档递增（0 之后是 0）"
    unknown = "\n".join([template[0], "JZT,九州通,NOPE,28,0:10,1,,0,,,2026-11-01,2027-10-31",
                         "JZT,九州通,AML5,28,0:10,1,,0,,NOWHERE:1,2026-11-01,2027-10-31", ""])
    refused = client.post("/suppliers/import", data={"csrf_token": csrf,
                                                      "file": (io.BytesIO(unknown.encode()), "o.csv")},
                          follow_redirects=True).get_data(as_text=True)
    assert flashed_error(refused) == ("CSV 中有 2 处问题；未导入任何内容 · 第 2 行，drug_code：没有药品 NOPE"
                                      " · 第 3 行，delivery_costs：没有编码为 NOWHERE 的机构")
    good = template[0] + "\n" + template[1] + "\n"
    ok = client.post("/suppliers/import", data={"csrf_token": csrf, "file": (io.BytesIO(good.encode()), "o.csv")},
                     follow_redirects=True).get_data(as_text=True)
    assert "已导入报价：新增 1 条" in ok


def test_the_consortium_stock_exports_what_its_page_shows(client, world, market, officer) -> None:
    page = client.get("/positions").get_data(as_text=True)
    shown = table(page, "positions")
    assert shown[[r[0] for r in shown].index("Site A-C2")][:2] == ["Site A-C2", "AML5 氨氯地平片"]
    rows = list(load_workbook(io.BytesIO(client.get("/positions.xlsx").data)).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("机构", "药品编码", "药品", "现存")
    assert [[r[0], f"{r[1]} {r[2]}", *map(str, r[3:])] for r in rows[1:]] == shown
    mine = list(csv.reader(io.StringIO(client.get(f"/positions.csv?site_id={world.a.sites['C2']}").data.decode(
        "utf-8-sig"))))
    assert {r[0] for r in mine[1:]} == {"Site A-C2"}


def test_the_dashboard_says_each_figure_in_its_unit_with_its_definition(client, world, officer, clock) -> None:
    from tests.api.test_prescriptions import rx, send, stock
    from tests.factories import add_drug

    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-D9", nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare", "dispense"):
        assert client.post(f"/api/prescriptions/{created['id']}/{step}", headers=world.a.headers("pharmacist"),
                           json={}).status_code == 200
    clock.advance(minutes=25)
    assert client.post(f"/api/prescriptions/{created['id']}/hand-over", headers=world.a.headers("pharmacist"),
                       json={}).status_code == 200
    page = client.get("/dashboard").get_data(as_text=True)
    assert "<b id=\"hand-over\">25 分钟</b>" in page  # not "0.4 小时"
    assert 'title="已交付的处方中，一半从分配到交付所用的时间少于此值"' in page
    assert page.count('class="card tile" title="') == 6
    from pharmacy.web.desk import duration

    with client.application.test_request_context():
        assert [duration(h) for h in (None, 0, 0.01, 0.5, 1, 13.25, 50)] == [
            "—", "0 分钟", "1 分钟", "30 分钟", "1.0 小时", "13.2 小时", "2.1 天"]
