"""The service foundation over HTTP: authentication, roles, consortium isolation, audit, errors."""

from __future__ import annotations

import base64
import re

import pytest
from openapi_spec_validator import validate

from pharmacy.accounts.services import create_user
from pharmacy.principal import Role, system_for
from pharmacy.unit_of_work import UnitOfWork
from tests.factories import World

ERROR_KEYS = {"code", "status", "message"}


def assert_problem(response, status: int, *needles: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body.keys() >= ERROR_KEYS and body["code"] == status
    text = str(body)
    for needle in needles:
        assert needle in text
    return body


def test_health_answers_with_the_database_kind(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_openapi_document_is_valid_and_describes_every_route(app, client):
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    documented = {path for path in spec["paths"]}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in ("static",) or rule.endpoint.startswith(("api-docs", "web.")):
            continue  # the pages are for people, not part of the API
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in documented, f"{rule.rule} is not in the OpenAPI document"
    assert client.get("/docs").status_code == 200


# --- authentication and roles ---------------------------------------------------------------

ENDPOINTS = [
    # method, path, body, roles allowed
    ("get", "/api/consortium", None, {"admin", "prescriber", "pharmacist", "procurement"}),
    ("get", "/api/sites", None, {"admin", "prescriber", "pharmacist", "procurement"}),
    ("post", "/api/sites", {"code": "NEW", "name": "n", "kind": "community_health_centre"}, {"admin"}),
    ("get", "/api/api-keys", None, {"admin"}),
    ("get", "/api/users", None, {"admin"}),
    ("get", "/api/audit", None, {"admin"}),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
def test_each_endpoint_refuses_anonymous_callers(client, world: World, method, path, body, allowed):
    response = getattr(client, method)(path, json=body)
    assert_problem(response, 401, "authentication required")


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
@pytest.mark.parametrize("role", ["admin", "prescriber", "pharmacist", "procurement"])
def test_each_role_gets_what_it_may_and_403_otherwise(client, world: World, method, path, body, allowed, role):
    if body and "parent_id" not in body:
        body = {**body, "parent_id": world.a.sites["LEAD"]}
    response = getattr(client, method)(path, json=body, headers=world.a.headers(role))
    if role in allowed:
        assert response.status_code in (200, 201), response.get_data(as_text=True)
    else:
        assert_problem(response, 403, role)


def test_unknown_and_revoked_keys_are_refused(client, world: World):
    assert_problem(client.get("/api/sites", headers={"Authorization": "Bearer nope"}), 401, "unknown")
    keys = client.get("/api/api-keys", headers=world.a.headers("admin")).get_json()
    pharmacist_key = next(k for k in keys if k["name"] == "test pharmacist")
    revoked = client.post(f"/api/api-keys/{pharmacist_key['id']}/revoke", headers=world.a.headers("admin"))
    assert revoked.status_code == 200 and revoked.get_json()["active"] is False
    assert_problem(client.get("/api/sites", headers=world.a.headers("pharmacist")), 401, "revoked")


def test_a_person_signs_in_with_username_and_password(client, world: World, session_factory):
    create_user(UnitOfWork(session_factory, system_for(world.a.consortium_id)), world.a.consortium_id,
                "li.pharm", "correct horse battery", Role.PHARMACIST, world.a.sites["C1"])
    good = base64.b64encode(b"li.pharm:correct horse battery").decode()
    bad = base64.b64encode(b"li.pharm:wrong password!").decode()
    assert client.get("/api/sites", headers={"Authorization": f"Basic {good}"}).status_code == 200
    assert_problem(client.get("/api/sites", headers={"Authorization": f"Basic {bad}"}), 401, "wrong")


def test_keys_and_passwords_are_stored_only_as_hashes(client, world: World, connection):
    response = client.post("/api/api-keys", headers=world.a.headers("admin"),
                           json={"name": "HIS of H2", "role": "prescriber", "site_id": world.a.sites["H2"]})
    assert response.status_code == 201
    plain = response.get_json()["key"]
    client.post("/api/users", headers=world.a.headers("admin"),
                json={"username": "wang", "password": "a long enough secret", "role": "procurement"})
    from sqlalchemy import text

    dumped = str(connection.execute(text("SELECT * FROM api_keys")).all())
    dumped += str(connection.execute(text("SELECT * FROM users")).all())
    assert plain not in dumped and "a long enough secret" not in dumped
    assert client.get("/api/sites", headers={"Authorization": f"Bearer {plain}"}).status_code == 200


# --- consortium isolation -------------------------------------------------------------------

def test_another_consortiums_site_is_not_found_and_never_shown(client, world: World):
    foreign = world.b.sites["LEAD"]
    assert_problem(client.get(f"/api/sites/{foreign}", headers=world.a.headers("admin")), 404, "not found")
    assert_problem(client.patch(f"/api/sites/{foreign}", json={"name": "stolen"},
                                headers=world.a.headers("admin")), 404)
    listed = client.get("/api/sites", headers=world.a.headers("admin")).get_json()
    assert {s["consortium_id"] for s in listed} == {world.a.consortium_id}
    mine = client.get("/api/consortium", headers=world.b.headers("admin")).get_json()
    assert mine["id"] == world.b.consortium_id


def test_a_site_cannot_be_hung_under_another_consortiums_site(client, world: World):
    response = client.post("/api/sites", headers=world.a.headers("admin"), json={
        "code": "X", "name": "x", "kind": "community_health_centre", "parent_id": world.b.sites["LEAD"]})
    problem = assert_problem(response, 422, "upper site", "not found")
    assert problem["errors"] == {"parent_id": [f"upper site {world.b.sites['LEAD']} not found"]}


def test_keys_and_users_of_another_consortium_are_invisible(client, world: World):
    keys = client.get("/api/api-keys", headers=world.a.headers("admin")).get_json()
    assert all(k["name"].startswith("test") for k in keys) and len(keys) == 5
    b_keys = client.get("/api/api-keys", headers=world.b.headers("admin")).get_json()
    assert_problem(client.post(f"/api/api-keys/{b_keys[0]['id']}/revoke", headers=world.a.headers("admin")), 404)


# --- site tree through the API --------------------------------------------------------------

def test_moving_a_site_under_its_own_member_is_refused_and_nothing_changes(client, world: World):
    h2, c2 = world.a.sites["H2"], world.a.sites["C2"]
    response = client.patch(f"/api/sites/{h2}", json={"parent_id": c2}, headers=world.a.headers("admin"))
    assert_problem(response, 422, "higher level")
    assert client.get(f"/api/sites/{h2}", headers=world.a.headers("admin")).get_json()["parent_id"] == \
        world.a.sites["LEAD"]


def test_a_second_lead_hospital_is_refused(client, world: World):
    response = client.post("/api/sites", headers=world.a.headers("admin"),
                           json={"code": "L2", "name": "another lead", "kind": "lead_hospital"})
    assert_problem(response, 422, "exactly one lead hospital")


def test_duplicate_site_code_is_a_conflict(client, world: World):
    response = client.post("/api/sites", headers=world.a.headers("admin"), json={
        "code": "A-C1", "name": "dup", "kind": "community_health_centre", "parent_id": world.a.sites["LEAD"]})
    assert_problem(response, 409, "already used")


def test_site_list_is_paginated_and_filtered(client, world: World):
    response = client.get("/api/sites?page=1&page_size=2&dispenses=true", headers=world.a.headers("admin"))
    assert response.status_code == 200 and len(response.get_json()) == 2
    assert '"total": 4' in response.headers["X-Pagination"]


# --- accounts -------------------------------------------------------------------------------

def test_a_pharmacist_account_needs_a_dispensing_site(client, world: World):
    headers = world.a.headers("admin")
    no_site = client.post("/api/api-keys", headers=headers, json={"name": "p", "role": "pharmacist"})
    assert_problem(no_site, 422, "bound to one site")
    village = client.post("/api/api-keys", headers=headers,
                          json={"name": "p", "role": "pharmacist", "site_id": world.a.sites["V1"]})
    assert_problem(village, 422, "dispenses")
    procurement_with_site = client.post("/api/api-keys", headers=headers, json={
        "name": "p", "role": "procurement", "site_id": world.a.sites["C1"]})
    assert_problem(procurement_with_site, 422, "whole consortium")


def test_short_passwords_and_taken_usernames_are_refused(client, world: World):
    headers = world.a.headers("admin")
    assert_problem(client.post("/api/users", headers=headers,
                               json={"username": "zhao", "password": "short", "role": "admin"}), 422, "password")
    ok = client.post("/api/users", headers=headers,
                     json={"username": "zhao", "password": "long enough pw", "role": "admin"})
    assert ok.status_code == 201 and "password" not in ok.get_json()
    assert_problem(client.post("/api/users", headers=world.b.headers("admin"),
                               json={"username": "zhao", "password": "long enough pw", "role": "admin"}), 409)


# --- audit trail ----------------------------------------------------------------------------

def test_changes_are_in_the_audit_trail_with_who_and_what(client, world: World):
    headers = world.a.headers("admin")
    site = world.a.sites["C2"]
    client.patch(f"/api/sites/{site}", json={"name": "Renamed", "active": False}, headers=headers)
    entries = client.get(f"/api/audit?object_type=Site&object_id={site}", headers=headers).get_json()
    update = entries[0]
    assert update["action"] == "update" and update["actor"] == "api_key:test admin"
    assert "name: Site A-C2 -> Renamed" in update["summary"] and "active: True -> False" in update["summary"]
    assert entries[-1]["action"] == "create"
    other = client.get(f"/api/audit?object_type=Site&object_id={site}", headers=world.b.headers("admin"))
    assert other.get_json() == []


def test_secrets_never_reach_the_audit_trail(client, world: World):
    headers = world.a.headers("admin")
    client.post("/api/users", headers=headers,
                json={"username": "sun", "password": "very secret words", "role": "admin"})
    entries = client.get("/api/audit?object_type=User", headers=headers).get_json()
    assert entries and "password" not in str(entries) and "very secret" not in str(entries)


def test_audit_trail_has_no_way_to_change_it(client, world: World, connection):
    headers = world.a.headers("admin")
    for method in ("post", "put", "patch", "delete"):
        assert_problem(getattr(client, method)("/api/audit", json={}, headers=headers), 405)
    from sqlalchemy import text

    nested = connection.begin_nested()
    with pytest.raises(Exception, match="append-only"):
        connection.execute(text("UPDATE audit_entries SET summary = 'forged'"))
    nested.rollback()
    nested = connection.begin_nested()
    with pytest.raises(Exception, match="append-only"):
        connection.execute(text("DELETE FROM audit_entries"))
    nested.rollback()


# --- one error shape ------------------------------------------------------------------------

def test_malformed_json_gets_a_400_in_the_error_shape(client, world: World):
    response = client.post("/api/sites", data="{not json", content_type="application/json",
                           headers=world.a.headers("admin"))
    assert_problem(response, 400, "JSON")


def test_unknown_fields_and_wrong_types_name_the_field(client, world: World):
    headers = world.a.headers("admin")
    body = assert_problem(client.post("/api/sites", headers=headers, json={
        "code": "N", "name": "n", "kind": "castle", "latitude": "north", "colour": "red"}), 422)
    assert set(body["errors"]) == {"kind", "latitude", "colour"}
    assert "colour" in body["message"]


def test_bad_query_parameters_are_a_422_that_says_where(client, world: World):
    body = assert_problem(client.get("/api/sites?dispenses=maybe", headers=world.a.headers("admin")), 422)
    assert "dispenses" in str(body["errors"])


def test_unknown_routes_and_methods_use_the_error_shape(client):
    assert_problem(client.get("/api/no-such-thing"), 401)  # authentication comes first under /api
    assert_problem(client.get("/no-such-thing", headers={"Accept": "application/json"}), 404)
    page = client.get("/no-such-thing")  # a person's browser is answered with a page
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert_problem(client.delete("/health"), 405)


def test_nothing_is_written_when_a_request_is_refused(client, world: World):
    headers = world.a.headers("admin")
    before = len(client.get("/api/audit?page_size=500", headers=headers).get_json())
    client.post("/api/sites", headers=headers, json={"code": "L2", "name": "x", "kind": "lead_hospital"})
    client.post("/api/sites", headers=headers, json={"code": "Q", "name": "x", "kind": "hospital", "bogus": 1})
    after = len(client.get("/api/audit?page_size=500", headers=headers).get_json())
    assert after == before
    codes = [s["code"] for s in client.get("/api/sites", headers=headers).get_json()]
    assert "L2" not in codes and "Q" not in codes


def test_a_username_outside_the_documented_rule_is_refused_whoever_creates_it(client, world: World, session_factory):
    from pharmacy.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="username"):  # the command line comes through the same service
        create_user(UnitOfWork(session_factory, system_for(world.a.consortium_id)), world.a.consortium_id,
                    "张 三", "a long enough password", Role.ADMIN)
    assert_problem(client.post("/api/users", headers=world.a.headers("admin"),
                               json={"username": "张 三", "password": "long enough pw", "role": "admin"}), 422,
                   "username")
