"""The pages in a real browser (the machine's Chromium, driven by Playwright): a pharmacist dispenses a routed
prescription end to end; an officer runs a plan, watches its progress and approves it. Screenshots of the
main pages are saved for review in ``$SCREENSHOT_DIR`` (default ``build/screenshots``)."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from pharmacy.accounts.services import create_user
from pharmacy.clock import FixedClock
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import rx, send, stock
from tests.api.test_procurement import history
from tests.factories import add_drug, build_world

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "build" / "screenshots")
PASSWORD = "a good password"

# On a developer's machine without a browser these tests skip; CI sets REQUIRE_BROWSER_TESTS=1 so that they can
# never be skipped there unseen.
REQUIRED = os.environ.get("REQUIRE_BROWSER_TESTS") == "1"
INSTALL = "install it with `apt-get install -y chromium fonts-wqy-zenhei`, or point CHROMIUM at one"


def _without_browser(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why} (REQUIRE_BROWSER_TESTS=1): {INSTALL}", pytrace=False)
    pytest.skip(f"browser tests skipped: {why}; {INSTALL}")


try:
    import playwright.sync_api as playwright_sync
    MISSING = None if Path(CHROMIUM).exists() else f"Chromium not found at {CHROMIUM}"
except ImportError:
    MISSING = "Playwright is not installed"
if MISSING and REQUIRED:
    _without_browser(MISSING)
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests skipped: {MISSING}; {INSTALL}")


@pytest.fixture
def site(committed_app: Flask) -> Iterator[dict[str, Any]]:
    """The app served on a free port in a thread, with a consortium, two users, stock, offers and history."""
    from datetime import UTC, datetime

    app = committed_app
    app.config["CLOCK"] = FixedClock(datetime(2026, 11, 23, 4, 0, tzinfo=UTC))
    app.extensions["plan_runner"].mode = "thread"  # the officer watches the run's progress
    client = app.test_client()
    factory = app.extensions["pharmacy_db"].session_factory
    world = build_world(factory)
    uow = UnitOfWork(factory, system_for(world.a.consortium_id))
    create_user(uow, world.a.consortium_id, "li", PASSWORD, Role.PHARMACIST, world.a.sites["C1"], "李药师")
    create_user(uow, world.a.consortium_id, "wang", PASSWORD, Role.PROCUREMENT, None, "王采购")
    aml = add_drug(client, world.a, "AML5", generic_name="氨氯地平片", pack_size=28)
    stock(client, world, "C1", aml, "A-LATE", "2028-01-31", 300)
    stock(client, world, "C2", aml, "A-NEAR", "2026-12-20", 200)
    history(client, world, "C1", aml, [8, 12, 10, 9] * 7)
    stock(client, world, "C1", aml, "A-SOON", "2027-03-31", 40)  # after the history, which used older stock
    headers = world.a.headers("procurement")
    supplier = client.post("/api/suppliers", json={"code": "S1", "name": "华东医药"}, headers=headers).get_json()
    client.post("/api/offers", headers=headers, json={
        "supplier_id": supplier["id"], "drug_id": aml["id"], "pack_size": 28, "valid_from": "2026-11-01",
        "valid_until": "2027-10-31", "tiers": [{"min_packs": 0, "price_per_pack": 30.0},
                                               {"min_packs": 10, "price_per_pack": 27.0}]})
    routed = send(client, world, rx("RX-B1", items=[{"drug_code": "AML5", "quantity": 56, "supply_days": 7}],
                                    nominated_pharmacy=world.a.sites["C1"])).get_json()
    assert routed["status"] == "routed"
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}", "prescription": routed, "world": world}
    finally:
        server.shutdown()
        app.extensions["plan_runner"].shutdown()
        app.extensions["plan_runner"].mode = "inline"
        app.config.pop("CLOCK", None)


@pytest.fixture
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except playwright_sync.Error as error:
            _without_browser(f"Chromium at {CHROMIUM} cannot start ({str(error).splitlines()[0]})")
        try:
            yield launched
        finally:
            launched.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, url: str, username: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_pharmacist_dispenses_a_routed_prescription_end_to_end(site, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{site['url']}/login")
    assert page.locator("h1").inner_text() == "登录"
    shot(page, "01-login")
    sign_in(page, site["url"], "li")
    page.wait_for_url("**/worklist")
    assert "待审核 1" in page.inner_text("nav.tabs")
    shot(page, "02-worklist")
    page.click("text=RX-B1")
    page.wait_for_selector("#do-accept")
    main = page.inner_text("main")
    assert "P-7f3a" in main and "处方医生指定" in main and "已分配至 Site A-C1" in main
    assert "nominated by the prescriber" not in main  # nothing said in English on a Chinese page
    shot(page, "03-prescription-routed")
    page.click("#do-accept")
    page.wait_for_selector("#do-prepare")
    page.click("#do-prepare")
    page.wait_for_selector("#dispense-form")
    shot(page, "04-dispense-form")
    # The dispense form is pre-filled first-expiry first-out: the lot expiring sooner gives first.
    soon = page.locator("tr", has_text="A-SOON").locator("input")
    late = page.locator("tr", has_text="A-LATE").locator("input")
    assert (soon.input_value(), late.input_value()) == ("40", "16")
    shot(page, "04-dispense-form")
    page.click("#do-dispense")
    page.wait_for_selector("#do-hand-over")
    assert "A-SOON" in page.inner_text("main")
    page.click("#do-hand-over")
    page.wait_for_selector(".flash.ok")
    assert "已交付：RX-B1" in page.inner_text(".flash.ok")
    shot(page, "05-prescription-completed")
    page.click("text=库存")
    assert page.locator("tr.near").count() == 0  # C1's lots are far from expiry
    shot(page, "06-stock")
    page.click("#lang")
    assert "Stock" in page.inner_text("h1")


def test_an_officer_runs_a_plan_watches_it_and_approves_it(site, browser) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    sign_in(page, site["url"], "wang")
    page.wait_for_url("**/plans")
    page.fill("input[name=history_days]", "28")
    page.click("#start-plan")
    page.wait_for_url("**/plans/*")
    # The run goes on in the background; the page follows it and shows the plan when it is done.
    page.wait_for_selector("#saving", timeout=90_000)
    assert page.locator("#purchases tbody tr").count() >= 1, page.inner_text("main")
    assert page.locator("#cost-chart").is_visible()
    shot(page, "07-plan")
    # The transfers' tab and sorting the lines swap the table in place (htmx), without reloading the page.
    page.click("#tab-transfer")
    page.wait_for_selector("#transfers")
    page.click("#transfers th >> text=数量")
    page.wait_for_selector("#transfers th >> text=▼")
    asked: list[str] = []  # approval cannot be undone: the page asks first
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#approve")
    page.wait_for_selector(".flash.ok")
    assert "已批准" in page.inner_text("main")
    shot(page, "08-plan-approved")
    page.click("text=运营看板")
    page.wait_for_selector("#savings-chart")
    shot(page, "09-dashboard")
    page.click("text=供应商与报价")
    assert "华东医药" in page.inner_text("main")
    shot(page, "10-suppliers")
    page.click("#lang")
    assert "Suppliers and offers" in page.inner_text("h1")
