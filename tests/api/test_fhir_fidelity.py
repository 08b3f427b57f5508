"""FHIR R4 means what HL7 says, both ways: substitution, structured dosage, valid ids, absolute URLs, words."""

from __future__ import annotations

import copy
import re

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest

from tests.api.test_fhir import FHIR, HL7_MEDRX0311, chlorthalidone, one_week, post  # noqa: F401 - fixtures
from tests.api.test_foundation import assert_problem
from tests.api.test_prescriptions import act, drugs, rx, send, stock  # noqa: F401 - fixtures and helpers
from tests.factories import World, add_drug

pytestmark = pytest.mark.usefixtures("clock")

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
STRUCTURED = [{"sequence": 1, "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
               "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006",
                                     "display": "Oral Route"}]},
               "doseAndRate": [{"doseQuantity": {"value": 6, "unit": "mg", "system": "http://unitsofmeasure.org",
                                                 "code": "mg"}}]}]


def medication_request(**changes) -> dict:
    body = one_week(copy.deepcopy(HL7_MEDRX0311))
    body.update(changes)
    return body


def taken_in(client, world: World, body: dict) -> dict:
    response = post(client, world, "/fhir/MedicationRequest", body)
    assert response.status_code == 201, response.get_json()
    resource = response.get_json()
    MedicationRequest.model_validate(resource)
    return resource


def native(client, world: World, resource: dict) -> dict:
    rx_id = resource["id"].split("-")[0]
    return client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("admin")).get_json()


def test_substitution_none_is_kept_echoed_and_refused_at_dispensing(client, world, chlorthalidone):  # noqa: F811
    twin = add_drug(client, world.a, "CTD50B", generic_name="氯噻酮片", dosage_form="tablet", strength_amount="50",
                    dispensing_unit="tablet", pack_size=30)
    client.patch(f"/api/drugs/{chlorthalidone['id']}", json={"equivalence_group": "ctd-50"},
                 headers={**world.a.headers("admin"), "If-Match": '"1"'})
    client.patch(f"/api/drugs/{twin['id']}", json={"equivalence_group": "ctd-50"},
                 headers={**world.a.headers("admin"), "If-Match": '"1"'})
    stock(client, world, "C1", twin, "TW-1", "2027-09-30", 300)
    none = {"coding": [{"system": ACT_CODE, "code": "N", "display": "none"}]}
    resource = taken_in(client, world, medication_request(substitution={"allowedCodeableConcept": none}))
    assert resource["substitution"] == {"allowedCodeableConcept": none}
    prescription = native(client, world, resource)
    assert prescription["items"][0]["substitution_allowed"] is False
    for action in ("accept", "prepare"):
        assert act(client, world, prescription["id"], action).status_code == 200
    refused = act(client, world, prescription["id"], "dispense", {"items": [{
        "item_id": prescription["items"][0]["id"], "substitute_drug_id": twin["id"],
        "substitution_reason": "out of the prescribed brand"}]})
    assert_problem(refused, 422, "did not allow substitution")


def test_an_equivalent_substitution_code_allows_it_and_is_echoed(client, world, chlorthalidone):  # noqa: F811
    equivalent = {"coding": [{"system": ACT_CODE, "code": "E", "display": "equivalent"}], "text": "generic ok"}
    resource = taken_in(client, world, medication_request(substitution={"allowedCodeableConcept": equivalent}))
    assert resource["substitution"] == {"allowedCodeableConcept": equivalent}
    assert native(client, world, resource)["items"][0]["substitution_allowed"] is True


def test_a_substitution_code_outside_the_v3_codes_is_refused_naming_it(client, world, chlorthalidone):  # noqa: F811
    unknown = {"coding": [{"system": ACT_CODE, "code": "MAYBE"}]}
    response = post(client, world, "/fhir/MedicationRequest",
                    medication_request(substitution={"allowedCodeableConcept": unknown}))
    assert response.status_code == 422
    issues = response.get_json()["issue"]
    assert any(e == "substitution.allowedCodeableConcept" for i in issues for e in i.get("expression", []))


def test_a_dosage_sent_only_as_data_is_kept_echoed_and_said_in_chinese(client, world, chlorthalidone):  # noqa: F811
    resource = taken_in(client, world, medication_request(dosageInstruction=STRUCTURED))
    assert resource["dosageInstruction"] == STRUCTURED
    assert native(client, world, resource)["items"][0]["dosage"] == "口服，每次 6 mg，每日 1 次"


def test_a_patient_identifier_that_is_no_fhir_id_is_kept_as_an_identifier(client, world, chlorthalidone):  # noqa: F811
    subject = {"identifier": {"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "MRN_2024_0001"}}
    resource = taken_in(client, world, medication_request(subject=subject))
    reference = resource["subject"]["reference"]
    assert re.fullmatch(r"Patient/[A-Za-z0-9\-.]{1,64}", reference) and "_" not in reference
    assert resource["subject"]["identifier"]["value"] == "MRN_2024_0001"
    assert native(client, world, resource)["patient"]["ref"] == "MRN_2024_0001"
    again = medication_request(subject=resource["subject"])  # what we said, sent back, is the same patient
    again["identifier"][0]["value"] = "ORD-ECHO"
    assert native(client, world, taken_in(client, world, again))["patient"]["ref"] == "MRN_2024_0001"


def test_a_searchset_names_each_entry_by_an_absolute_url(client, world, chlorthalidone):  # noqa: F811
    resource = taken_in(client, world, medication_request())
    rx_id = int(resource["id"].split("-")[0])
    for action in ("accept", "prepare", "dispense"):
        assert act(client, world, rx_id, action).status_code == 200
    bundle = client.get(f"/fhir/MedicationDispense?prescription={rx_id}",
                        headers=world.a.headers("prescriber")).get_json()
    Bundle.model_validate(bundle)
    entry = bundle["entry"][0]
    assert entry["fullUrl"] == f"http://localhost/fhir/MedicationDispense/{entry['resource']['id']}"


def test_operation_outcome_diagnostics_are_words(client, world):
    response = client.get("/fhir/MedicationDispense?prescription=", headers=world.a.headers("prescriber"))
    assert response.status_code == 422 and response.mimetype == FHIR
    for issue in response.get_json()["issue"]:
        assert "{" not in issue["diagnostics"] and "'" not in issue["diagnostics"]
        assert re.search(r"[a-z]{3,} [a-z]{2,}", issue["diagnostics"]), issue


def test_a_passed_over_nomination_is_said_in_the_routing_and_to_the_prescriber(client, world, drugs):  # noqa: F811
    stock(client, world, "C1", drugs["AML5"], "AM-1", "2027-09-30", 300)
    body = rx("RX-NOM", nominated_pharmacy=world.a.sites["C2"])  # C2 has no amlodipine
    routed = send(client, world, body).get_json()
    assert routed["pharmacy_site_id"] == world.a.sites["C1"]
    said = "the nominated pharmacy A-C2 cannot fill AML5 from usable stock"
    why = {"pharmacy": "A-C2", "reason": "cannot_fill", "short_items": ["AML5"]}
    assert routed["routing"]["reason"].startswith(said + "; routed to A-C1")
    assert routed["routing"]["facts"]["passed_over"] == why
    assert routed["status_reason"].startswith(said)
    assert routed["status_facts"]["passed_over"] == why
    events = client.get("/api/prescription-events", headers=world.a.headers("prescriber")).get_json()["events"]
    event = next(e for e in events if e["prescription_id"] == routed["id"])
    assert event["payload"]["reason"].startswith(said)
    assert event["payload"]["nomination_passed_over"] == why


def test_a_nomination_that_is_followed_says_nothing_was_passed_over(client, world, drugs):  # noqa: F811
    stock(client, world, "C2", drugs["AML5"], "AM-2", "2027-09-30", 300)
    routed = send(client, world, rx("RX-NOM2", nominated_pharmacy=world.a.sites["C2"])).get_json()
    assert routed["pharmacy_site_id"] == world.a.sites["C2"]
    assert "passed_over" not in routed["routing"]["facts"] and "nominated pharmacy" not in routed["status_reason"]
