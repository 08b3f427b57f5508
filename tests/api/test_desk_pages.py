"""A community pharmacist's day on the pages, and a prescriber's, over HTTP: each refusal the pharmacists met is
reproduced and now handled on its page (in its language, with what was typed, never a 404 or a 500)."""

from __future__ import annotations

import html
import re

import pytest

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_pages import PASSWORD, flashed_error, sign_in, token
from tests.api.test_prescriptions import act, factory, rx, send, stock
from tests.api.test_prescriptions import drugs as drugs  # a fixture
from tests.api.test_procurement import market as market  # a fixture
from tests.factories import World

pytestmark = pytest.mark.usefixtures("clock")
CLINICAL = {"diagnoses": [{"code": "I10", "display": "原发性高血压"}],
            "allergies": [{"substance": "青霉素", "reaction": "皮疹", "criticality": "high"}]}
PATIENT = {"ref": "P-7f3a", "district": "D1", "latitude": 30.26, "longitude": 120.14, "birth_date": "1958-03-09",
           "gender": "female"}


@pytest.fixture
def people(client, world: World) -> None:
    uow = UnitOfWork(factory(client), system_for(world.a.consortium_id))
    for username, name, role, site in (("li", "李药师", Role.PHARMACIST, "C1"),
                                       ("zhou", "周药师", Role.PHARMACIST, "C1"),
                                       ("zhao", "赵药师", Role.PHARMACIST, "C2"),
                                       ("dr", "王医生", Role.PRESCRIBER, "LEAD")):
        create_user(uow, world.a.consortium_id, username, PASSWORD, role, world.a.sites[site], name)


def page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[-800:])
    return response.get_data(as_text=True)


def text_of(body: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def post(client, path: str, data: dict, *, from_page: str | None = None, follow: bool = True):
    form = client.get(from_page or path.rsplit("/", 1)[0]).get_data(as_text=True)
    return client.post(path, data={"csrf_token": token(form), **data}, follow_redirects=follow)


def test_the_review_shows_age_sex_diagnosis_allergies_and_prescriber_to_the_holding_pharmacy_only(
        client, world, drugs, people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(patient=PATIENT, nominated_pharmacy=world.a.sites["C1"], **CLINICAL)).get_json()
    sign_in(client, "li")
    review = text_of(page(client, f"/prescriptions/{created['id']}"))
    for fact in ("P-7f3a", "女", "68 岁", "原发性高血压", "青霉素", "皮疹", "高风险", "Dr. Wang", "Site A-LEAD"):
        assert fact in review, fact
    # Reject asks for its reason: no reason is chosen for the pharmacist, and the dialog confirms.
    body = page(client, f"/prescriptions/{created['id']}")
    assert re.search(r'<option value="" selected>', body) and 'id="do-reject"' in body and "<dialog" in body
    assert '<button type="submit" id="do-accept" class="primary" data-key="a" autofocus>' in body
    # Another pharmacy does not see the prescription at all; it answers as a page.
    client.post("/logout", data={"csrf_token": token(body)})
    sign_in(client, "zhao")
    other = client.get(f"/prescriptions/{created['id']}")
    assert other.status_code == 404 and "青霉素" not in other.get_data(as_text=True)


def test_a_rejection_without_its_reason_is_refused_on_the_page_and_nothing_changes(client, world, drugs,
                                                                                people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(nominated_pharmacy=world.a.sites["C1"])).get_json()
    sign_in(client, "li")
    here = f"/prescriptions/{created['id']}"
    refused = post(client, f"{here}/reject", {"reason_code": "", "note": "看不清"}, from_page=here)
    assert refused.status_code == 422
    said = flashed_error(refused.get_data(as_text=True))
    assert said.startswith("审核不通过需要说明理由") and "过敏" in said
    assert "看不清" in refused.get_data(as_text=True) and "data-open" in refused.get_data(as_text=True)
    assert act(client, world, created["id"], "accept").status_code == 200  # still routed: nothing was done
    done = post(client, f"/prescriptions/{created['id']}/return", {"reason_code": "staff", "note": "今天缺人"},
                from_page=here)
    # A return lands on the worklist, which remembers it in its history (not on a 404 of a prescription gone).
    assert done.status_code == 200 and done.request.path == "/worklist"
    assert "已退回" in done.get_data(as_text=True)
    returned = text_of(page(client, "/worklist?tab=returned"))
    assert "RX-1" in returned and "人员不足" in returned and "今天缺人" in returned and "李药师" in returned


def test_the_worklist_finds_by_number_patient_and_drug_and_keeps_a_history(client, world, drugs, people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    stock(client, world, "C1", drugs["MTF"], "M1", "2027-06-30", 100)
    first = send(client, world, rx("RX-A", nominated_pharmacy=world.a.sites["C1"])).get_json()
    send(client, world, rx("RX-B", patient={**PATIENT, "ref": "P-0b22"}, nominated_pharmacy=world.a.sites["C1"],
                           items=[{"drug_code": "MTF500", "quantity": 48, "supply_days": 7}]))
    for step in ("accept", "prepare", "dispense", "hand-over"):
        act(client, world, first["id"], step)
    sign_in(client, "li")
    listed = text_of(page(client, "/worklist"))
    assert "RX-B" in listed and "二甲双胍片" in listed and "2026-11-23 12:00" in listed  # drug names, Beijing time
    assert "RX-A" not in listed
    for q in ("RX-B", "P-0b22", "ejsg", "二甲双胍"):  # number, patient, pinyin initials, name
        assert "RX-B" in text_of(page(client, f"/worklist?q={q}")), q
    assert "RX-B" not in text_of(page(client, "/worklist?q=氨氯地平"))
    history = text_of(page(client, "/worklist?tab=completed"))
    assert "RX-A" in history and "氨氯地平片" in history
    # The rows the page polls for are the same, by themselves.
    live = client.get("/worklist/live?tab=routed")
    assert live.status_code == 200 and "RX-B" in live.get_data(as_text=True) and "hx-trigger" in \
        live.get_data(as_text=True)
    client.get("/lang/en?next=/worklist")
    english = text_of(page(client, "/worklist?tab=partially_dispensed"))
    assert "partially dispensed" in english and "partially_dispensed" not in english


def test_a_refused_dispense_keeps_the_quantities_and_codes_typed(client, world, drugs, people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(nominated_pharmacy=world.a.sites["C1"])).get_json()
    act(client, world, created["id"], "accept")
    sign_in(client, "li")
    here = f"/prescriptions/{created['id']}"
    body = page(client, here)
    lot_field = re.search(r'name="(lot-\d+-\d+)"', body).group(1)  # type: ignore[union-attr]
    item = lot_field.split("-")[1]
    # Accepted, the form prepares and dispenses at once; 30 units is more than the 28 prescribed.
    refused = post(client, f"{here}/dispense", {lot_field: "30", f"changed-{item}": "1", f"reason-{item}": "整盒",
                                                 f"codes-{item}": "81000000000000000001", "status": "accepted"},
                   from_page=here)
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert "本次还可发 28，不是 30" in flashed_error(body) and "药品条目" not in flashed_error(body)
    assert f'name="{lot_field}" value="30"' in body and "81000000000000000001" in body and 'value="整盒"' in body
    done = post(client, f"{here}/dispense", {lot_field: "28", f"codes-{item}": "81000000000000000001",
                                              "status": "accepted"}, from_page=here)
    assert done.status_code == 200
    shown = text_of(done.get_data(as_text=True))
    assert "81000000000000000001" in shown and "李药师" in shown  # the code, and who dispensed when
    assert 'id="do-hand-over"' in done.get_data(as_text=True)


def test_a_code_dispensed_before_is_refused_on_the_page_saying_where_and_when(client, world, drugs,
                                                                            people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    code = "81000000000000000009"
    first = send(client, world, rx("RX-1", nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare"):
        act(client, world, first["id"], step)
    act(client, world, first["id"], "dispense", {"items": [{"item_id": first["items"][0]["id"],
                                                            "trace_codes": [code]}]})
    second = send(client, world, rx("RX-2", nominated_pharmacy=world.a.sites["C1"])).get_json()
    act(client, world, second["id"], "accept")
    sign_in(client, "li")
    here = f"/prescriptions/{second['id']}"
    body = page(client, here)
    lot_field = re.search(r'name="(lot-\d+-\d+)"', body).group(1)  # type: ignore[union-attr]
    item = lot_field.split("-")[1]
    refused = post(client, f"{here}/dispense", {lot_field: "28", f"codes-{item}": code, "status": "accepted"},
                   from_page=here)
    assert refused.status_code == 422
    assert flashed_error(refused.get_data(as_text=True)) == \
        f"追溯码 {code} 已于 2026-11-23 12:00 在 Site A-C1 发出：同一盒药两次发出，可能是回流药或假药"


def test_a_controlled_drug_waits_for_a_second_pharmacist_before_it_is_handed_over(client, world, drugs,
                                                                                people) -> None:
    stock(client, world, "C1", drugs["DZP"], "D1", "2027-06-30", 100)
    created = send(client, world, rx(items=[{"drug_code": "DZP2.5", "quantity": 6, "supply_days": 3}],
                                     nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare"):
        act(client, world, created["id"], step)
    sign_in(client, "li")
    here = f"/prescriptions/{created['id']}"
    post(client, f"{here}/dispense", {}, from_page=here)
    body = page(client, here)
    assert 'id="second-check"' in body and 'id="do-hand-over"' not in body
    # The service refuses a hand-over without it whatever the page shows.
    refused = post(client, f"{here}/hand-over", {}, from_page=here)
    assert refused.status_code == 422 and "须经第二名药师核对" in flashed_error(refused.get_data(as_text=True))
    # Not the pharmacist who dispensed, and not with a wrong password.
    same = post(client, f"{here}/second-check", {"checker": "li", "checker_password": PASSWORD}, from_page=here)
    assert same.status_code == 422 and "发药人" in flashed_error(same.get_data(as_text=True))
    wrong = post(client, f"{here}/second-check", {"checker": "zhou", "checker_password": "nope nope"}, from_page=here)
    assert wrong.status_code == 422 and "用户名或密码错误" in flashed_error(wrong.get_data(as_text=True))
    other_site = post(client, f"{here}/second-check", {"checker": "zhao", "checker_password": PASSWORD},
                      from_page=here)
    assert other_site.status_code == 422
    checked = post(client, f"{here}/second-check", {"checker": "zhou", "checker_password": PASSWORD}, from_page=here)
    assert checked.status_code == 200 and "周药师" in text_of(checked.get_data(as_text=True))
    handed = post(client, f"{here}/hand-over", {}, from_page=here)
    assert handed.request.path == "/worklist" and "已交付" in handed.get_data(as_text=True)
    after = text_of(page(client, here))
    assert "李药师" in after and "周药师" in after and "2026-11-23 12:00" in after


def test_receiving_refuses_an_empty_lot_number_naming_the_drug_and_keeps_the_delivery_typed(
        client, world, people, market) -> None:
    order = client.post("/api/purchase-orders", headers=world.a.headers("procurement"), json={
        "supplier_id": market["s1"]["id"], "lines": [{"site_id": world.a.sites["C1"],
                                                      "offer_id": market["offers"][0]["id"], "packs": 2}]})
    assert order.status_code == 201, order.get_json()
    order_id = order.get_json()["id"]
    sign_in(client, "li")
    drug = market["aml"]["id"]
    typed = {f"qty-{drug}": "56", f"lot-{drug}": "", f"expiry-{drug}": "2028-03-31",
             f"codes-{drug}": "81000000000000000001"}
    refused = post(client, f"/purchase-orders/{order_id}/receive", typed, from_page="/receiving")
    assert refused.status_code == 422
    said = flashed_error(refused.get_data(as_text=True))
    assert said == "到货与采购单不符；本次未收货 · AML5 氨氯地平片：请填写包装上印的批号"
    body = refused.get_data(as_text=True)
    assert 'value="2028-03-31"' in body and "81000000000000000001" in body and 'value="56"' in body
    # A GS1 code printing its lot and expiry fills them in when they are left blank.
    gs1 = "(01)06901234567892(17)280331(10)PO-7(21)A1"
    done = post(client, f"/purchase-orders/{order_id}/receive",
                {f"qty-{drug}": "56", f"lot-{drug}": "", f"expiry-{drug}": "", f"codes-{drug}": gs1},
                from_page="/receiving")
    assert done.status_code == 200, flashed_error(done.get_data(as_text=True))
    lots = client.get(f"/api/inventory/lots?drug_id={drug}&site_id={world.a.sites['C1']}",
                      headers=world.a.headers("pharmacist")).get_json()
    assert ("PO-7", "2028-03-31", 56) in [(x["lot_number"], x["expiry_date"], x["quantity"]) for x in lots]


def test_a_transfer_is_received_lot_by_lot_with_what_did_not_arrive_whole_and_why(
        client, world, drugs, people) -> None:
    stock(client, world, "C2", drugs["AML5"], "TR-1", "2027-09-30", 100)
    officer = world.a.headers("procurement")
    made = client.post("/api/transfer-orders", headers=officer, json={
        "from_site_id": world.a.sites["C2"], "to_site_id": world.a.sites["C1"],
        "lines": [{"drug_id": drugs["AML5"]["id"], "quantity": 40}]})
    assert made.status_code == 201, made.get_json()
    order = made.get_json()["order"]
    assert client.post(f"/api/transfer-orders/{order['id']}/ship", headers=world.a.headers("pharmacist_c2"),
                       json={}).status_code == 200
    parcel = client.get(f"/api/transfer-orders/{order['id']}", headers=officer).get_json()["parcels"][0]["id"]
    sign_in(client, "li")
    here = "/receiving"
    shown = page(client, here)
    assert f'name="arrived-{parcel}" value="40"' in shown and "TR-1" in shown
    path = f"/transfers/{order['id']}/receive"
    # Nothing arriving and nothing declared: refused, nothing received.
    empty = post(client, path, {f"arrived-{parcel}": "0", f"lost-{parcel}": "0"}, from_page=here)
    assert empty.status_code == 422 and "未收货" in flashed_error(empty.get_data(as_text=True))
    # Units lost without a reason the service knows: refused, and what was typed is kept.
    unsaid = post(client, path, {f"arrived-{parcel}": "35", f"lost-{parcel}": "5", f"reason-{parcel}": "",
                                 f"note-{parcel}": "箱角压坏"}, from_page=here)
    assert unsaid.status_code == 422
    assert f'name="lost-{parcel}" value="5"' in unsaid.get_data(as_text=True) and "箱角压坏" in unsaid.get_data(
        as_text=True)
    done = post(client, path, {f"arrived-{parcel}": "35", f"lost-{parcel}": "5", f"reason-{parcel}": "damaged",
                               f"note-{parcel}": "箱角压坏"}, from_page=here)
    assert done.status_code == 200 and "5" in done.get_data(as_text=True)
    received = client.get(f"/api/transfer-orders/{order['id']}", headers=officer).get_json()
    assert received["order"]["status"] == "received"
    assert [(p["received"], p["lost"]) for p in received["parcels"]] == [(35, 5)]
    lots = client.get(f"/api/inventory/lots?drug_id={drugs['AML5']['id']}&site_id={world.a.sites['C1']}",
                      headers=world.a.headers("pharmacist")).get_json()
    assert [(x["lot_number"], x["quantity"]) for x in lots] == [("TR-1", 35)]
    lot = lots[0]["id"]
    moves = client.get(f"/api/inventory/lots/{lot}/movements", headers=world.a.headers("pharmacist")).get_json()[
        "movements"]
    assert ("transit_loss", -5, "damaged", "箱角压坏") in [
        (m["kind"], m["quantity"], m["reason_code"], m["note"]) for m in moves]


def test_stock_shows_the_position_days_to_expiry_and_each_lots_history(client, world, drugs, people, clock) -> None:
    stock(client, world, "C1", drugs["AML5"], "SOON", "2026-12-10", 40)
    stock(client, world, "C1", drugs["AML5"], "NEAR", "2027-02-10", 60)
    stock(client, world, "C1", drugs["AML5"], "LATE", "2028-01-31", 100)
    send(client, world, rx(nominated_pharmacy=world.a.sites["C1"]))  # holds 28 of SOON
    sign_in(client, "li")
    body = page(client, "/stock")
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr class="([a-z]*)" data-lot="([^"]+)"', body)}
    assert 'class="soon" data-lot="SOON"' in body and 'class="near" data-lot="NEAR"' in body
    assert 'class="" data-lot="LATE"' in body and rows
    shown = text_of(body)
    assert re.search(r"氨氯地平片\s+AML5\s+200\s+28\s+172\s+0\s+0", shown), shown[:2000]
    assert re.search(r"SOON\s+2026-12-10\s+18", shown)  # 18 days left, today counted
    assert "SOON" not in text_of(page(client, "/stock?q=LATE")) and "LATE" in text_of(page(client, "/stock?q=late"))
    lot = re.search(r'href="/stock/lots/(\d+)">NEAR<', body).group(1)  # type: ignore[union-attr]
    card = text_of(page(client, f"/stock/lots/{lot}"))
    assert "入库" in card and "+60" in card and "2026-11-23 12:00" in card


def test_a_write_off_needs_its_reason_and_is_recorded_on_the_lots_history(client, world, drugs, people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 50)
    sign_in(client, "li")
    lot = re.search(r'href="/stock/lots/(\d+)">L1<', page(client, "/stock")).group(1)  # type: ignore[union-attr]
    here = f"/stock/lots/{lot}"
    refused = post(client, f"{here}/write-off", {"reason_code": "", "quantity": "5", "note": "摔碎"}, from_page=here)
    assert refused.status_code == 422 and "报损需要说明原因" in flashed_error(refused.get_data(as_text=True))
    assert 'value="摔碎"' in refused.get_data(as_text=True)
    done = post(client, f"{here}/write-off", {"reason_code": "damaged", "quantity": "5", "note": "摔碎"},
                from_page=here)
    assert done.status_code == 200
    card = text_of(done.get_data(as_text=True))
    assert "-5" in card and "破损" in card and "摔碎" in card and "李药师" in card


def test_stock_comes_in_outside_an_order_from_a_patient_or_a_donation(client, world, drugs, people) -> None:
    sign_in(client, "li")
    refused = post(client, "/stock/receive", {"reason_code": "", "drug": "AML5 氨氯地平片", "lot_number": "G1",
                                              "expiry_date": "2027-08-31", "quantity": "30"},
                   from_page="/stock/receive")
    assert refused.status_code == 422 and 'value="G1"' in refused.get_data(as_text=True)
    gs1 = "(01)06901234567892(17)270831(10)G1(21)SN1"
    done = post(client, "/stock/receive", {"reason_code": "donation", "drug": "AML5 氨氯地平片", "lot_number": "",
                                           "expiry_date": "", "quantity": "30", "codes": gs1},
                from_page="/stock/receive")
    assert done.status_code == 200, flashed_error(done.get_data(as_text=True))
    lots = client.get("/api/inventory/lots", headers=world.a.headers("pharmacist")).get_json()
    assert [(x["lot_number"], x["expiry_date"], x["quantity"]) for x in lots] == [("G1", "2027-08-31", 30)]


def test_the_alerts_page_lists_the_sites_alerts_and_an_acknowledged_one_leaves_the_open_list(
        client, world, drugs, people, app, clock) -> None:
    from pharmacy.procurement.services import raise_near_expiry_alerts

    stock(client, world, "C1", drugs["AML5"], "SOON", "2026-12-10", 40)
    stock(client, world, "C2", drugs["AML5"], "THEIRS", "2026-12-10", 40)
    raise_near_expiry_alerts(UnitOfWork(factory(client), system_for(world.a.consortium_id), clock), 90)
    sign_in(client, "li")
    body = page(client, "/alerts")
    shown = text_of(body)
    assert "Site A-C1 的 AML5 批号 SOON 共 40，17 天后过期" in shown and "THEIRS" not in shown
    assert "近效期" in shown
    alert = re.search(r'id="ack-(\d+)"', body).group(1)  # type: ignore[union-attr]
    done = post(client, f"/alerts/{alert}/acknowledge", {}, from_page="/alerts")
    assert "SOON" not in text_of(done.get_data(as_text=True))
    taken = text_of(page(client, "/alerts?tab=acknowledged"))
    assert "SOON" in taken and "李药师" in taken and "2026-11-23 12:00" in taken


def test_each_print_names_the_drug_the_dose_in_words_and_the_pharmacy(client, world, drugs, people) -> None:
    client.patch(f"/api/sites/{world.a.sites['C1']}", headers=world.a.headers("admin"),
                 json={"opening_hours": "周一至周日 8:00–17:00", "phone": "0571-8888 1234"})
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(nominated_pharmacy=world.a.sites["C1"], items=[
        {"drug_code": "AML5", "quantity": 28, "supply_days": 7, "dosage": "口服，每次 5 mg，每日 1 次"}])).get_json()
    for step in ("accept", "prepare", "dispense"):
        act(client, world, created["id"], step)
    sign_in(client, "li")
    label = text_of(page(client, f"/prescriptions/{created['id']}/label"))
    guidance = text_of(page(client, f"/prescriptions/{created['id']}/guidance"))
    for said in (label, guidance):
        for fact in ("氨氯地平片", "口服，每次 5 mg，每日 1 次", "Site A-C1", "周一至周日 8:00–17:00", "P-7f3a"):
            assert fact in said, fact
    assert "用药指导单" in guidance and "0571-8888 1234" in guidance


def test_a_prescriber_signs_in_follows_the_sites_prescriptions_and_cancels_while_allowed(
        client, world, drugs, people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(patient=PATIENT, nominated_pharmacy=world.a.sites["C1"], **CLINICAL)).get_json()
    dispensed = send(client, world, rx("RX-2", nominated_pharmacy=world.a.sites["C1"])).get_json()
    for step in ("accept", "prepare", "dispense"):
        act(client, world, dispensed["id"], step)
    sign_in(client, "dr")
    assert client.get("/").headers["Location"].endswith("/sent")
    listed = text_of(page(client, "/sent"))
    assert "RX-1" in listed and "RX-2" in listed and "Site A-C1" in listed and "已发药" in listed
    mine = text_of(page(client, f"/prescriptions/{created['id']}"))
    assert "青霉素" in mine and "已分配至 Site A-C1" in mine and "处方医生已发出" in mine  # its facts, status, events
    here = f"/prescriptions/{created['id']}"
    cancelled = post(client, f"{here}/cancel", {"note": "患者改约"}, from_page=here)
    assert cancelled.status_code == 200 and "已撤销" in text_of(cancelled.get_data(as_text=True))
    # Once dispensing has started it may no longer be cancelled: the page offers no cancel, the service refuses.
    there = f"/prescriptions/{dispensed['id']}"
    assert 'id="cancel-form"' not in page(client, there)
    refused = post(client, f"{there}/cancel", {"note": "晚了"}, from_page=there)
    assert refused.status_code == 422 and "不能再撤销" in flashed_error(refused.get_data(as_text=True))


def test_unknown_pages_answer_as_pages_and_the_api_keeps_its_shape(client, world, people) -> None:
    sign_in(client, "li")
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and "没有这个页面" in missing.get_data(as_text=True)
    assert missing.mimetype == "text/html"
    api = client.get("/api/no-such-thing", headers=world.a.headers("admin"))
    assert api.status_code == 404 and api.get_json()["code"] == 404


def test_a_page_form_with_a_nul_or_a_lone_surrogate_is_refused_before_any_service(client, world, drugs,
                                                                                people) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    created = send(client, world, rx(nominated_pharmacy=world.a.sites["C1"])).get_json()
    sign_in(client, "li")
    here = f"/prescriptions/{created['id']}"
    refused = post(client, f"{here}/reject", {"reason_code": "other", "note": "x\x00y"}, from_page=here)
    assert refused.status_code == 422 and "note" in refused.get_data(as_text=True)
    # A lone surrogate cannot even be sent as UTF-8: its bytes arrive as a character that can be kept, never a 500.
    form = client.get(here).get_data(as_text=True)
    assert client.get(f"/api/prescriptions/{created['id']}", headers=world.a.headers("pharmacist")).get_json()[
        "status"] == "routed"
    raw = client.post(f"{here}/reject", data=f"csrf_token={token(form)}&reason_code=other&note=%ED%A0%80".encode(),
                      content_type="application/x-www-form-urlencoded")
    assert raw.status_code in (302, 422)


def test_beijing_time_on_the_plan_list(client, world, people) -> None:
    uow = UnitOfWork(factory(client), system_for(world.a.consortium_id))
    create_user(uow, world.a.consortium_id, "wang", PASSWORD, Role.PROCUREMENT, None)
    client.post("/api/plan-runs", json={"horizon_days": 30}, headers=world.a.headers("procurement"))
    sign_in(client, "wang")
    assert "2026-11-23 12:00" in page(client, "/plans")
