"""The unified drug catalog over HTTP."""

from __future__ import annotations

from tests.api.test_foundation import assert_problem
from tests.factories import World, add_drug, drug_data

CSV_HEADER = ("code,national_code,generic_name,dosage_form,strength_amount,strength_unit,dispensing_unit,"
              "pack_size,essential,controlled_class,equivalence_group\n")


def test_pharmacists_find_a_drug_by_pinyin_initials(client, world: World):
    add_drug(client, world.a, "AMX250", generic_name="阿莫西林胶囊")
    add_drug(client, world.a, "AML5", generic_name="氨氯地平片", dosage_form="tablet", strength_amount="5")
    add_drug(client, world.a, "MTF500", generic_name="二甲双胍片", dosage_form="tablet", strength_amount="500")
    found = client.get("/api/drugs?q=amxl", headers=world.a.headers("pharmacist")).get_json()
    assert [d["code"] for d in found] == ["AMX250"]
    found = client.get("/api/drugs?q=am", headers=world.a.headers("pharmacist")).get_json()
    # The code prefix ranks above the pinyin prefix; both drugs match.
    assert [d["code"] for d in found] == ["AML5", "AMX250"]
    assert client.get("/api/drugs?q=二甲", headers=world.a.headers("pharmacist")).get_json()[0]["code"] == "MTF500"


def test_exact_code_ranks_first_and_other_consortia_stay_hidden(client, world: World):
    add_drug(client, world.a, "AMX", generic_name="阿莫西林")
    add_drug(client, world.a, "AMX500", generic_name="阿莫西林克拉维酸钾")
    add_drug(client, world.b, "AMX9", generic_name="阿莫西林")
    found = client.get("/api/drugs?q=AMX", headers=world.a.headers("admin")).get_json()
    assert [d["code"] for d in found] == ["AMX", "AMX500"]


def test_search_treats_wildcards_as_text(client, world: World):
    add_drug(client, world.a, "X1", generic_name="维生素C")
    assert client.get("/api/drugs?q=%25", headers=world.a.headers("admin")).get_json() == []


def test_updates_need_the_current_etag(client, world: World):
    drug = add_drug(client, world.a, "AMX250")
    headers = world.a.headers("admin")
    read = client.get(f"/api/drugs/{drug['id']}", headers=headers)
    etag = read.headers["ETag"]
    assert_problem(client.patch(f"/api/drugs/{drug['id']}", json={"brand_name": "阿莫仙"}, headers=headers), 428)
    first = client.patch(f"/api/drugs/{drug['id']}", json={"brand_name": "阿莫仙"},
                         headers={**headers, "If-Match": etag})
    assert first.status_code == 200 and first.headers["ETag"] != etag
    second = client.patch(f"/api/drugs/{drug['id']}", json={"manufacturer": "联邦制药"},
                          headers={**headers, "If-Match": etag})
    assert_problem(second, 412, "changed by someone else")
    assert client.get(f"/api/drugs/{drug['id']}", headers=headers).get_json()["manufacturer"] is None


def test_drugs_are_retired_never_deleted(client, world: World):
    drug = add_drug(client, world.a, "AMX250")
    headers = world.a.headers("admin")
    etag = client.get(f"/api/drugs/{drug['id']}", headers=headers).headers["ETag"]
    retired = client.patch(f"/api/drugs/{drug['id']}", json={"active": False}, headers={**headers, "If-Match": etag})
    assert retired.get_json()["active"] is False
    assert_problem(client.delete(f"/api/drugs/{drug['id']}", headers=headers), 405)
    assert client.get("/api/drugs?active=false", headers=headers).get_json()[0]["code"] == "AMX250"


def test_codes_resolve_from_consortium_national_and_local_codes(client, world: World):
    drug = add_drug(client, world.a, "AMX250", national_code="XJ01CAA040E001010100")
    headers = world.a.headers("admin")
    mapped = client.post("/api/local-codes", headers=headers,
                         json={"site_id": world.a.sites["LEAD"], "local_code": "HIS-00042", "drug_id": drug["id"]})
    assert mapped.status_code == 201
    prescriber = world.a.headers("prescriber")  # bound to LEAD, so its own local codes apply
    for code in ("AMX250", "XJ01CAA040E001010100", "HIS-00042"):
        resolved = client.get(f"/api/drugs/resolve?code={code}", headers=prescriber)
        assert resolved.status_code == 200 and resolved.get_json()["id"] == drug["id"]
    assert_problem(client.get("/api/drugs/resolve?code=HIS-00042", headers=world.a.headers("pharmacist")),
                   404, "no drug has code HIS-00042")
    conflicting = client.post("/api/local-codes", headers=headers, json={
        "site_id": world.a.sites["LEAD"], "local_code": "HIS-00042", "drug_id": add_drug(client, world.a, "B")["id"]})
    assert_problem(conflicting, 409, "already maps")


def test_a_code_is_read_as_the_consortiums_code_first_then_a_national_code_of_an_active_drug(client, world: World):
    headers = world.a.headers("admin")
    retired = add_drug(client, world.a, "OLD", national_code="XN-1")
    etag = client.get(f"/api/drugs/{retired['id']}", headers=headers).headers["ETag"]
    assert client.patch(f"/api/drugs/{retired['id']}", json={"active": False},
                        headers={**headers, "If-Match": etag}).get_json()["active"] is False
    active = add_drug(client, world.a, "NEW", national_code="XN-1")
    # "NEW" is also another drug's national code, and a local code of the prescriber's hospital: its own code wins.
    add_drug(client, world.a, "OTHER", national_code="NEW")
    assert client.post("/api/local-codes", headers=headers, json={
        "site_id": world.a.sites["LEAD"], "local_code": "NEW", "drug_id": retired["id"]}).status_code == 201
    prescriber = world.a.headers("prescriber")
    resolved = {code: client.get(f"/api/drugs/resolve?code={code}", headers=prescriber).get_json().get("code")
                for code in ("NEW", "XN-1")}
    assert resolved == {"NEW": "NEW", "XN-1": active["code"]}
    assert_problem(client.get("/api/drugs/resolve?code=XN-2", headers=prescriber), 404, "no drug has code XN-2")


def test_grassroots_formulary_is_the_essential_list_plus_extensions(client, world: World):
    essential = add_drug(client, world.a, "E1", essential=True)
    special = add_drug(client, world.a, "S1", essential=False, generic_name="利伐沙班片")
    headers = world.a.headers("admin")
    c1 = world.a.sites["C1"]
    listed = client.get(f"/api/sites/{c1}/formulary", headers=headers).get_json()
    assert [e["drug"]["code"] for e in listed] == ["E1"]
    assert client.put(f"/api/sites/{c1}/formulary/{special['id']}", json={"note": "extended Rx"},
                      headers=headers).status_code == 200
    listed = client.get(f"/api/sites/{c1}/formulary", headers=headers).get_json()
    assert [(e["drug"]["code"], e["extended"]) for e in listed] == [("E1", False), ("S1", True)]
    lead = client.get(f"/api/sites/{world.a.sites['LEAD']}/formulary", headers=headers).get_json()
    assert {e["drug"]["code"] for e in lead} == {"E1", "S1"}
    assert client.delete(f"/api/sites/{c1}/formulary/{special['id']}", headers=headers).status_code == 204
    assert essential["id"] in [e["drug"]["id"] for e in
                               client.get(f"/api/sites/{c1}/formulary", headers=headers).get_json()]


def test_csv_import_is_all_or_nothing_and_reports_every_bad_row(client, world: World):
    headers = {**world.a.headers("admin"), "Content-Type": "text/csv"}
    body = CSV_HEADER + (
        "AMX250,,阿莫西林胶囊,capsule,250,mg,capsule,24,true,none,amoxicillin-250\n"
        "BAD1,,布洛芬片,tablet,-5,mg,tablet,0,true,none,\n"
        "BAD2,,,tablet,5,mg,tablet,10,maybe,opium,\n"
        "AMX250,,阿莫西林胶囊,capsule,250,mg,capsule,24,true,none,\n"
    )
    response = client.post("/api/drugs/import", data=body.encode(), headers=headers)
    problem = assert_problem(response, 422, "nothing was imported")
    lines = problem["errors"]["lines"]  # by line number, then column, as every error says where
    found = {(int(line), column) for line, columns in lines.items() for column in columns}
    assert {(3, "strength_amount"), (3, "pack_size"), (4, "generic_name"), (4, "essential"),
            (4, "controlled_class"), (5, "code")} <= found
    assert client.get("/api/drugs", headers=world.a.headers("admin")).get_json() == []


def test_csv_reimport_changes_nothing_and_export_round_trips(client, world: World):
    headers = {**world.a.headers("admin"), "Content-Type": "text/csv"}
    body = CSV_HEADER + (
        "AMX250,XJ01,阿莫西林胶囊,capsule,250,mg,capsule,24,true,none,amoxicillin-250\n"
        "DZP5,,地西泮片,tablet,2.5,mg,tablet,20,false,psychotropic_2,\n"
    )
    first = client.post("/api/drugs/import", data=body.encode(), headers=headers).get_json()
    assert first == {"created": 2, "updated": 0, "unchanged": 0}
    audit_before = len(client.get("/api/audit?page_size=500", headers=world.a.headers("admin")).get_json())
    again = client.post("/api/drugs/import", data=body.encode(), headers=headers).get_json()
    assert again == {"created": 0, "updated": 0, "unchanged": 2}
    audit_after = len(client.get("/api/audit?page_size=500", headers=world.a.headers("admin")).get_json())
    assert audit_after == audit_before
    exported = client.get("/api/drugs/export", headers=world.a.headers("admin")).get_data()
    assert client.post("/api/drugs/import", data=exported, headers=headers).get_json()["unchanged"] == 2
    changed = body.replace("2.5,mg", "5,mg")
    assert client.post("/api/drugs/import", data=changed.encode(), headers=headers).get_json() == \
        {"created": 0, "updated": 1, "unchanged": 1}


def test_csv_with_unknown_columns_is_refused(client, world: World):
    headers = {**world.a.headers("admin"), "Content-Type": "text/csv"}
    response = client.post("/api/drugs/import", data=b"code,colour\nX,red\n", headers=headers)
    problem = assert_problem(response, 422, "header")
    assert problem["errors"]["lines"]["1"]["colour"] == ["unknown column"]


def test_bad_drug_input_names_the_field(client, world: World):
    response = client.post("/api/drugs", json=drug_data("X", pack_size=-1, controlled_class="opium"),
                           headers=world.a.headers("admin"))
    problem = assert_problem(response, 422)
    assert set(problem["errors"]) == {"pack_size", "controlled_class"}
    assert_problem(client.post("/api/drugs", json=drug_data("X"), headers=world.a.headers("pharmacist")), 403)
