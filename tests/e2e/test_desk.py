"""A community pharmacist's whole day in a real browser (Debian's Chromium, driven by Playwright), and a
prescriber's: each flow, the refusals that were met before and how they are now handled, printing to PDF, phone and
tablet widths, and an accessibility check of the main pages with axe-core. Screenshots go to ``$SCREENSHOT_DIR``
(default ``build/screenshots``)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from pharmacy.accounts.services import create_user
from pharmacy.clock import FixedClock
from pharmacy.principal import Role, system_for
from pharmacy.procurement.services import raise_near_expiry_alerts
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import rx, send, stock
from tests.e2e.test_browser import INSTALL, MISSING, PASSWORD, SHOTS, shot, sign_in
from tests.e2e.test_browser import browser as browser  # a fixture
from tests.factories import add_drug, build_world

# Skipped where there is no Chromium, as the other browser tests are (required where REQUIRE_BROWSER_TESTS=1).
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}; {INSTALL}")
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
PATIENT = {"ref": "PT-2f91", "district": "D1", "latitude": 30.26, "longitude": 120.14, "birth_date": "1956-04-12",
           "gender": "male"}
CLINICAL = {"diagnoses": [{"code": "I10", "system": "ICD-10", "display": "原发性高血压"}],
            "allergies": [{"substance": "青霉素", "reaction": "皮疹", "criticality": "high"}]}
CODE = "81000000000000000042"  # a pack's national trace code


@pytest.fixture
def desk(committed_app: Flask) -> Iterator[dict[str, Any]]:
    """The app served on a free port with a community pharmacy's day: its pharmacists, a prescriber, stock with
    lots near expiry, a controlled drug, prescriptions routed to it, a transfer to send and alerts raised."""
    app = committed_app
    clock = FixedClock(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))
    app.config["CLOCK"] = clock
    app.config["WORKLIST_REFRESH_SECONDS"] = 1
    client = app.test_client()
    factory = app.extensions["pharmacy_db"].session_factory
    world = build_world(factory)
    admin = world.a.headers("admin")
    client.patch(f"/api/sites/{world.a.sites['C1']}", headers=admin, json={
        "name": "北山街道社区卫生服务中心", "opening_hours": "周一至周日 8:00–17:00", "phone": "0571-8702-2601"})
    client.patch(f"/api/sites/{world.a.sites['LEAD']}", headers=admin, json={"name": "西湖区第一人民医院"})
    uow = UnitOfWork(factory, system_for(world.a.consortium_id), clock)
    for username, name, role, where in (("li", "李药师", Role.PHARMACIST, "C1"),
                                        ("zhou", "周药师", Role.PHARMACIST, "C1"),
                                        ("dr", "王医生", Role.PRESCRIBER, "LEAD")):
        create_user(uow, world.a.consortium_id, username, PASSWORD, role, world.a.sites[where], name)
    aml = add_drug(client, world.a, "AML5", generic_name="苯磺酸氨氯地平片", dosage_form="tablet", strength_amount="5",
                   dispensing_unit="tablet", pack_size=28)
    dzp = add_drug(client, world.a, "DZP2.5", generic_name="地西泮片", dosage_form="tablet", strength_amount="2.5",
                   dispensing_unit="tablet", pack_size=20, controlled_class="psychotropic_2")
    stock(client, world, "C1", aml, "A-SOON", "2026-12-10", 40)
    stock(client, world, "C1", aml, "A-NEAR", "2027-02-10", 60)
    stock(client, world, "C1", aml, "A-LATE", "2028-01-31", 300)
    stock(client, world, "C1", dzp, "D-2027", "2027-09-30", 100)
    stock(client, world, "C2", aml, "A-C2", "2027-06-30", 50)
    routed = send(client, world, rx("RX-B1", patient=PATIENT, nominated_pharmacy=world.a.sites["C1"], items=[
        {"drug_code": "AML5", "quantity": 56, "supply_days": 7, "dosage": "口服，每次 5 mg，每日 1 次"}],
        prescriber="王医生", **CLINICAL)).get_json()
    controlled = send(client, world, rx("RX-C1", patient={**PATIENT, "ref": "PT-5c3e", "gender": "female"},
                                        nominated_pharmacy=world.a.sites["C1"], items=[
        {"drug_code": "DZP2.5", "quantity": 6, "supply_days": 3, "dosage": "口服，每次 2.5 mg，每日 1 次，睡前"}],
        prescriber="王医生")).get_json()
    transfer = client.post("/api/transfer-orders", headers=world.a.headers("procurement"), json={
        "from_site_id": world.a.sites["C1"], "to_site_id": world.a.sites["C2"],
        "lines": [{"drug_id": aml["id"], "quantity": 30}]}).get_json()["order"]
    raise_near_expiry_alerts(uow, 90)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "client": client, "world": world, "aml": aml,
               "routed": routed, "controlled": controlled, "transfer": transfer}
    finally:
        server.shutdown()
        app.config.pop("CLOCK", None)
        app.config.pop("WORKLIST_REFRESH_SECONDS", None)


def new_page(browser: Any, width: int = 1280, height: int = 900) -> Any:
    return browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")


class Counter:
    """Clicks and page loads, counted from the moment it starts."""

    def __init__(self, page: Any) -> None:
        self.page, self.clicks, self.loads, self.keys = page, 0, 0, 0
        page.on("load", lambda: self._loaded())

    def _loaded(self) -> None:
        self.loads += 1

    def click(self, selector: str) -> None:
        self.clicks += 1
        self.page.click(selector)

    def press(self, key: str) -> None:
        self.keys += 1
        self.page.keyboard.press(key)


def test_a_pharmacist_reviews_scans_dispenses_and_hands_over_with_fewer_clicks(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.wait_for_url("**/worklist")
    listed = page.inner_text("#worklist")
    assert "RX-B1" in listed and "苯磺酸氨氯地平片" in listed and "2026-11-23 12:00" in listed
    shot(page, "11-worklist")
    counted = Counter(page)
    counted.click("text=RX-B1")
    page.wait_for_selector("#do-accept")
    review = page.inner_text("main")
    for fact in ("PT-2f91", "男", "70 岁", "原发性高血压", "青霉素", "王医生", "西湖区第一人民医院"):
        assert fact in review, fact
    assert page.evaluate("document.activeElement.id") == "do-accept"  # Enter accepts
    shot(page, "12-review-with-clinical-facts")
    counted.click("#do-accept")
    page.wait_for_selector("#dispense-form")
    assert page.evaluate("document.activeElement.id").startswith("scan-")  # ready for the scanner
    page.keyboard.type(CODE)
    page.keyboard.press("Enter")  # the scanner's Enter adds the code, and the field waits for the next
    assert CODE in page.input_value("textarea[name^=codes-]")
    shot(page, "13-dispense-form-with-a-scanned-code")
    counted.click("#do-dispense")
    page.wait_for_selector("#do-hand-over")
    dispensed = page.inner_text("#dispensed")
    assert CODE in dispensed and "李药师" in dispensed and "A-SOON" in dispensed
    shot(page, "14-dispensed-who-when-and-codes")
    counted.click("#do-hand-over")
    page.wait_for_url("**/worklist")
    assert "已交付：RX-B1" in page.inner_text(".flash.ok")
    shot(page, "15-handed-over-back-on-the-worklist")
    measured = {"clicks": counted.clicks, "page_loads": counted.loads}
    assert measured == {"clicks": 4, "page_loads": 4}  # it was 5 clicks and 5 page loads
    (SHOTS / "measure-mouse.json").write_text(json.dumps(measured))
    page.click("nav.tabs a:has-text('已交付')")
    page.wait_for_url("**tab=completed**")
    assert "RX-B1" in page.inner_text("#worklist")  # handed over, it stays in the history


def test_the_same_flow_by_keyboard_alone(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.wait_for_url("**/worklist")
    counted = Counter(page)
    assert page.evaluate("document.activeElement.id") == "q"  # the search field is ready
    counted.press("ArrowDown")  # to the first prescription (found by typing in the search field, if need be)
    assert page.evaluate("document.activeElement.textContent") == "RX-B1"
    counted.press("Enter")
    page.wait_for_selector("#do-accept")
    counted.press("Enter")
    page.wait_for_selector("#dispense-form")
    page.keyboard.type(CODE)
    counted.press("Enter")
    counted.press("Enter")  # the empty scan field: dispense
    page.wait_for_selector("#do-hand-over")
    counted.press("Enter")
    page.wait_for_url("**/worklist")
    assert "已交付：RX-B1" in page.inner_text(".flash.ok")
    assert counted.clicks == 0
    (SHOTS / "measure-keyboard.json").write_text(json.dumps({"keys": counted.keys, "page_loads": counted.loads}))


def test_a_new_prescription_appears_on_the_open_worklist_by_itself(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.wait_for_url("**/worklist")
    loads = Counter(page)
    send(desk["client"], desk["world"], rx("RX-NEW", nominated_pharmacy=desk["world"].a.sites["C1"]))
    page.wait_for_selector("#worklist a:has-text('RX-NEW')", timeout=10_000)
    assert loads.loads == 0 and "3" in page.inner_text("nav.tabs a.on")
    shot(page, "16-worklist-new-prescription-appeared")


def test_a_code_dispensed_elsewhere_is_refused_saying_where_and_when_and_the_form_keeps_it(desk, browser) -> None:
    client, world = desk["client"], desk["world"]
    elsewhere = send(client, world, rx("RX-C2", nominated_pharmacy=world.a.sites["C2"])).get_json()
    for step in ("accept", "prepare"):
        client.post(f"/api/prescriptions/{elsewhere['id']}/{step}", json={}, headers=world.a.headers("pharmacist_c2"))
    client.post(f"/api/prescriptions/{elsewhere['id']}/dispense", headers=world.a.headers("pharmacist_c2"),
                json={"items": [{"item_id": elsewhere["items"][0]["id"], "trace_codes": [CODE]}]})
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.goto(f"{desk['url']}/prescriptions/{desk['routed']['id']}")
    page.click("#do-accept")
    page.wait_for_selector("#dispense-form")
    page.focus("input[data-scan-into]")
    page.keyboard.type(CODE)
    page.keyboard.press("Enter")
    page.click("#do-dispense")
    page.wait_for_selector(".flash.error")
    said = page.inner_text(".flash.error")
    assert said == f"追溯码 {CODE} 已于 2026-11-23 12:00 在 Site A-C2 发出：同一盒药两次发出，可能是回流药或假药"
    assert CODE in page.input_value("textarea[name^=codes-]")  # kept as typed
    shot(page, "17-refused-code-dispensed-elsewhere")


def test_reject_asks_for_its_reason_and_confirms(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.goto(f"{desk['url']}/prescriptions/{desk['routed']['id']}")
    page.keyboard.press("r")  # the shortcut opens the dialog
    page.wait_for_selector("#reject-dialog[open]")
    assert page.input_value("#reject-reason") == ""  # no reason chosen for the pharmacist
    shot(page, "18-reject-asks-for-its-reason")
    page.click("#do-reject")  # the browser asks for the reason first: nothing is sent
    assert page.locator("#reject-dialog[open]").count() == 1
    page.select_option("#reject-reason", "allergy")
    page.fill("#reject-dialog textarea", "患者对青霉素过敏史需复核")
    page.click("#do-reject")
    page.wait_for_url("**/worklist")
    assert "已拒绝并退回处方医生：RX-B1" in page.inner_text(".flash.ok")


def test_a_controlled_drug_is_confirmed_by_a_second_pharmacist_before_it_is_handed_over(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.goto(f"{desk['url']}/prescriptions/{desk['controlled']['id']}")
    page.click("#do-accept")
    page.click("#do-dispense")
    page.wait_for_selector("#second-check")
    assert page.locator("#do-hand-over").count() == 0
    assert page.evaluate("document.activeElement.name") == "checker"
    shot(page, "19-second-check-asked")
    page.fill("input[name=checker]", "zhou")
    page.fill("input[name=checker_password]", PASSWORD)
    page.click("#do-second-check")
    page.wait_for_selector("#do-hand-over")
    assert "周药师" in page.inner_text("#dispensed")
    shot(page, "20-second-check-done")
    page.click("#do-hand-over")
    page.wait_for_url("**/worklist")


def pdf_text(page: Any) -> str:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(page.pdf(prefer_css_page_size=True, print_background=True)))
    return "".join(p.extract_text() or "" for p in reader.pages).replace(" ", "").replace("\n", "")


def test_labels_guidance_pick_list_and_packing_slip_print_to_pdf(desk, browser) -> None:
    client, world = desk["client"], desk["world"]
    rx_id = desk["routed"]["id"]
    for step in ("accept", "prepare", "dispense"):
        client.post(f"/api/prescriptions/{rx_id}/{step}", json={}, headers=world.a.headers("pharmacist"))
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.goto(f"{desk['url']}/prescriptions/{rx_id}")
    with page.expect_popup() as opened:
        page.click("#print-label")
    label = opened.value
    label.wait_for_load_state()
    shot(label, "21-print-label")
    text = pdf_text(label)
    for fact in ("苯磺酸氨氯地平片", "口服，每次5mg，每日1次", "北山街道社区卫生服务中心", "周一至周日8:00–17:00",
                 "PT-2f91"):
        assert fact in text, (fact, text)
    page.goto(f"{desk['url']}/prescriptions/{rx_id}/guidance")
    shot(page, "22-print-guidance-sheet")
    text = pdf_text(page)
    for fact in ("用药指导单", "苯磺酸氨氯地平片", "口服，每次5mg，每日1次", "0571-8702-2601", "青霉素"):
        assert fact in text, (fact, text)
    order = desk["transfer"]
    page.goto(f"{desk['url']}/transfers/{order['id']}/pick-list")
    shot(page, "23-print-pick-list")
    text = pdf_text(page)
    assert "拣货单" in text and order["number"] in text and "SiteA-C2" in text
    assert "A-NEAR2027-02-1030" in text  # the lot held for it, its expiry and the units to pick
    client.post(f"/api/transfer-orders/{order['id']}/ship", headers=world.a.headers("pharmacist"))
    page.goto(f"{desk['url']}/transfers/{order['id']}/packing-slip")
    shot(page, "24-print-packing-slip")
    text = pdf_text(page)
    assert "装箱单" in text and order["number"] in text and "A-NEAR2027-02-1030" in text


def test_stock_lots_write_off_receipt_outside_an_order_and_alerts(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.click("header >> text=库存")
    rows = page.locator("#stock tr[data-lot]")
    assert page.locator("#stock tr.soon[data-lot=A-SOON]").count() == 1
    assert page.locator("#stock tr.near[data-lot=A-NEAR]").count() == 1 and rows.count() >= 4
    drug_row = page.inner_text("#stock tr.drug >> nth=0")
    # On hand 400; held 86 (56 for RX-B1, 30 for the transfer); available 314; nothing on order or on its way.
    assert drug_row.split("\t")[-5:] == ["400", "86", "314", "0", "0"]
    shot(page, "25-stock-position-and-expiry-bands")
    page.fill("#q", "near")
    page.keyboard.press("Enter")
    page.wait_for_url("**/stock?q=near")
    assert page.locator("#stock tr[data-lot]").count() == 1
    page.click("text=A-NEAR")
    page.select_option("select[name=reason_code]", "damaged")
    page.fill("input[name=quantity]", "2")
    page.fill("input[name=note]", "摔碎两盒")
    page.click("#do-write-off")
    page.wait_for_selector(".flash.ok")
    assert "摔碎两盒" in page.inner_text("#movements") and "李药师" in page.inner_text("#movements")
    shot(page, "26-lot-history-after-a-write-off")
    page.goto(f"{desk['url']}/stock/receive")
    page.select_option("select[name=reason_code]", "patient_return")
    page.fill("input[name=drug]", "AML5 苯磺酸氨氯地平片")
    page.fill("input[name=lot_number]", "A-NEAR")
    page.fill("input[name=expiry_date]", "2027-02-10")
    page.fill("input[name=quantity]", "7")
    page.click("#do-receive")
    page.wait_for_selector(".flash.ok")
    shot(page, "27-received-outside-an-order")
    page.click("header >> text=提醒")
    assert "A-SOON" in page.inner_text("#alerts")
    shot(page, "28-alerts")
    page.locator("#alerts button").first.click()
    page.wait_for_selector(".flash.ok")
    page.click("nav.tabs a:has-text('已确认')")
    assert "李药师" in page.inner_text("#alerts")
    shot(page, "29-alerts-acknowledged")


def test_receiving_takes_a_scan_and_keeps_a_refused_delivery_typed(desk, browser) -> None:
    client, world, aml = desk["client"], desk["world"], desk["aml"]
    officer = world.a.headers("procurement")
    supplier = client.post("/api/suppliers", json={"code": "S1", "name": "华东医药"}, headers=officer).get_json()
    offer = client.post("/api/offers", headers=officer, json={
        "supplier_id": supplier["id"], "drug_id": aml["id"], "pack_size": 28, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 30.0}]}).get_json()
    order = client.post("/api/purchase-orders", headers=officer, json={
        "supplier_id": supplier["id"], "lines": [{"site_id": world.a.sites["C1"], "offer_id": offer["id"],
                                                  "packs": 2}]}).get_json()
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.click("header >> text=收货")
    assert desk["transfer"]["number"] in page.inner_text("#transfers") and "Site A-C2" in page.inner_text("#transfers")
    form = f"#delivery-{order['id']}"
    page.fill(f"{form} input[name^=expiry-]", "2028-03-31")
    page.focus(f"{form} input[data-scan-into]")
    page.keyboard.type(CODE)
    page.keyboard.press("Enter")
    page.click(f"{form} button[type=submit]")  # no lot number: refused, naming the drug, the delivery kept
    page.wait_for_selector(".flash.error")
    assert "苯磺酸氨氯地平片：请填写包装上印的批号" in page.inner_text(".flash.error")
    assert page.input_value(f"{form} input[name^=expiry-]") == "2028-03-31"
    assert CODE in page.input_value(f"{form} textarea")
    shot(page, "30-receiving-refused-and-kept")
    page.fill(f"{form} textarea", "")
    page.fill(f"{form} input[name^=expiry-]", "")
    page.focus(f"{form} input[data-scan-into]")
    page.keyboard.type("(01)06901234567892(17)280331(10)PO-7(21)A1")  # a GS1 code prints its lot and expiry
    page.keyboard.press("Enter")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(".flash.ok")
    shot(page, "30-receiving")
    lots = client.get(f"/api/inventory/lots?drug_id={aml['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert ("PO-7", "2028-03-31", 56) in [(x["lot_number"], x["expiry_date"], x["quantity"]) for x in lots]


def test_a_transfer_arrives_with_units_broken_and_the_receiver_says_so_lot_by_lot(desk, browser) -> None:
    client, world, order = desk["client"], desk["world"], desk["transfer"]
    app = client.application
    create_user(UnitOfWork(app.extensions["pharmacy_db"].session_factory, system_for(world.a.consortium_id),
                           app.config["CLOCK"]), world.a.consortium_id, "zhao", PASSWORD, Role.PHARMACIST,
                world.a.sites["C2"], "赵药师")
    assert client.post(f"/api/transfer-orders/{order['id']}/ship", headers=world.a.headers("pharmacist"),
                       json={}).status_code == 200
    page = new_page(browser)
    sign_in(page, desk["url"], "zhao")
    page.click("header >> text=收货")
    form = f"#receive-form-{order['id']}"
    assert page.input_value(f"{form} input[name^=arrived-]") == "30"
    page.fill(f"{form} input[name^=arrived-]", "28")
    page.fill(f"{form} input[name^=lost-]", "2")
    page.select_option(f"{form} select[name^=reason-]", "damaged")
    page.fill(f"{form} input[name^=note-]", "外箱受潮")
    shot(page, "31-receiving-a-transfer-with-losses")
    page.click(f"#receive-{order['id']}")
    page.wait_for_selector(".flash.ok")
    assert "2" in page.inner_text(".flash.ok") and order["number"] not in page.inner_text("#transfers")
    parcels = client.get(f"/api/transfer-orders/{order['id']}", headers=world.a.headers("procurement")).get_json()[
        "parcels"]
    assert [(p["received"], p["lost"]) for p in parcels] == [(28, 2)]


def test_a_prescriber_follows_the_prescriptions_and_cancels_one(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "dr")
    page.wait_for_url("**/sent")
    listed = page.inner_text("#sent")
    assert "RX-B1" in listed and "北山街道社区卫生服务中心" in listed and "待审核" in listed
    shot(page, "31-prescriber-sent")
    page.click("text=RX-C1")
    page.wait_for_selector("#cancel-form")
    assert "处方医生已发出" in page.inner_text("#events")
    shot(page, "32-prescriber-prescription")
    page.fill("#cancel-form input[name=note]", "患者改用其他药物")
    page.click("#do-cancel")
    page.wait_for_selector(".flash.ok")
    assert "已撤销：RX-C1" in page.inner_text(".flash.ok")


@pytest.mark.parametrize(("name", "width", "height"), [("phone", 390, 844), ("tablet", 820, 1180)])
def test_the_pages_fit_a_phone_and_a_tablet(desk, browser, name, width, height) -> None:
    page = new_page(browser, width, height)
    sign_in(page, desk["url"], "li")
    page.wait_for_url("**/worklist")
    assert page.evaluate("document.querySelector('header').getBoundingClientRect().height") < 56  # one line
    # No column header stacks its letters one a line: each is at most two lines high.
    heights = page.evaluate("[...document.querySelectorAll('#worklist th')].filter(t => t.offsetParent)"
                            ".map(t => t.getBoundingClientRect().height)")
    assert heights and max(heights) < 48, heights
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1  # nothing pushes the page sideways
    shot(page, f"33-{name}-worklist")
    page.goto(f"{desk['url']}/prescriptions/{desk['routed']['id']}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    shot(page, f"34-{name}-review")
    page.goto(f"{desk['url']}/stock")
    shot(page, f"35-{name}-stock")


def test_english_pages_say_statuses_in_words(desk, browser) -> None:
    page = new_page(browser)
    sign_in(page, desk["url"], "li")
    page.click("#lang")
    page.goto(f"{desk['url']}/worklist?tab=partially_dispensed")
    tabs = page.inner_text("nav.tabs")
    assert "partially dispensed" in tabs and "awaiting stock" in tabs and "_" not in tabs
    page.goto(f"{desk['url']}/no-such-page")
    assert "There is no such page." in page.inner_text("main")
    shot(page, "36-english-unknown-page")


MAIN_PAGES = ("/worklist", "/prescriptions/{routed}", "/stock", "/alerts", "/receiving", "/stock/receive",
              "/prescriptions/{routed}/label", "/prescriptions/{routed}/guidance", "/stocktake", "/dashboard")


def test_the_main_pages_have_no_serious_or_critical_accessibility_violations(desk, browser) -> None:
    page = new_page(browser)
    found: dict[str, list[dict[str, Any]]] = {}
    counts: dict[str, dict[str, list[str]]] = {}

    def check(path: str) -> None:
        page.goto(desk["url"] + path)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        impacts: dict[str, list[str]] = {}
        for violation in result["violations"]:
            impacts.setdefault(violation["impact"], []).append(violation["id"])
        counts[path] = impacts
        found[path] = [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
                       for v in result["violations"] if v["impact"] in ("serious", "critical")]

    check("/login")
    sign_in(page, desk["url"], "li")
    page.wait_for_url("**/worklist")
    for path in MAIN_PAGES:
        check(path.format(routed=desk["routed"]["id"]))
    page.goto(desk["url"] + "/prescriptions/" + str(desk["routed"]["id"]))
    page.click("#open-reject")
    page.add_script_tag(path=str(AXE))
    dialog = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    found["reject dialog"] = [{"id": v["id"], "impact": v["impact"]} for v in dialog["violations"]
                              if v["impact"] in ("serious", "critical")]
    page.goto(desk["url"] + "/logout")
    page.context.clear_cookies()
    sign_in(page, desk["url"], "dr")
    page.wait_for_url("**/sent")
    check("/sent")
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe.json").write_text(json.dumps({"violations_by_impact": counts, "serious_or_critical": found},
                                               ensure_ascii=False, indent=1))
    assert {path: v for path, v in found.items() if v} == {}
