"""Every unit counted once where one part of the supply chain hands over to the next."""

from __future__ import annotations

import pytest

from pharmacy.principal import SYSTEM
from pharmacy.procurement.services import raise_low_stock_alerts
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_prescriptions import factory, stock
from tests.api.test_procurement import history
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
