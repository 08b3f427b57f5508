"""The pages over HTTP: sign-in, sessions, CSRF, what each role and site may open, and the language."""

from __future__ import annotations

import html
import re

import pytest

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.procurement.plan_runs import PlanSettings, execute_run
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import act, rx, send, stock
from tests.api.test_procurement import leave_undone, run_plan
from tests.api.test_procurement import market as market  # a fixture: the plan's drugs, history and offers
from tests.api.test_procurement import queued_runs as queued_runs  # a fixture: plan runs wait in the queue
from tests.factories import World, add_drug

pytestmark = pytest.mark.usefixtures("clock")
PASSWORD = "a good password"


@pytest.fixture
def people(client, world: World) -> dict[str, str]:
    factory = client.application.extensions["pharmacy_db"].session_factory
    uow = UnitOfWork(factory, system_for(world.a.consortium_id))
    for username, role, site in (("li", Role.PHARMACIST, "C1"), ("zhao", Role.PHARMACIST, "C2"),
                                 ("wang", Role.PROCUREMENT, None)):
        create_user(uow, world.a.consortium_id, username, PASSWORD, role, world.a.sites[site] if site else None)
    return {"c1": "li", "c2": "zhao", "officer": "wang"}


def token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def sign_in(client, username: str) -> None:
    form = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"csrf_token": token(form), "username": username, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)


def test_pages_need_a_signed_in_user_and_the_session_cookie_is_httponly_and_samesite(client, people) -> None:
    assert client.get("/worklist").status_code == 302
    assert client.get("/worklist").headers["Location"].startswith("/login")
    form = client.get("/login").get_data(as_text=True)
    assert "登录" in form  # Chinese by default
    wrong = client.post("/login", data={"csrf_token": token(form), "username": "li", "password": "nope nope"})
    assert wrong.status_code == 401 and "用户名或密码错误" in wrong.get_data(as_text=True)
    right = client.post("/login", data={"csrf_token": token(form), "username": "li", "password": PASSWORD})
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/worklist").status_code == 200
    page = client.get("/worklist").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": token(page)})
    assert client.get("/worklist").status_code == 302


def test_a_form_posted_without_its_csrf_token_is_refused_and_changes_nothing(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-P1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    sign_in(client, "li")
    refused = client.post(f"/prescriptions/{created['id']}/accept", data={})
    assert refused.status_code == 400 and "安全令牌" in refused.get_data(as_text=True)
    forged = client.post(f"/prescriptions/{created['id']}/accept", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    after = client.get(f"/api/prescriptions/{created['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert after["status"] == "routed"
    # The API is not affected: it authenticates every request itself.
    assert client.post(f"/api/prescriptions/{created['id']}/accept", headers=world.a.headers("pharmacist"),
                       json={}).status_code == 200


def test_a_pharmacist_cannot_open_another_sites_prescription_page(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-P2", nominated_pharmacy=world.a.sites["C1"])).get_json()
    assert created["pharmacy_site_id"] == world.a.sites["C1"]
    sign_in(client, "zhao")
    page = client.get(f"/prescriptions/{created['id']}")
    assert page.status_code == 404 and created["patient"]["ref"] not in page.get_data(as_text=True)
    client.get("/logout")
    sign_in(client, "li")
    mine = client.get(f"/prescriptions/{created['id']}")
    assert mine.status_code == 200 and "P-7f3a" in mine.get_data(as_text=True)


def test_each_role_sees_its_own_pages_and_the_language_switches(client, people) -> None:
    sign_in(client, "li")
    assert client.get("/plans").status_code == 403
    assert client.get("/").headers["Location"].endswith("/worklist")
    client.get("/lang/en?next=/worklist")
    assert "Worklist" in client.get("/worklist").get_data(as_text=True)
    client.get("/lang/zh")
    assert "处方工作台" in client.get("/worklist").get_data(as_text=True)


def test_every_message_of_the_pages_has_a_chinese_translation() -> None:
    from pathlib import Path

    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parents[2]
    path = root / "pharmacy/web/translations/zh/LC_MESSAGES/messages.po"
    with open(path, "rb") as f:
        catalog = read_po(f)
    untranslated = [m.id for m in catalog if m.id and not m.string]
    assert untranslated == []
    # Every message of the source is in the catalog, the services' refusals (``Message``) too: none was left out
    # of the last extraction.
    with open(root / "babel.cfg") as f:
        methods, options = parse_mapping_cfg(f)
    said = {found[2] for found in extract_from_dir(root, methods, options, {**DEFAULT_KEYWORDS, "Message": None})}
    assert sorted(m for m in said if isinstance(m, str) and m not in catalog) == []
    assert path.with_suffix(".mo").stat().st_mtime >= path.stat().st_mtime - 1  # compiled after the last edit


def test_the_dashboard_counts_where_prescriptions_were_filled(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-D1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare", "dispense", "hand-over"):
        assert client.post(f"/api/prescriptions/{created['id']}/{step}", headers=world.a.headers("pharmacist"),
                           json={}).status_code == 200
    sign_in(client, "wang")
    page = client.get("/dashboard").get_data(as_text=True)
    grassroots = re.search(r'id="grassroots">([^<]+)<', page)
    assert grassroots and grassroots.group(1) == "100.0%"  # C1 is a community health centre
    assert '"community_health_centre", 1' in page.replace("[", "").replace("]", "")


def test_a_form_with_unreadable_numbers_is_refused_with_a_message_not_an_error(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-F1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare"):
        client.post(f"/api/prescriptions/{created['id']}/{step}", headers=world.a.headers("pharmacist"), json={})
    sign_in(client, "li")
    page = client.get(f"/prescriptions/{created['id']}").get_data(as_text=True)
    lot_field = re.search(r'name="(lot-\d+-\d+)"', page).group(1)  # type: ignore[union-attr]
    posted = client.post(f"/prescriptions/{created['id']}/dispense",
                         data={"csrf_token": token(page), lot_field: "twenty"}, follow_redirects=True)
    # Refused on the page it came from, with what was typed.
    assert posted.status_code == 422 and "数量请填写整数" in posted.get_data(as_text=True)
    assert f'name="{lot_field}" value="twenty"' in posted.get_data(as_text=True)
    after = client.get(f"/api/prescriptions/{created['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert after["status"] == "prepared"


def test_receiving_lists_the_sites_open_transfers_and_deliveries_only(client, world, people, market) -> None:
    officer = world.a.headers("procurement")
    run = run_plan(client, world, history_days=28)
    orders = client.post(f"/api/plan-runs/{run['id']}/approve", headers=officer).get_json()["purchase_orders"]
    lines = {o["number"]: client.get(f"/api/purchase-orders/{o['id']}", headers=officer).get_json()["lines"]
             for o in orders}
    delivering = {n for n, ls in lines.items() if any(x["site_id"] == world.a.sites["C1"] for x in ls)}
    assert delivering

    def transfer(origin: str, to: str, units: int) -> dict:
        made = client.post("/api/transfer-orders", headers=officer, json={
            "from_site_id": world.a.sites[origin], "to_site_id": world.a.sites[to],
            "lines": [{"drug_id": market["aml"]["id"], "quantity": units}]})
        assert made.status_code == 201, made.get_json()
        return made.get_json()["order"]

    incoming = transfer("C2", "C1", 40)
    cancelled = transfer("C2", "C1", 10)
    client.post(f"/api/transfer-orders/{cancelled['id']}/cancel", headers=officer, json={"note": "not needed"})
    elsewhere = transfer("C2", "LEAD", 10)
    sign_in(client, "li")
    page = client.get("/receiving").get_data(as_text=True)
    assert incoming["number"] in page and re.search(r"AML5</span> × 40", page)
    assert "from Site A-C2" in html.unescape(page) or "来自 Site A-C2" in html.unescape(page)
    assert cancelled["number"] not in page and elsewhere["number"] not in page
    assert all(number in page for number in delivering)
    assert not any(number in page for number in set(lines) - delivering)


def test_an_officer_cancels_a_queued_run_from_its_page_and_the_page_says_so(client, world, people,
                                                                          queued_runs) -> None:
    # The run waits for the scheduler: it is still queued when the officer opens it.
    queued = client.post("/api/plan-runs", json={"horizon_days": 30}, headers=world.a.headers("procurement"))
    run_id = queued.get_json()["id"]
    sign_in(client, "wang")
    page = client.get(f"/plans/{run_id}").get_data(as_text=True)
    assert "取消本次运行" in page and 'name="note" required' in page
    blank = client.post(f"/plans/{run_id}/cancel", data={"csrf_token": token(page), "note": " "},
                        follow_redirects=True).get_data(as_text=True)
    # Refused, in the page's language, and still queued.
    assert "请说明取消本次运行的原因" in blank and "say why" not in blank and "取消本次运行" in blank
    done = client.post(f"/plans/{run_id}/cancel", data={"csrf_token": token(page), "note": "设错了期限"},
                       follow_redirects=True).get_data(as_text=True)
    assert "计划运行已取消" in done and "<strong>已取消</strong>" in done and "已由 wang 取消" in done  # a person
    assert "取消本次运行" not in done  # nothing left to cancel
    run = client.get(f"/api/plan-runs/{run_id}", headers=world.a.headers("procurement")).get_json()
    assert run["status"] == "cancelled" and run["cancelled_by"] == "user:wang"


def test_why_a_prescription_was_routed_here_is_said_in_the_pages_language(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    created = send(client, world, rx("RX-W1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    routing = client.get(f"/api/prescriptions/{created['id']}", headers=world.a.headers("pharmacist")).get_json()[
        "routing"]
    facts = routing["facts"]
    assert facts["pharmacy"] == "A-C1" and facts["nominated"] and facts["can_fill"] and facts["short_items"] == []
    assert facts["distance_km"] is not None and facts["open_queue"] == 0
    sign_in(client, "li")

    def why_here(rx_id: int) -> str:
        page = client.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
        found = re.search(r'<span id="why-here">(.*?)</span>', page, re.S)
        assert found, page
        return found.group(1).replace("&#39;", "'")

    chinese = why_here(created["id"])
    # Pharmacies by their names (the test world's are "Site <code>").
    assert chinese.startswith("Site A-C1：处方医生指定；可用库存可满足全部药品") and "距患者" in chinese
    assert "在办处方 0 张" in chinese
    # Too much for any pharmacy: it waits where it is best placed, short of the drug.
    waiting = send(client, world, rx("RX-W2", items=[{"drug_code": "AML5", "quantity": 500, "supply_days": 7}]))
    waiting_routing = waiting.get_json()["routing"]
    assert not waiting_routing["facts"]["can_fill"] and waiting_routing["facts"]["short_items"] == ["AML5"]
    assert "可用库存无法满足 AML5" in why_here(waiting.get_json()["id"])
    client.get("/lang/en?next=/worklist")
    # In English the page says what the API's reason says, naming pharmacies by their names.
    assert why_here(created["id"]) == "Site " + routing["reason"]
    assert why_here(waiting.get_json()["id"]) == "Site " + waiting_routing["reason"]
    client.get("/lang/zh")


def test_why_a_prescription_has_its_status_is_said_in_the_pages_language(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)
    stock(client, world, "C2", aml, "L2", "2027-12-31", 100)

    def status_line(rx_id: int) -> str:
        page = client.get(f"/prescriptions/{rx_id}").get_data(as_text=True)
        found = re.search(r'<p class="muted" id="status-reason">(.*?)</p>', page, re.S)
        assert found, page
        return html.unescape(found.group(1))

    def said(rx_id: int) -> tuple[str, str, str]:
        """The page's line in Chinese, in English, and the API's reason."""
        chinese = status_line(rx_id)
        client.get("/lang/en?next=/worklist")
        english = status_line(rx_id)
        client.get("/lang/zh?next=/worklist")
        api = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("prescriber")).get_json()
        return chinese, english, api["status_reason"]

    sign_in(client, "li")
    filled = send(client, world, rx("RX-S1", nominated_pharmacy=world.a.sites["C1"])).get_json()["id"]
    chinese, english, api = said(filled)
    # The page shows why here on the line above: its status line names the pharmacy only.
    assert chinese == "已分配至 Site A-C1" and english == "routed to Site A-C1" and api.startswith("routed to A-C1: ")
    for action, words in (("accept", "审核通过"), ("prepare", "已调配"), ("dispense", "已发药"),
                          ("hand-over", "已交付")):
        assert act(client, world, filled, action).status_code == 200
        chinese, english, api = said(filled)
        assert chinese == words and english == api  # in English, word for word what the API says

    rejected = send(client, world, rx("RX-S2", nominated_pharmacy=world.a.sites["C1"])).get_json()["id"]
    act(client, world, rejected, "reject", {"reason_code": "dose", "note": "剂量是常用量的两倍"})
    chinese, english, api = said(rejected)
    assert chinese == "剂量不当：剂量是常用量的两倍" and english == api == "dose: 剂量是常用量的两倍"

    # Too much for any pharmacy, and no member has enough to spare: it waits at C1, 428 short (72 left there).
    short = send(client, world, rx("RX-S3", items=[{"drug_code": "AML5", "quantity": 500, "supply_days": 7}]))
    short_id = short.get_json()["id"]
    assert short.get_json()["status_facts"] == {
        "what": "awaiting_stock", "pharmacy": "A-C1", "requests": [{"drug": "AML5", "quantity": 428, "donor": None}]}
    chinese, english, api = said(short_id)
    assert chinese == "没有药房能配齐全部药品；在 Site A-C1 等待到货：医联体内没有可调出的 AML5：已为采购登记缺货 428"
    assert english == api.replace("waiting at A-C1", "waiting at Site A-C1")
    client.post(f"/api/prescriptions/{short_id}/cancel", json={}, headers=world.a.headers("prescriber"))
    assert said(short_id)[0] == "处方医生已撤销"

    # Given back by C1, it goes to C2, whose pharmacist reads who gave it back and why.
    returned = send(client, world, rx("RX-S4", nominated_pharmacy=world.a.sites["C1"])).get_json()["id"]
    act(client, world, returned, "return", {"reason_code": "out_of_stock", "note": "冰箱故障"})
    client.post("/logout", data={"csrf_token": token(client.get("/worklist").get_data(as_text=True))})
    sign_in(client, "zhao")
    chinese, english, api = said(returned)
    assert chinese == "已由 Site A-C1 退回（缺货：冰箱故障）；已分配至 Site A-C2"
    assert english == "returned by Site A-C1 (out of stock: 冰箱故障); routed to Site A-C2"
    assert api.startswith("returned by A-C1 (out_of_stock: 冰箱故障); routed to A-C2: ")


def test_a_plan_runs_progress_is_said_in_the_pages_language(app, client, world, people, market, queued_runs,
                                                           clock) -> None:
    queued = client.post("/api/plan-runs", json={"horizon_days": 30}, headers=world.a.headers("procurement"))
    run_id = queued.get_json()["id"]
    sign_in(client, "wang")

    def said() -> tuple[str, str]:
        """The progress line in Chinese and in English."""
        lines = []
        for language in ("zh", "en"):
            client.get(f"/lang/{language}?next=/plans")
            fragment = client.get(f"/plans/{run_id}/progress").get_data(as_text=True)
            found = re.search(r'<span id="progress-note">(.*?)</span>', fragment, re.S)
            assert found, fragment
            lines.append(html.unescape(found.group(1)))
        client.get("/lang/zh?next=/plans")
        return lines[0], lines[1]

    assert said() == ("排队中", "queued")
    seen: list[tuple[str, str]] = []
    execute_run(app.extensions["pharmacy_db"], run_id, clock, PlanSettings(),
                on_progress=lambda done, total: seen.append(said()))
    # The run reports at most once a second, and once all its models are solved: two drugs are few enough to be
    # planned in one model.
    assert seen[-1] == ("已求解 1/1 个药品模型", "1 of 1 drug models solved")
    run = client.get(f"/api/plan-runs/{run_id}", headers=world.a.headers("procurement")).get_json()
    assert run["progress_facts"]["step"] == "planned" and run["progress_facts"]["plan_status"] == "optimal"
    page = client.get(f"/plans/{run_id}").get_data(as_text=True)
    assert "最优" in page and "planned" not in page and "optimal" not in page


def test_how_a_plan_kept_within_its_budget_is_said_in_the_pages_language(client, world, people, market) -> None:
    run = run_plan(client, world, history_days=28, budget=50.0)
    assert run["progress_facts"]["budget_use"] == {"how": "one_model", "price": None, "rounds": None}
    sign_in(client, "wang")
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    assert '<span id="budget-use">预算在一个模型中统一规划</span>' in page
    client.get("/lang/en?next=/plans")
    english = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    assert '<span id="budget-use">budget planned in one model</span>' in english
    assert run["progress_note"].endswith("; budget planned in one model")
    client.get("/lang/zh?next=/plans")


def flashed_error(page: str) -> str:
    found = re.search(r'<div class="flash error" role="(?:status|alert)">([^<]*)</div>', page)
    assert found, "no refusal on the page"
    return html.unescape(found.group(1))


def test_a_refusal_is_said_in_the_pages_language_and_in_english_as_the_api_says_it(client, world, people) -> None:
    aml = add_drug(client, world.a, "AML5", pack_size=28)
    stock(client, world, "C1", aml, "L1", "2027-12-31", 100)

    def lot() -> dict:
        lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
        return next(x for x in lots if x["lot_number"] == "L1")

    created = send(client, world, rx("RX-R1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    sign_in(client, "li")
    here = f"/prescriptions/{created['id']}"
    assert "flash ok" in client.post(f"{here}/accept", data={"csrf_token": token(client.get(here).get_data(
        as_text=True))}, follow_redirects=True).get_data(as_text=True)

    def refused(path: str, data: dict) -> str:
        page = client.get(here if path.startswith(here) else "/stocktake").get_data(as_text=True)
        return flashed_error(client.post(path, data={"csrf_token": token(page), **data},
                                         follow_redirects=True).get_data(as_text=True))

    # A step the prescription's state does not allow, its state and the steps it allows in words.
    assert refused(f"{here}/accept", {}) == \
        "处方状态为“已审核”，不能审核通过；此状态下可以：取消、失效、调配、拒绝、退回"
    # A stocktake below what is held for the prescription: the message and each line's reason.
    assert refused("/stocktake", {f"count-{lot()['id']}": "0"}) == \
        f"1 行盘点无法登记；本次盘点未记录 · 批号 L1 盘得 0，但已预留 28；登记将释放 28：28 个预留给处方 " \
        f"{created['id']}"
    client.get("/lang/en")
    api = client.post(f"/api/prescriptions/{created['id']}/accept", headers=world.a.headers("pharmacist"), json={})
    assert api.status_code == 409
    assert refused(f"{here}/accept", {}) == api.get_json()["message"]  # word for word
    assert refused("/stocktake", {f"count-{lot()['id']}": "0"}) == \
        "1 count lines cannot be applied; nothing was recorded · lot L1 counted 0 but 28 are held; recording it " \
        f"releases 28: 28 held for prescription {created['id']}"
    assert (lot()["quantity"], lot()["reserved"]) == (100, 28)  # nothing was written


def test_the_plan_page_lists_what_the_plan_leaves_undone_costliest_first(client, world, people, market) -> None:
    leave_undone(client, world)
    run = run_plan(client, world, history_days=28)
    sign_in(client, "wang")
    page = client.get(f"/plans/{run['id']}").get_data(as_text=True)
    assert "计划缺货" in page and "预计过期损耗" in page and "并向各机构提示" in page

    def rows(table: str) -> list[list[str]]:
        body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)  # type: ignore[union-attr]
        return [[html.unescape(c) for c in re.findall(r"<td[^>]*>([^<]*)</td>", row)]
                for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]

    # Drugs and sites by their names, amounts in yuan.
    # Why, in the page's language from the plan's codes and figures, naming sites and suppliers by name.
    short = next(s for s in run["result"]["shortages"] if s["drug"] == "DZP2.5")
    assert [r["code"] for r in short["reasons"]] == ["no_offer_delivers"]
    assert ["DZP2.5 阿莫西林胶囊", "Site A-C2", str(int(short["units"])), f"¥{short['penalty']:,.2f}",
            "没有报价送货到 Site A-C2，也没有可调往该处并能及时使用的库存"] in rows("shortages")
    wasted = next(w for w in run["result"]["waste"] if w["drug"] == "DZP2.5")
    said = next(row for row in rows("waste") if row[:2] == ["DZP2.5 阿莫西林胶囊", "D-NEAR"])
    assert said[2:5] == ["Site A-LEAD", str(int(wasted["units"])), f"¥{wasted['value']:,.2f}"]
    assert said[5].startswith(f"{wasted['reasons'][0]['facts']['days']} 天后过期；") and "A-LEAD" not in \
        said[5].replace("Site A-LEAD", "") and not re.search(r"[a-z]{4,}", said[5].replace("Site", ""))
    for table in ("shortages", "waste"):
        costs = [float(row[-2].lstrip("¥").replace(",", "")) for row in rows(table)]
        assert costs == sorted(costs, reverse=True)
