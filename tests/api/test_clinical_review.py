"""What a pharmacist needs to review a prescription (审方) comes with it, natively and in FHIR, and is shown to the
pharmacy that holds the prescription and its prescriber only; the patient stays a pseudonym."""

from __future__ import annotations

import copy

import pytest
from fhir.resources.R4B.medicationrequest import MedicationRequest

from pharmacy.audit import AuditEntry
from tests.api.test_fhir import HL7_MEDRX0311, one_week, post
from tests.api.test_fhir import chlorthalidone as chlorthalidone  # a fixture
from tests.api.test_prescriptions import act, factory, rx, send, stock
from tests.api.test_prescriptions import drugs as drugs  # a fixture

pytestmark = pytest.mark.usefixtures("clock")

CLINICAL = {"diagnoses": [{"code": "I10", "system": "http://hl7.org/fhir/sid/icd-10", "display": "原发性高血压"}],
            "allergies": [{"substance": "青霉素", "reaction": "皮疹", "criticality": "high"}]}


def patient(**facts) -> dict:
    return {"ref": "P-7f3a", "district": "D1", "latitude": 30.26, "longitude": 120.14, **facts}


def test_the_native_intake_keeps_age_sex_diagnoses_and_allergies_for_the_holding_pharmacy(client, world,
                                                                                          drugs) -> None:
    stock(client, world, "C1", drugs["AML5"], "L1", "2027-06-30", 100)
    sent = send(client, world, rx(patient=patient(birth_date="1958-03-09", gender="female"), **CLINICAL))
    assert sent.status_code == 201, sent.get_json()
    body = sent.get_json()
    assert body["patient"] == {"ref": "P-7f3a", "district": "D1", "birth_date": "1958-03-09", "gender": "female"}
    assert body["diagnoses"] == CLINICAL["diagnoses"] and body["allergies"] == CLINICAL["allergies"]
    assert body["prescriber"] == "Dr. Wang"
    mine = client.get(f"/api/prescriptions/{body['id']}", headers=world.a.headers("pharmacist")).get_json()
    assert mine["allergies"][0]["substance"] == "青霉素" and mine["patient"]["gender"] == "female"
    # Nobody else sees them: not another pharmacy (it does not see the prescription at all), not an administrator
    # nor an officer, who see the prescription without its clinical facts.
    assert client.get(f"/api/prescriptions/{body['id']}", headers=world.a.headers("pharmacist_c2")).status_code == 404
    for role in ("admin", "procurement"):
        seen = client.get(f"/api/prescriptions/{body['id']}", headers=world.a.headers(role)).get_json()
        assert seen["patient"] == {"ref": "P-7f3a", "district": "D1"}
        assert "diagnoses" not in seen and "allergies" not in seen
    # The audit trail, which administrators read, names them without saying them.
    with factory(client)() as session:
        summaries = [e.summary for e in session.query(AuditEntry).filter_by(object_type="Prescription",
                                                                            object_id=str(body["id"]))]
    assert any("allergies set" in s for s in summaries)
    assert not any("青霉素" in s or "1958" in s or "高血压" in s for s in summaries)


def test_a_pharmacy_that_returned_a_prescription_no_longer_sees_its_clinical_facts(client, world, drugs) -> None:
    for site in ("C1", "C2"):
        stock(client, world, site, drugs["AML5"], f"L-{site}", "2027-06-30", 100)
    body = send(client, world, rx(patient=patient(birth_date="1958-03-09"), nominated_pharmacy=world.a.sites["C1"],
                                  **CLINICAL)).get_json()
    returned = act(client, world, body["id"], "return", {"reason_code": "staff"}).get_json()
    assert returned["pharmacy_site_id"] == world.a.sites["C2"] and "allergies" not in returned
    assert "birth_date" not in returned["patient"]
    now = client.get(f"/api/prescriptions/{body['id']}", headers=world.a.headers("pharmacist_c2")).get_json()
    assert now["allergies"] == CLINICAL["allergies"]


def test_a_birth_date_in_the_future_or_an_unknown_sex_is_refused(client, world, drugs) -> None:
    future = send(client, world, rx(patient=patient(birth_date="2027-01-01")))
    assert future.status_code == 422 and future.get_json()["errors"]["patient"] == {"birth_date": ["is in the future"]}
    assert send(client, world, rx("RX-2", patient=patient(gender="M"))).status_code == 422
    no_words = send(client, world, rx("RX-3", diagnoses=[{"system": "urn:x"}]))
    assert no_words.status_code == 422


def test_fhir_intake_reads_a_contained_patient_reason_code_allergies_and_the_practitioners_name(
        client, world, chlorthalidone) -> None:
    body = one_week(copy.deepcopy(HL7_MEDRX0311))
    body["contained"] += [
        {"resourceType": "Patient", "id": "pat", "identifier": [{"system": "urn:his:mrn", "value": "PT-55c1"}],
         "name": [{"text": "不应保存的姓名"}], "gender": "male", "birthDate": "1949-10-01"},
        {"resourceType": "Practitioner", "id": "doc", "name": [{"family": "王", "given": ["建国"]}]},
        {"resourceType": "AllergyIntolerance", "id": "a1", "patient": {"reference": "#pat"},
         "code": {"text": "磺胺类"}, "criticality": "high",
         "reaction": [{"manifestation": [{"text": "荨麻疹"}]}]},
        {"resourceType": "AllergyIntolerance", "id": "a2", "patient": {"reference": "#pat"},
         "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                        "code": "resolved"}]},
         "code": {"text": "花粉"}}]
    body["subject"] = {"reference": "#pat"}
    body["requester"] = {"reference": "#doc"}
    body["supportingInformation"] = [{"reference": "#a1"}, {"reference": "#a2"}]
    response = post(client, world, "/fhir/MedicationRequest", body)
    assert response.status_code == 201, response.get_json()
    rx_id = int(response.get_json()["id"].split("-")[0])
    seen = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert seen["patient"]["ref"] == "PT-55c1"  # the pseudonym; the name sent is not kept
    assert (seen["patient"]["birth_date"], seen["patient"]["gender"]) == ("1949-10-01", "male")
    assert seen["prescriber"] == "王建国"
    assert seen["diagnoses"] == [{"code": "38341003", "system": "http://snomed.info/sct",
                                  "display": "Essential hypertension (disorder)"}]
    # The resolved allergy is left out.
    assert seen["allergies"] == [{"substance": "磺胺类", "reaction": "荨麻疹", "criticality": "high"}]
    assert "不应保存的姓名" not in response.get_data(as_text=True)
    echoed = client.get(f"/fhir/MedicationRequest/{response.get_json()['id']}",
                        headers=world.a.headers("prescriber")).get_json()
    MedicationRequest.model_validate(echoed)
    assert echoed["reasonCode"][0]["coding"][0]["code"] == "38341003"
    hidden = client.get(f"/fhir/MedicationRequest/{response.get_json()['id']}",
                        headers=world.a.headers("admin")).get_json()
    assert "reasonCode" not in hidden


def test_a_transaction_brings_the_patient_and_allergies_as_entries_it_references(client, world,
                                                                                  chlorthalidone) -> None:
    request = one_week(copy.deepcopy(HL7_MEDRX0311))
    request["groupIdentifier"] = {"value": "GRP-C1"}
    request["subject"] = {"reference": "urn:uuid:5b1c0d6e-8f0a-4a52-9d0e-3c1d2b7f9e01"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:5b1c0d6e-8f0a-4a52-9d0e-3c1d2b7f9e01",
         "resource": {"resourceType": "Patient", "identifier": [{"value": "PT-0a11"}], "gender": "female",
                      "birthDate": "2025-06-30"}, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "AllergyIntolerance", "patient": {"reference": "PT-0a11"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005",
                                           "display": "Allergy to penicillin"}]}},
         "request": {"method": "POST", "url": "AllergyIntolerance"}},
        {"resource": request, "request": {"method": "POST", "url": "MedicationRequest"}}]}
    response = post(client, world, "/fhir", bundle)
    assert response.status_code == 200, response.get_json()
    rx_id = int(response.get_json()["entry"][0]["resource"]["id"].split("-")[0])
    seen = client.get(f"/api/prescriptions/{rx_id}", headers=world.a.headers("pharmacist")).get_json()
    assert seen["patient"]["ref"] == "PT-0a11" and seen["patient"]["birth_date"] == "2025-06-30"
    assert seen["allergies"] == [{"substance": "Allergy to penicillin", "code": "91936005"}]


def test_age_is_said_in_years_months_or_days() -> None:
    from datetime import date

    from pharmacy.prescriptions.domain import age_on

    today = date(2026, 11, 23)
    assert age_on(date(1958, 11, 24), today) == (67, "years")
    assert age_on(date(1958, 11, 23), today) == (68, "years")
    assert age_on(date(2025, 6, 30), today) == (16, "months")
    assert age_on(date(2026, 11, 3), today) == (20, "days")


def test_only_the_holding_pharmacy_and_the_prescriber_see_clinical_facts() -> None:
    from pharmacy.prescriptions.domain import sees_clinical_facts

    def sees(role: str, site: int | None) -> bool:
        return sees_clinical_facts(role, site, prescriber_site_id=1, pharmacy_site_id=3)

    assert sees("pharmacist", 3) and sees("prescriber", 1)
    assert not any([sees("pharmacist", 4), sees("prescriber", 2), sees("admin", None), sees("procurement", None),
                    sees("system", None)])


