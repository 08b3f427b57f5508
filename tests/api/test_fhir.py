"""FHIR R4 intake and output, with HL7's published MedicationRequest example."""

from __future__ import annotations

import copy

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.medicationdispense import MedicationDispense
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.api.test_prescriptions import drugs, stock  # noqa: F401 - fixtures and helpers
from tests.factories import World

pytestmark = pytest.mark.usefixtures("clock")

FHIR = "application/fhir+json"

# HL7's R4 example "medrx0311" (medicationrequest0311), as published, but for its dates: the example was
# written in 2015 with a year of validity, which our rules (and China's) would refuse. Dates are moved to
# the test's day and a 3-day validity; everything else is the published resource.
HL7_MEDRX0311 = {
    "resourceType": "MedicationRequest",
    "id": "medrx0311",
    "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                           "display": "test health data"}]},
    "contained": [{"resourceType": "Medication", "id": "med0316",
                   "code": {"coding": [{"system": "http://snomed.info/sct", "code": "317935006",
                                        "display": "Chlorthalidone 50mg tablet (product)"}]}}],
    "identifier": [{"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": "12345689"}],
    "status": "active",
    "intent": "order",
    "medicationReference": {"reference": "#med0316"},
    "subject": {"reference": "Patient/pat1", "display": "Donald Duck"},
    "encounter": {"reference": "Encounter/f001", "display": "encounter who leads to this prescription"},
    "authoredOn": "2026-11-23",
    "requester": {"reference": "Practitioner/f007", "display": "Patrick Pump"},
    "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "38341003",
                                "display": "Essential hypertension (disorder)"}]}],
    "dosageInstruction": [{
        "sequence": 1,
        "text": "6 mg PO daily for remission induction; adjust dosage to white blood cell (WBC) count.",
        "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
        "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral Route"}]},
        "doseAndRate": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type",
                                              "code": "ordered", "display": "Ordered"}]},
                         "doseQuantity": {"value": 6, "unit": "mg", "system": "http://unitsofmeasure.org",
                                          "code": "mg"}}]}],
    "dispenseRequest": {
        "validityPeriod": {"start": "2026-11-23", "end": "2026-11-26"},
        "numberOfRepeatsAllowed": 3,
        "quantity": {"value": 30, "unit": "TAB", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                     "code": "TAB"},
        "expectedSupplyDuration": {"value": 10, "unit": "days", "system": "http://unitsofmeasure.org",
                                   "code": "d"},
    },
    "substitution": {"allowedBoolean": True,
                     "reason": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                                            "code": "FP", "display": "formulary policy"}]}},
}


@pytest.fixture
def chlorthalidone(client, world: World) -> dict:
    from tests.factories import add_drug

    drug = add_drug(client, world.a, "CTD50", generic_name="氯噻酮片", dosage_form="tablet", strength_amount="50",
                    dispensing_unit="tablet", pack_size=30)
    # The hospital's system speaks SNOMED CT: map that code as its local code.
    client.post("/api/local-codes", headers=world.a.headers("admin"),
                json={"site_id": world.a.sites["LEAD"], "local_code": "317935006", "drug_id": drug["id"]})
    stock(client, world, "C1", drug, "CT-1", "2027-09-30", 300)
    return drug


def one_week(resource: dict) -> dict:
    """The example as an ordinary prescription: no repeats, at most a week's supply."""
    resource["dispenseRequest"]["numberOfRepeatsAllowed"] = 0
    resource["dispenseRequest"]["expectedSupplyDuration"]["value"] = 7
    return resource


def post(client, world: World, path: str, body: dict, role: str = "prescriber"):
    return client.post(path, json=body, headers={**world.a.headers(role), "Content-Type": FHIR})


def test_hl7_published_example_is_accepted_as_a_long_prescription(client, world, chlorthalidone):
    response = post(client, world, "/fhir/MedicationRequest", HL7_MEDRX0311)
    assert response.status_code == 201, response.get_json()
    assert response.mimetype == FHIR
    resource = response.get_json()
    MedicationRequest.model_validate(resource)
    assert resource["status"] == "active" and resource["statusReason"]["coding"][0]["code"] == "routed"
    assert resource["medicationCodeableConcept"]["coding"][0]["code"] == "CTD50"
    assert resource["dispenseRequest"]["numberOfRepeatsAllowed"] == 3
    assert resource["dispenseRequest"]["performer"]["reference"] == "Organization/A-C1"
    read = client.get(response.headers["Location"], headers=world.a.headers("prescriber"))
    assert read.get_json()["id"] == resource["id"]


def test_medication_codeable_concept_and_performer_are_read(client, world, chlorthalidone, drugs):  # noqa: F811
    stock(client, world, "C2", chlorthalidone, "CT-2", "2027-09-30", 300)
    body = copy.deepcopy(HL7_MEDRX0311)
    del body["contained"], body["medicationReference"]
    body["medicationCodeableConcept"] = {"coding": [{"system": "urn:x", "code": "UNKNOWN"},
                                                    {"system": "urn:consortium-pharmacy:drug", "code": "CTD50"}]}
    body["dispenseRequest"]["performer"] = {"reference": "Organization/A-C2"}
    one_week(body)
    body["identifier"][0]["value"] = "ORD-2"
    resource = post(client, world, "/fhir/MedicationRequest", body).get_json()
    assert resource["dispenseRequest"]["performer"]["reference"] == "Organization/A-C2"


def test_a_transaction_bundle_is_one_prescription_with_several_items(client, world, chlorthalidone, drugs):  # noqa: F811
    stock(client, world, "C1", drugs["AML5"], "AM-1", "2027-09-30", 300)
    second = copy.deepcopy(HL7_MEDRX0311)
    del second["contained"], second["medicationReference"]
    second["medicationCodeableConcept"] = {"coding": [{"code": "AML5"}]}
    entries = []
    for resource in (copy.deepcopy(HL7_MEDRX0311), second):
        resource["groupIdentifier"] = {"value": "GRP-9"}
        one_week(resource)
        entries.append({"resource": resource, "request": {"method": "POST", "url": "MedicationRequest"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = post(client, world, "/fhir", bundle)
    assert response.status_code == 200, response.get_json()
    reply = response.get_json()
    Bundle.model_validate(reply)
    assert reply["type"] == "transaction-response" and len(reply["entry"]) == 2
    ids = {e["resource"]["id"].split("-")[0] for e in reply["entry"]}
    assert len(ids) == 1  # one prescription
    again = post(client, world, "/fhir", bundle).get_json()
    assert {e["resource"]["id"] for e in again["entry"]} == {e["resource"]["id"] for e in reply["entry"]}


def test_dispenses_are_readable_as_medication_dispense_with_lot(client, world, chlorthalidone):
    body = one_week(copy.deepcopy(HL7_MEDRX0311))
    resource = post(client, world, "/fhir/MedicationRequest", body).get_json()
    rx_id = int(resource["id"].split("-")[0])
    for action in ("accept", "prepare", "dispense", "hand-over"):
        assert client.post(f"/api/prescriptions/{rx_id}/{action}", json={},
                           headers=world.a.headers("pharmacist")).status_code == 200
    found = client.get(f"/fhir/MedicationDispense?prescription={rx_id}", headers=world.a.headers("prescriber"))
    bundle = found.get_json()
    Bundle.model_validate(bundle)
    dispense = bundle["entry"][0]["resource"]
    MedicationDispense.model_validate(dispense)
    assert dispense["status"] == "completed" and dispense["quantity"]["value"] == 30
    assert dispense["contained"][0]["batch"] == {"lotNumber": "CT-1", "expirationDate": "2027-09-30"}
    assert dispense["substitution"]["wasSubstituted"] is False
    request = client.get(f"/fhir/MedicationRequest/{resource['id']}", headers=world.a.headers("prescriber"))
    assert request.get_json()["status"] == "completed"


def test_invalid_fhir_gets_an_operation_outcome_saying_where(client, world, chlorthalidone):
    body = copy.deepcopy(HL7_MEDRX0311)
    body["status"] = 42
    body["dispenseRequest"]["quantity"]["value"] = "thirty"
    response = post(client, world, "/fhir/MedicationRequest", body)
    assert response.status_code == 400 and response.mimetype == FHIR
    outcome = response.get_json()
    OperationOutcome.model_validate(outcome)
    where = {e for issue in outcome["issue"] for e in issue.get("expression", [])}
    assert "status" in where and any("quantity" in w for w in where)


def test_policy_refusals_are_operation_outcomes_too(client, world, chlorthalidone):
    body = copy.deepcopy(HL7_MEDRX0311)
    body["dispenseRequest"]["validityPeriod"]["end"] = "2027-11-23"
    response = post(client, world, "/fhir/MedicationRequest", body)
    assert response.status_code == 422
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("valid for at most 3 days" in issue["diagnostics"] for issue in outcome["issue"])


def test_fhir_needs_authentication_but_metadata_does_not(client, world):
    response = client.post("/fhir/MedicationRequest", json=HL7_MEDRX0311)
    assert response.status_code == 401 and response.get_json()["resourceType"] == "OperationOutcome"
    assert client.post("/fhir", json={}).status_code == 401
    metadata = client.get("/fhir/metadata")
    assert metadata.status_code == 200
    CapabilityStatement.model_validate(metadata.get_json())


def test_unknown_medication_requests_are_not_found(client, world):
    response = client.get("/fhir/MedicationRequest/999-1", headers=world.a.headers("prescriber"))
    assert response.status_code == 404 and response.get_json()["issue"][0]["code"] == "not-found"
