"""The administrator's desk over HTTP: the catalog kept on pages (search, create, edit against the version read,
retire, local codes, equivalence groups, formularies by site), the sites and the tree, people and API keys (a key
shown once), and every change found in the audit trail's page, which exports what it shows."""

from __future__ import annotations

import io
import re

import pytest
from openpyxl import load_workbook

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.api.test_officer_pages import table
from tests.api.test_pages import PASSWORD, flashed_error, token
from tests.factories import World, add_drug

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def admin(client, world: World) -> str:
    factory = client.application.extensions["pharmacy_db"].session_factory
    create_user(UnitOfWork(factory, system_for(world.a.consortium_id)), world.a.consortium_id, "zhou", PASSWORD,
                Role.ADMIN, None, "周管理员")
    form = client.get("/login").get_data(as_text=True)
    assert client.post("/login", data={"csrf_token": token(form), "username": "zhou",
                                       "password": PASSWORD}).status_code == 302
    return "zhou"


DRUG = {"code": "NIF30", "generic_name": "硝苯地平控释片", "dosage_form": "tablet", "strength_amount": "30",
        "strength_unit": "mg", "dispensing_unit": "tablet", "pack_size": "7", "essential": "false",
        "insurance_class": "A", "controlled_class": "none", "special_storage": "none",
        "equivalence_group": "nifedipine-30", "national_code": "", "atc_code": "C08CA05", "brand_name": "",
        "manufacturer": ""}


def test_drugs_are_searched_created_edited_against_their_version_and_retired(client, world, admin) -> None:
    add_drug(client, world.a, "AMX250")
    found = client.get("/admin/drugs?q=amxl").get_data(as_text=True)
    assert [r[0] for r in table(found, "drugs")] == ["AMX250"]
    page = client.get("/admin/drugs/new").get_data(as_text=True)
    made = client.post("/admin/drugs/new", data={"csrf_token": token(page), **DRUG})
    assert made.status_code == 303
    drug_page = client.get(made.headers["Location"]).get_data(as_text=True)
    assert "已将药品 NIF30 加入目录" in drug_page and 'name="version" value="1"' in drug_page
    drug_id = int(made.headers["Location"].rsplit("/", 1)[1])
    twice = client.post("/admin/drugs/new", data={"csrf_token": token(page), **DRUG})
    assert twice.status_code == 422 and flashed_error(twice.get_data(as_text=True)) == "药品编码 NIF30 已存在"
    # Two administrators open the drug; the first saves, the second's change is refused and nothing is overwritten.
    edit = {k: v for k, v in DRUG.items() if k != "code"}
    first = client.post(f"/admin/drugs/{drug_id}", data={"csrf_token": token(page), **edit, "version": "1",
                                                          "brand_name": "拜新同"})
    assert first.status_code == 303
    stale = client.post(f"/admin/drugs/{drug_id}", data={"csrf_token": token(page), **edit, "version": "1",
                                                          "brand_name": "别的"})
    said = stale.get_data(as_text=True)
    assert stale.status_code == 409 and "已被他人修改" in flashed_error(said) and 'value="别的"' in said
    assert client.get(f"/api/drugs/{drug_id}", headers=world.a.headers("admin")).get_json()["brand_name"] == "拜新同"
    bad = client.post(f"/admin/drugs/{drug_id}", data={"csrf_token": token(page), **edit, "version": "2",
                                                        "pack_size": "0"})
    assert bad.status_code == 422 and "pack_size" in flashed_error(bad.get_data(as_text=True))
    retired = client.post(f"/admin/drugs/{drug_id}", data={"csrf_token": token(page), "version": "2",
                                                            "active": "false"}, follow_redirects=True)
    assert "药品已停用" in retired.get_data(as_text=True)
    assert client.get(f"/api/drugs/{drug_id}", headers=world.a.headers("admin")).get_json()["active"] is False
    trail = client.get(f"/admin/audit?object_type=Drug&object_id={drug_id}").get_data(as_text=True)
    rows = table(trail, "audit")
    assert [r[3] for r in rows] == ["update", "update", "create"] and {r[1] for r in rows} == {"周管理员"}
    assert "active: True -> False" in rows[0][6]


def test_local_codes_groups_and_formularies_are_kept_on_the_drugs_and_sites_pages(client, world, admin) -> None:
    drug = add_drug(client, world.a, "NIF30", essential=False, equivalence_group="nifedipine-30")
    add_drug(client, world.a, "NIF30-B", essential=False, equivalence_group="nifedipine-30", pack_size=14)
    page = client.get(f"/admin/drugs/{drug['id']}").get_data(as_text=True)
    csrf = token(page)
    mapped = client.post(f"/admin/drugs/{drug['id']}/local-codes", data={
        "csrf_token": csrf, "site_id": str(world.a.sites["LEAD"]), "local_code": "HIS-0042"}, follow_redirects=True)
    assert table(mapped.get_data(as_text=True), "local-codes") == [["Site A-LEAD", "HIS-0042"]]
    resolved = client.get("/api/drugs/resolve?code=HIS-0042&site_id=" + str(world.a.sites["LEAD"]),
                          headers=world.a.headers("admin")).get_json()
    assert resolved["code"] == "NIF30"
    groups = table(client.get("/admin/equivalence-groups").get_data(as_text=True), "groups")
    assert groups[0][0] == "nifedipine-30" and "NIF30" in groups[0][1] and "NIF30-B" in groups[0][1]
    # A grassroots site may dispense a drug off the essential list once its formulary is extended.
    site_page = f"/admin/sites/{world.a.sites['C1']}"
    extended = client.post("/admin/formulary", data={"csrf_token": csrf, "site_id": str(world.a.sites["C1"]),
                                                     "drug_id": str(drug["id"]), "note": "延伸处方",
                                                     "back": site_page}, follow_redirects=True)
    assert table(extended.get_data(as_text=True), "site-extensions")[0][:2] == ["NIF30 阿莫西林胶囊", "延伸处方"]
    formulary = client.get(f"/api/sites/{world.a.sites['C1']}/formulary", headers=world.a.headers("admin")).get_json()
    assert any(x["drug"]["code"] == "NIF30" and x["extended"] for x in formulary)
    removed = client.post("/admin/formulary", data={"csrf_token": csrf, "site_id": str(world.a.sites["C1"]),
                                                    "drug_id": str(drug["id"]), "remove": "1", "back": site_page},
                          follow_redirects=True).get_data(as_text=True)
    assert "已从处方集移除" in removed and table(removed, "site-extensions") == []


def test_sites_are_added_and_moved_in_the_tree_which_stays_a_tree(client, world, admin) -> None:
    page = client.get("/admin/sites").get_data(as_text=True)
    tree = table(page, "tree")
    assert tree[0][0] == "Site A-LEAD" and tree[0][2] == "牵头医院"
    added = client.post("/admin/sites", data={
        "csrf_token": token(page), "code": "A-V9", "name": "新村卫生室", "kind": "village_clinic",
        "parent_id": str(world.a.sites["C1"]), "district": "D1", "dispenses": "true", "active": "true",
        "level": "", "latitude": "", "longitude": ""}, follow_redirects=True).get_data(as_text=True)
    assert "已添加机构" in added
    names = [r[0] for r in table(added, "tree")]
    assert names.index("└ 新村卫生室") > names.index("└ Site A-C1")
    # The lead hospital cannot sit under one of its members: refused in words, and nothing moves.
    lead = world.a.sites["LEAD"]
    refused = client.post(f"/admin/sites/{lead}", data={
        "csrf_token": token(page), "code": "A-LEAD", "name": "Site A-LEAD", "kind": "lead_hospital",
        "parent_id": str(world.a.sites["C1"])}, follow_redirects=True).get_data(as_text=True)
    assert flashed_error(refused) == "牵头医院没有上级机构"
    renamed = client.post(f"/admin/sites/{world.a.sites['C2']}", data={
        "csrf_token": token(page), "name": "西溪社区卫生服务中心"}, follow_redirects=True).get_data(as_text=True)
    assert "已修改机构" in renamed and 'value="西溪社区卫生服务中心"' in renamed


def test_people_and_keys_are_created_and_revoked_and_a_key_is_shown_once(client, world, admin) -> None:
    page = client.get("/admin/people").get_data(as_text=True)
    csrf = token(page)
    made = client.post("/admin/people/new", data={
        "csrf_token": csrf, "username": "chen", "display_name": "陈药师", "role": "pharmacist",
        "site_id": str(world.a.sites["C2"]), "password": "long enough password"}, follow_redirects=True)
    people = table(made.get_data(as_text=True), "users")
    assert next(r for r in people if r[0] == "chen")[:5] == ["chen", "陈药师", "药师", "Site A-C2", "在用"]
    wrong = client.post("/admin/people/new", data={
        "csrf_token": csrf, "username": "wu", "role": "pharmacist", "site_id": "", "password": "long enough password"},
        follow_redirects=True)
    assert flashed_error(wrong.get_data(as_text=True)) == "药师账号须绑定一个机构"
    issued = client.post("/admin/api-keys", data={"csrf_token": csrf, "name": "社区 HIS", "role": "prescriber",
                                                  "site_id": str(world.a.sites["C1"])})
    assert issued.status_code == 200 and issued.headers["Cache-Control"] == "no-store"
    key = re.search(r'<p class="key" id="key-value">([^<]+)</p>', issued.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    assert client.get("/api/consortium", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert key not in client.get("/admin/people").get_data(as_text=True)  # shown once
    keys = client.get("/api/api-keys", headers=world.a.headers("admin")).get_json()
    mine = next(k for k in keys if k["name"] == "社区 HIS")
    revoked = client.post(f"/admin/api-keys/{mine['id']}/revoke", data={"csrf_token": csrf}, follow_redirects=True)
    assert "密钥已吊销" in revoked.get_data(as_text=True)
    assert client.get("/api/consortium", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    trail = table(client.get("/admin/audit?actor=user:zhou").get_data(as_text=True), "audit")
    assert {(r[3], r[4]) for r in trail} >= {("create", "User"), ("create", "ApiKey"), ("update", "ApiKey")}
    assert all(r[1] == "周管理员" for r in trail)
    assert not any("hash" in r[6] and "cph_" in r[6] for r in trail)


def test_the_audit_trail_exports_what_its_page_shows(client, world, admin) -> None:
    add_drug(client, world.a, "AMX250")
    add_drug(client, world.a, "AML5")
    page = client.get("/admin/audit?object_type=Drug").get_data(as_text=True)
    shown = table(page, "audit")
    assert len(shown) == 2
    rows = list(load_workbook(io.BytesIO(client.get("/admin/audit.xlsx?object_type=Drug").data)).active.iter_rows(
        values_only=True))
    assert rows[0] == ("时间", "操作人", "角色", "操作", "对象", "编号", "变更内容")
    assert [[str(c) for c in r] for r in rows[1:]] == shown
    assert client.get("/admin/audit").status_code == 200
