"""The procurement officer's and the administrator's desks in a real browser (the machine's Chromium, driven by
Playwright): each page is opened as its user would, worked, photographed into ``$SCREENSHOT_DIR`` (default
``build/screenshots``) and checked with axe-core (vendored under tests/e2e/vendor) for serious or critical
accessibility violations. An export downloaded from the plan page is opened back and checked row for row against
the page."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.e2e.test_browser import INSTALL, MISSING, PASSWORD, SHOTS, shot, sign_in
from tests.e2e.test_browser import browser as browser  # fixtures: the browser, and the app served with its data
from tests.e2e.test_browser import site as site

pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}; {INSTALL}")
AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"
FOUND: dict[str, list[dict[str, Any]]] = {}


def accessible(page: Any, name: str) -> None:
    """axe-core on the page as it stands: no serious or critical violation (every finding is kept beside the
    screenshots, in axe.json)."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("""async () => (await axe.run(document, {resultTypes: ['violations']})).violations
        .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                    targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))""")
    FOUND[name] = violations
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / "axe.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**known, name: violations}, ensure_ascii=False, indent=1))
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], f"{name}: {serious}"


def look(page: Any, name: str) -> None:
    shot(page, name)
    accessible(page, name)


@pytest.fixture
def desks(site: dict[str, Any], committed_app: Any) -> Iterator[dict[str, Any]]:
    factory = committed_app.extensions["pharmacy_db"].session_factory
    world = site["world"]
    create_user(UnitOfWork(factory, system_for(world.a.consortium_id)), world.a.consortium_id, "zhou", PASSWORD,
                Role.ADMIN, None, "周管理员")
    yield site


def rows_of(page: Any, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tbody tr", """rows => rows.filter(r => !r.querySelector('[colspan]'))
        .map(r => Array.from(r.querySelectorAll('td')).map(td => td.innerText.trim()))""")


def test_an_officer_reads_filters_exports_edits_and_approves_a_plan_and_follows_its_orders(desks, browser) -> None:
    url = desks["url"]
    page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    sign_in(page, url, "wang")
    page.wait_for_url("**/plans")
    page.fill("input[name=history_days]", "28")
    page.click("#start-plan")
    page.wait_for_selector("#saving", timeout=90_000)
    main = page.inner_text("main")
    assert "由 王采购 于" in main and "user:wang" not in main
    plans_page = browser.new_page(viewport={"width": 1280, "height": 700})
    sign_in(plans_page, url, "wang")
    plans_page.wait_for_url("**/plans")
    assert "王采购" in plans_page.inner_text("table")
    look(plans_page, "20-officer-plan-runs")
    plans_page.close()
    # Summary first, then the lines: drugs by name, sites by name, amounts in yuan.
    assert page.locator("#plan-summary").bounding_box()["y"] < page.locator("#plan-lines").bounding_box()["y"]
    first = rows_of(page, "purchases")[0]
    assert first[0] == "AML5 氨氯地平片" and first[2] == "华东医药" and first[6].startswith("¥")
    look(page, "21-officer-plan")
    # The export, downloaded as a user would, is the page's table row for row.
    with page.expect_download() as download:
        page.click("#line-filters .exports a:has-text('Excel')")
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes())).active
    exported = list(sheet.iter_rows(min_row=2, values_only=True))
    shown = rows_of(page, "purchases")
    assert [[f"{r[0]} {r[1]}", r[2], r[3], str(r[4])] for r in exported] == [row[:4] for row in shown]
    with page.expect_download() as download:
        page.click("#line-filters .exports a:has-text('CSV')")
    text = Path(download.value.path()).read_bytes().decode("utf-8-sig")
    assert [row[2] for row in list(csv.reader(io.StringIO(text)))[1:]] == [row[1] for row in shown]
    # A filter swaps the lines in place.
    page.select_option("select[name=site_id]", label="Site A-C1")
    page.click("#line-filters button[type=submit]")
    page.wait_for_url("**site_id=*")
    assert {row[1] for row in rows_of(page, "purchases")} == {"Site A-C1"}
    # An edit stays where it was: the lines come back filtered, with what happened and the plan re-costed.
    page.evaluate("window.scrollTo(0, document.querySelector('#purchases').offsetTop - 100)")
    before = page.evaluate("window.scrollY")
    cost_before = page.inner_text("#plan-cost")
    packs = page.locator("#purchases input[name=packs]").first
    packs.fill(str(int(packs.input_value()) + 3))
    page.locator("#purchases button:has-text('重新核算')").first.click()
    page.wait_for_selector("#line-message")
    assert page.inner_text("#line-message") == "方案已重新核算"
    # No jump back to the top: the page stays about where it was, and what happened is in view.
    assert page.evaluate("window.scrollY") > before / 2
    assert page.evaluate("""() => { const r = document.querySelector('#line-message').getBoundingClientRect();
                                     return r.top >= 0 && r.bottom <= window.innerHeight; }""")
    assert {row[1] for row in rows_of(page, "purchases")} == {"Site A-C1"} and "已修改" in page.inner_text("#purchases")
    assert page.inner_text("#plan-cost") != cost_before
    # The re-costed summary's chart is drawn again on its new canvas (it was left blank).
    page.wait_for_function("() => !!(window.Chart && Chart.getChart(document.getElementById('cost-chart')))")
    look(page, "22-officer-plan-edited-in-place")
    page.click("#tab-transfer")
    page.wait_for_selector("#transfers")
    moved = rows_of(page, "transfers")
    assert moved and moved[0][1] == "A-NEAR" and moved[0][2] == "Site A-C2"
    look(page, "23-officer-plan-transfers")
    asked: list[str] = []  # approval cannot be undone: the page asks first
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#approve")
    page.wait_for_selector(".flash.ok")
    assert asked and "无法撤销" in asked[0]
    assert "计划已批准" in page.inner_text("main")
    page.click("text=其采购订单")
    page.wait_for_selector("#orders")
    look(page, "24-officer-purchase-orders")
    page.locator("#orders tbody a").first.click()
    page.wait_for_selector("#order-lines")
    assert "华东医药" in page.inner_text("main") and "尚未收货" in page.inner_text("#receipts")
    look(page, "25-officer-purchase-order")
    page.click("#print-link")
    page.wait_for_selector("#print")
    page.emulate_media(media="print")
    assert not page.locator("#print").is_visible()  # the print button is not printed
    look(page, "26-officer-purchase-order-printed")
    page.emulate_media(media="screen")
    page.goto(f"{url}/orders?kind=transfer")
    look(page, "27-officer-transfer-orders")
    page.locator("#orders tbody a").first.click()
    page.wait_for_selector("#transfer-lines")
    assert "Site A-C2" in page.inner_text("main") and "A-NEAR" in page.inner_text("#transfer-lines")
    look(page, "28-officer-transfer-order")
    page.click("text=医联体库存")
    page.wait_for_selector("#positions")
    look(page, "29-officer-consortium-stock")
    page.click("text=供应商与报价")
    page.wait_for_selector("#offers")
    assert "¥30.00" in page.inner_text("#offers")
    page.fill("#new-supplier input[name=code]", "JZT")
    page.fill("#new-supplier input[name=name]", "九州通医药集团")
    page.click("#new-supplier button")
    page.wait_for_selector(".flash.ok")
    page.fill("#offer-form input[name=valid_until]", "2027-06-30")
    page.fill("#offer-form input[name=pack_size]", "28")
    page.fill("#offer-form input[name=tiers]", "0:31;50:29.5")
    page.select_option("#offer-form select[name=supplier_id]", label="九州通医药集团")
    page.click("#save-offer")
    page.wait_for_selector(".flash.ok")
    assert "九州通医药集团" in page.inner_text("#offers") and "¥29.50" in page.inner_text("#offers")
    look(page, "30-officer-suppliers-and-offers")
    page.click("text=运营看板")
    page.wait_for_selector("#savings-chart")
    assert page.get_attribute("#hand-over", "id") == "hand-over"
    assert page.locator(".tile[title]").count() == 6
    page.hover(".tile[title] >> nth=2")
    look(page, "31-dashboard")
    page.click("#lang")
    page.goto(f"{url}/orders")
    assert "Purchase orders" in page.inner_text("main")
    look(page, "32-officer-orders-in-english")


def test_an_administrator_keeps_the_catalog_the_sites_and_the_accounts(desks, browser) -> None:
    url = desks["url"]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, url, "zhou")
    page.wait_for_url("**/dashboard")
    page.click("text=系统管理")
    page.wait_for_selector("#drugs")
    page.fill("input[name=q]", "aldp")
    page.click("form[role=search] button")
    page.wait_for_selector("#drugs")
    assert rows_of(page, "drugs")[0][0] == "AML5"
    look(page, "40-admin-drugs")
    page.click("#new-drug")
    for name, value in (("code", "NIF30"), ("generic_name", "硝苯地平控释片"), ("dosage_form", "tablet"),
                        ("strength_amount", "30"), ("strength_unit", "mg"), ("dispensing_unit", "tablet"),
                        ("pack_size", "7"), ("equivalence_group", "nifedipine-30")):
        page.fill(f"#drug-form [name={name}]", value)
    page.select_option("#drug-form select[name=essential]", "false")
    page.click("#save-drug")
    page.wait_for_selector(".flash.ok")
    assert "已将药品 NIF30 加入目录" in page.inner_text("main")
    page.fill("#drug-form [name=brand_name]", "拜新同")
    page.click("#save-drug")
    page.wait_for_selector(".flash.ok")
    page.fill("input[name=local_code]", "HIS-0042")
    page.click("text=对照编码")
    page.wait_for_selector("#local-codes")
    assert "HIS-0042" in page.inner_text("#local-codes")
    page.select_option("form:has(button:has-text('扩充处方集')) select[name=site_id]", label="Site A-C1")
    page.click("button:has-text('扩充处方集')")
    page.wait_for_selector(".flash.ok")
    assert "Site A-C1" in page.inner_text("#extensions")
    look(page, "41-admin-drug")
    page.click("text=等效组")
    page.wait_for_selector("#groups")
    look(page, "42-admin-equivalence-groups")
    page.click("text=机构与成员树")
    page.wait_for_selector("#tree")
    look(page, "43-admin-sites-tree")
    page.click("#tree >> text=Site A-C2")
    page.wait_for_selector("#site-form")
    look(page, "44-admin-site")
    page.click("text=人员与 API 密钥")
    page.wait_for_selector("#users")
    page.fill("#new-key-form input[name=name]", "社区 HIS")
    page.click("#issue-key")
    page.wait_for_selector(".flash.error")  # a prescribing system's key is bound to its hospital
    assert "须绑定一个机构" in page.inner_text(".flash.error")
    page.fill("#new-key-form input[name=name]", "社区 HIS")
    page.select_option("#new-key-form select[name=site_id]", label="Site A-LEAD")
    page.click("#issue-key")
    page.wait_for_selector("#key-value")
    assert page.inner_text("#key-value").startswith("cph_")
    look(page, "45-admin-people-and-new-key")
    page.click("text=审计记录")
    page.wait_for_selector("#audit")
    page.select_option("select[name=actor]", label="周管理员")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("#audit")
    assert {row[1] for row in rows_of(page, "audit")} == {"周管理员"}
    look(page, "46-admin-audit-trail")
    page.click("#lang")
    page.wait_for_selector("#audit")
    assert "Audit trail" in page.inner_text("h1")
    look(page, "47-admin-audit-trail-in-english")
