"""FHIR R4 at the edge: MedicationRequest in, MedicationRequest and MedicationDispense out.

Input is validated with fhir.resources (its R4B models, which match R4 for these resources) before it is
read; output is built as plain JSON and validated by the same library in the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from pydantic import ValidationError as PydanticValidationError

from pharmacy.catalog.models import Drug
from pharmacy.errors import ValidationFailed
from pharmacy.prescriptions.domain import (
    CRITICALITIES,
    GENDERS,
    LONGEST,
    MOST_CLINICAL_ENTRIES,
    MOST_REPEATS,
    MOST_SUPPLY_DAYS,
    MOST_UNITS_PER_ISSUE,
    Kind,
    Status,
)
from pharmacy.prescriptions.dosage import dosage_instructions_zh
from pharmacy.prescriptions.models import Dispense, PrescriptionItem
from pharmacy.prescriptions.services import ItemInput, PrescriptionInput, PrescriptionView

FHIR_JSON = "application/fhir+json"
DRUG_SYSTEM = "urn:consortium-pharmacy:drug"
PRESCRIPTION_SYSTEM = "urn:consortium-pharmacy:prescription"
DISTRICT_EXTENSION = "urn:consortium-pharmacy:patient-district"
PATIENT_SYSTEM = "urn:consortium-pharmacy:patient"
TRACE_CODE_EXTENSION = "urn:consortium-pharmacy:trace-code"  # one per pack given (药品追溯码)
TRACE_CODE_SYSTEM = "urn:consortium-pharmacy:trace-code"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# R4's substitution.allowedCodeableConcept takes the v3 ActSubstanceAdminSubstitutionCode value set (its codes live
# in v3-ActCode; older senders name v3-substanceAdminSubstitution). Every code allows a substitution but N (none);
# ours is always within an equivalence group (same ingredient, form and strength), which each of them allows.
SUBSTITUTION_SYSTEMS = {None, "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                        "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution"}
SUBSTITUTION_CODES = {"E": True, "EC": True, "BC": True, "G": True, "TE": True, "TB": True, "TG": True, "F": True,
                      "N": False}
LONGEST_DOSAGE_JSON = 5000
UCUM_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}
ACCEPTED_INTENTS = {"order", "original-order", "instance-order"}
URGENT = {"urgent", "asap", "stat"}


class FhirInvalid(ValidationFailed):
    """Input that is not valid FHIR R4; said as an OperationOutcome with the failing paths."""

    status = 400


def _validated(model: Any, resource: Any, what: str) -> Any:
    if not isinstance(resource, dict) or resource.get("resourceType") != what:
        raise FhirInvalid(f"expected a {what} resource", [{"expression": "resourceType", "diagnostics": what}])
    try:
        return model.model_validate(resource)
    except PydanticValidationError as error:
        issues = [{"expression": ".".join(str(p) for p in e["loc"]) or what, "diagnostics": e["msg"]}
                  for e in error.errors()]
        raise FhirInvalid(f"the {what} is not valid FHIR R4: {len(issues)} problem(s)", issues) from None


def _days(duration: Any, where: str) -> int | None:
    if duration is None or duration.value is None:
        return None
    unit = (duration.code or duration.unit or "d").lower()
    if unit not in UCUM_DAYS:
        raise ValidationFailed(f"{where}: unit {unit!r} is not understood; use days (d) or weeks (wk)")
    days = Decimal(str(duration.value)) * UCUM_DAYS[unit]
    if days != days.to_integral_value() or not 0 < days <= MOST_SUPPLY_DAYS:
        raise ValidationFailed(f"{where}: must be a whole number of days, 1 to {MOST_SUPPLY_DAYS}",
                               [{"field": where, "reason": f"{days} days"}])
    return int(days)


def _at(count: int, index: int, path: str) -> str:
    """Where in the request a MedicationRequest's ``path`` is: itself, or an entry of a transaction Bundle."""
    return path if count == 1 else f"entry[{index}].resource.{path}"


def _medication_codes(mr: Any) -> list[str]:
    concept = mr.medicationCodeableConcept
    if concept is None and mr.medicationReference is not None:
        reference = mr.medicationReference.reference or ""
        if not reference.startswith("#"):
            raise ValidationFailed("medicationReference must point to a contained Medication (#id)",
                                   [{"field": "medicationReference", "reason": reference}])
        contained = {r.id: r for r in (mr.contained or []) if r.get_resource_type() == "Medication"}
        medication = contained.get(reference[1:])
        if medication is None:
            raise ValidationFailed(f"no contained Medication {reference}",
                                   [{"field": "medicationReference", "reason": reference}])
        concept = medication.code
    codes = [c.code for c in (concept.coding or []) if c.code] if concept is not None else []
    if not codes:
        raise ValidationFailed("the medication has no code", [{"field": "medication", "reason": "no coding.code"}])
    return codes


SUPPORTING = {"Patient": Patient, "AllergyIntolerance": AllergyIntolerance, "Practitioner": Practitioner,
              "PractitionerRole": PractitionerRole}
INACTIVE_ALLERGY = {"inactive", "resolved", "refuted", "entered-in-error"}


class Resources:
    """What a MedicationRequest's references point at: its own contained resources (``#id``) and the other
    entries of the transaction it came in (by ``fullUrl`` and by ``Type/id``)."""

    def __init__(self, raw: dict[str, Any], supporting: dict[str, dict[str, Any]]) -> None:
        self.contained = {f"#{r.get('id')}": r for r in raw.get("contained") or [] if isinstance(r, dict)}
        self.supporting = supporting

    def get(self, reference: str | None, kind: str) -> dict[str, Any] | None:
        if not reference:
            return None
        found = self.contained.get(reference) if reference.startswith("#") else self.supporting.get(reference)
        return found if found is not None and found.get("resourceType") == kind else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in [*self.contained.values(), *self.supporting.values()] if r.get("resourceType") == kind]


def _patient(mr: Any, resources: Resources | None = None) -> str:
    """The pseudonymous patient id: the subject's identifier if sent (it is the business id: the reference may be
    one made from it, see :func:`patient_id`), else the id of its Patient reference, else the identifier of the
    Patient it points at (contained, or in the transaction)."""
    subject = mr.subject
    ref = subject.reference or "" if subject else ""
    if subject is not None and subject.identifier is not None and subject.identifier.value:
        return str(subject.identifier.value)
    if ref.startswith("Patient/") and len(ref) > len("Patient/"):
        return str(ref.removeprefix("Patient/"))
    patient = resources.get(ref, "Patient") if resources is not None else None
    identifiers = [i.get("value") for i in (patient or {}).get("identifier") or [] if i.get("value")]
    if identifiers:
        return str(identifiers[0])
    raise ValidationFailed("subject must reference the patient (Patient/<pseudonymous id>, or a Patient with an "
                           "identifier)", [{"field": "subject", "reason": ref or "missing"}])


def _concept_words(concept: dict[str, Any] | None) -> tuple[str, str, str]:
    """(code, system, words) of a CodeableConcept: its first coding, and its text or that coding's display."""
    concept = concept or {}
    coding: dict[str, Any] = next((c for c in concept.get("coding") or [] if c.get("code") or c.get("display")), {})
    return (str(coding.get("code") or ""), str(coding.get("system") or ""),
            str(concept.get("text") or coding.get("display") or ""))


def _diagnoses(raws: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Why it is prescribed: every MedicationRequest's ``reasonCode``, each once."""
    found: list[dict[str, str]] = []
    for raw in raws:
        for concept in raw.get("reasonCode") or []:
            code, system, words = _concept_words(concept)
            said = {k: v for k, v in {"code": code, "system": system, "display": words}.items() if v}
            if said and said not in found:
                found.append(said)
    return found


def _allergies(resources: list[Resources], raws: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The patient's allergies the prescriber sent: AllergyIntolerance resources contained in the requests or
    entries of the transaction (those resolved, refuted or entered in error left out), each once."""
    seen: list[dict[str, Any]] = []
    for where in resources:
        for allergy in where.all("AllergyIntolerance"):
            if allergy not in seen:
                seen.append(allergy)
    found: list[dict[str, str]] = []
    for allergy in seen:
        statuses = {_concept_words(allergy.get(name))[0] for name in ("clinicalStatus", "verificationStatus")}
        if statuses & INACTIVE_ALLERGY:
            continue
        code, _, words = _concept_words(allergy.get("code"))
        reaction: dict[str, Any] = next(iter(allergy.get("reaction") or []), {})
        manifestation = _concept_words(next(iter(reaction.get("manifestation") or []), None))[2]
        criticality = allergy.get("criticality") if allergy.get("criticality") in CRITICALITIES else ""
        said = {k: v for k, v in {"substance": words or code, "code": code, "reaction": manifestation,
                                  "criticality": criticality}.items() if v}
        if said.get("substance") and said not in found:
            found.append(said)
    return found


def _human_name(names: list[dict[str, Any]]) -> str:
    """A practitioner's name as written: its text, or family and given names (run together when Chinese)."""
    name = next(iter(names), {})
    if name.get("text"):
        return str(name["text"])
    family, given = str(name.get("family") or ""), "".join(name.get("given") or [])
    cjk = any("\u4e00" <= c <= "\u9fff" for c in family + given)
    return f"{family}{given}" if cjk else " ".join(p for p in (" ".join(name.get("given") or []), family) if p)


def _requester(mr: Any, resources: Resources) -> str:
    """The prescriber's name: the requester's display, or the name of the Practitioner (or PractitionerRole's
    practitioner) it points at."""
    requester = mr.requester
    if requester is None:
        return ""
    if requester.display:
        return str(requester.display)
    practitioner = resources.get(requester.reference, "Practitioner")
    role = resources.get(requester.reference, "PractitionerRole")
    if role is not None:
        who = role.get("practitioner") or {}
        practitioner = resources.get(who.get("reference"), "Practitioner")
        if practitioner is None and who.get("display"):
            return str(who["display"])
    return _human_name((practitioner or {}).get("name") or [])


def _performer_code(mr: Any) -> str | None:
    performer = mr.dispenseRequest.performer if mr.dispenseRequest else None
    if performer is None:
        return None
    if performer.identifier is not None and performer.identifier.value:
        return str(performer.identifier.value)
    match = re.fullmatch(r"Organization/(.+)", performer.reference or "")
    return match.group(1) if match else None


def _substitution(mr: Any, raw: dict[str, Any], where: str) -> tuple[bool, dict[str, Any] | None]:
    """Whether the prescriber allows a substitution, and the concept to keep when it was said as one."""
    substitution = mr.substitution
    if substitution is None:
        return True, None
    if substitution.allowedBoolean is not None:
        return bool(substitution.allowedBoolean), None
    concept = substitution.allowedCodeableConcept
    if concept is None:
        return True, None
    codes = [c.code for c in concept.coding or [] if c.system in SUBSTITUTION_SYSTEMS and c.code in SUBSTITUTION_CODES]
    if not codes:
        raise ValidationFailed("substitution.allowedCodeableConcept is not a v3 substanceAdminSubstitution code",
                               [{"field": f"{where}.allowedCodeableConcept",
                                 "reason": "use one of " + ", ".join(sorted(SUBSTITUTION_CODES))}])
    return SUBSTITUTION_CODES[codes[0]], raw["substitution"]["allowedCodeableConcept"]


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


class Resolver:
    """Picks, among a MedicationRequest's codes, the one the catalog knows (first match wins)."""

    def __init__(self, knows: Any) -> None:
        self._knows = knows

    def pick(self, codes: list[str]) -> str:
        return next((code for code in codes if self._knows(code)), codes[0])


def read_medication_requests(resources: list[dict[str, Any]], today: date, resolver: Resolver,
                             supporting: dict[str, dict[str, Any]] | None = None) -> PrescriptionInput:
    """One prescription from one or more MedicationRequests (several share a ``groupIdentifier``), with what the
    prescriber sent for the pharmacist's review: the Patient's birth date and gender (contained, or an entry of the
    transaction), ``reasonCode``, AllergyIntolerance resources, and the requester's name."""
    requests = [_validated(MedicationRequest, r, "MedicationRequest") for r in resources]
    around = [Resources(raw, supporting or {}) for raw in resources]
    first = requests[0]
    groups = {(mr.groupIdentifier.value if mr.groupIdentifier else None) for mr in requests}
    if len(requests) > 1 and (len(groups) != 1 or None in groups):
        raise ValidationFailed("the MedicationRequests of one prescription share one groupIdentifier",
                               [{"field": "groupIdentifier", "reason": "differs or is missing"}])
    patients = {_patient(mr, where) for mr, where in zip(requests, around, strict=True)}
    if len(patients) > 1:
        raise ValidationFailed("all items of one prescription are for one patient",
                               [{"field": "subject", "reason": ", ".join(sorted(patients))}])
    for index, mr in enumerate(requests):
        if mr.intent not in ACCEPTED_INTENTS or mr.status != "active":
            raise ValidationFailed("only active orders are taken in",
                                   [{"field": f"entry[{index}]", "reason": f"status {mr.status}, intent {mr.intent}"}])
    number = (first.groupIdentifier.value if first.groupIdentifier else None) \
        or (first.identifier[0].value if first.identifier else None) or first.id
    if not number:
        raise ValidationFailed("the prescription needs an identifier (or groupIdentifier) to be told apart",
                               [{"field": "identifier", "reason": "missing"}])
    too_long: list[dict[str, str]] = []

    def within(value: Any, longest: int, expression: str) -> None:
        if value is not None and len(str(value)) > longest:
            too_long.append({"field": expression, "reason": f"at most {longest} characters ({len(str(value))} sent)"})

    within(number, LONGEST["number"], "groupIdentifier.value" if first.groupIdentifier else "identifier[0].value")
    prescriber = _requester(first, around[0])
    within(prescriber, LONGEST["prescriber"],
           "requester.display" if first.requester and first.requester.display else "requester")
    within(next(iter(patients)), LONGEST["patient"], "subject")
    subject_ref = first.subject.reference if first.subject else None
    patient = around[0].get(subject_ref, "Patient") or {}
    diagnoses, allergies = _diagnoses(resources), _allergies(around, resources)
    for what, said in (("reasonCode", diagnoses), ("AllergyIntolerance", allergies)):
        if len(said) > MOST_CLINICAL_ENTRIES:
            too_long.append({"field": what, "reason": f"at most {MOST_CLINICAL_ENTRIES} ({len(said)} sent)"})
        for n, entry in enumerate(said):
            for name, value in entry.items():
                within(value, LONGEST["clinical"], f"{what}[{n}].{name}")
    for index, resource in enumerate(resources):
        dosages = resource.get("dosageInstruction") or []
        within(dosage_instructions_zh(dosages), LONGEST["dosage"], _at(len(requests), index, "dosageInstruction"))
        within(json.dumps(dosages, ensure_ascii=False), LONGEST_DOSAGE_JSON,
               _at(len(requests), index, "dosageInstruction"))
    if too_long:
        raise ValidationFailed(f"the prescription says more than it may: {len(too_long)} field(s) too long", too_long)
    request = first.dispenseRequest
    issued_on = _as_date(first.authoredOn) or today
    validity = request.validityPeriod if request else None
    valid_until = (_as_date(validity.end) if validity and validity.end else None) or issued_on
    items = []
    repeats_seen = 0
    for index, mr in enumerate(requests):
        dr = mr.dispenseRequest
        if dr is None or dr.quantity is None or dr.quantity.value is None:
            raise ValidationFailed("dispenseRequest.quantity is required",
                                   [{"field": f"entry[{index}].dispenseRequest.quantity", "reason": "missing"}])
        quantity = Decimal(str(dr.quantity.value))
        if quantity != quantity.to_integral_value() or not 0 < quantity <= MOST_UNITS_PER_ISSUE:
            raise ValidationFailed(f"quantity is a whole number of dispensing units, 1 to {MOST_UNITS_PER_ISSUE}",
                                   [{"field": _at(len(requests), index, "dispenseRequest.quantity.value"),
                                     "reason": f"{quantity} is not 1 to {MOST_UNITS_PER_ISSUE}"}])
        supply = _days(dr.expectedSupplyDuration, _at(len(requests), index, "dispenseRequest.expectedSupplyDuration"))
        if supply is None:
            raise ValidationFailed("dispenseRequest.expectedSupplyDuration is required",
                                   [{"field": _at(len(requests), index, "dispenseRequest.expectedSupplyDuration"),
                                     "reason": "missing"}])
        repeats = int(dr.numberOfRepeatsAllowed or 0)
        if repeats > MOST_REPEATS:
            raise ValidationFailed(f"a long prescription has at most {MOST_REPEATS} repeats",
                                   [{"field": _at(len(requests), index, "dispenseRequest.numberOfRepeatsAllowed"),
                                     "reason": f"{repeats} asked"}])
        repeats_seen = max(repeats_seen, repeats)
        allowed, concept = _substitution(mr, resources[index], _at(len(requests), index, "substitution"))
        structured = resources[index].get("dosageInstruction") or None
        items.append(ItemInput(
            code=resolver.pick(_medication_codes(mr)), quantity=int(quantity), supply_days=supply, repeats=repeats,
            interval_days=_days(dr.dispenseInterval, _at(len(requests), index, "dispenseRequest.dispenseInterval")),
            substitution_allowed=allowed, substitution_concept=concept,
            dosage=dosage_instructions_zh(structured or []), dosage_structured=structured, external_id=mr.id))
    continuous = any(c.code == "continuous" for c in (first.courseOfTherapyType.coding or [])) \
        if first.courseOfTherapyType else False
    kind = Kind.LONG if repeats_seen or continuous else Kind.EMERGENCY if first.priority in URGENT else Kind.ORDINARY
    district = next((e.valueString for e in (first.extension or []) if e.url == DISTRICT_EXTENSION), None)
    gender = patient.get("gender") if patient.get("gender") in GENDERS else None
    return PrescriptionInput(
        number=str(number), patient_ref=patients.pop(), kind=kind, issued_on=issued_on, valid_until=valid_until,
        items=tuple(items), prescriber=prescriber,
        patient_district=district, nominated_site_code=_performer_code(first), source="fhir",
        patient_birth_date=_as_date(patient.get("birthDate")) if patient.get("birthDate") else None,
        patient_gender=gender, diagnoses=tuple(diagnoses), allergies=tuple(allergies))


def read_transaction(bundle: Any) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """The MedicationRequests of a transaction Bundle (each a POST to MedicationRequest), and the resources they may
    point at (a Patient, AllergyIntolerance, Practitioner or PractitionerRole entry) by ``fullUrl``, by ``Type/id``
    and by its place in the Bundle."""
    parsed = _validated(Bundle, bundle, "Bundle")
    if parsed.type != "transaction":
        raise ValidationFailed("POST /fhir takes a transaction Bundle", [{"field": "type", "reason": parsed.type}])
    resources = []
    supporting: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(bundle.get("entry") or []):
        resource = entry.get("resource") or {}
        kind = resource.get("resourceType")
        method = (entry.get("request") or {}).get("method")
        if kind in SUPPORTING:
            _validated(SUPPORTING[kind], resource, kind)
            for name in (entry.get("fullUrl"), f"{kind}/{resource.get('id')}" if resource.get("id") else None,
                         f"entry[{index}]"):
                if name:
                    supporting[name] = resource
            continue
        if kind != "MedicationRequest" or method != "POST":
            raise ValidationFailed("each entry POSTs a MedicationRequest, or is a Patient, AllergyIntolerance, "
                                   "Practitioner or PractitionerRole it points at",
                                   [{"field": f"entry[{index}]", "reason": f"{kind} {method}"}])
        resources.append(resource)
    if not resources:
        raise ValidationFailed("the Bundle has no MedicationRequest", [{"field": "entry", "reason": "empty"}])
    return resources, supporting


# Output -------------------------------------------------------------------------------------------

REQUEST_STATUS = {Status.COMPLETED: "completed", Status.CANCELLED: "cancelled", Status.REJECTED: "cancelled",
                  Status.EXPIRED: "stopped"}


def _drug_concept(drug: Drug) -> dict[str, Any]:
    coding = [{"system": DRUG_SYSTEM, "code": drug.code, "display": drug.generic_name}]
    return {"coding": coding, "text": drug.generic_name}


def medication_request_id(rx_id: int, item_id: int) -> str:
    return f"{rx_id}-{item_id}"


def patient_id(patient_ref: str) -> str:
    """A valid FHIR id for a pseudonymous patient id: itself if it is one, else one made from it that stays
    apart from every other (its valid characters, then a digest of the whole)."""
    if FHIR_ID.fullmatch(patient_ref):
        return patient_ref
    kept = re.sub(r"[^A-Za-z0-9\-.]", "-", patient_ref)[:40]
    return f"{kept}-{hashlib.sha256(patient_ref.encode()).hexdigest()[:16]}"


def subject(patient_ref: str) -> dict[str, Any]:
    """The patient as a Reference: a valid id, and the pseudonymous id itself as an identifier when they differ."""
    said: dict[str, Any] = {"reference": f"Patient/{patient_id(patient_ref)}"}
    if patient_id(patient_ref) != patient_ref:
        said["identifier"] = {"system": PATIENT_SYSTEM, "value": patient_ref}
    return said


def medication_request(view: PrescriptionView, item: PrescriptionItem, pharmacy_code: str | None) -> dict[str, Any]:
    """One item of a prescription as a FHIR R4 MedicationRequest, its status mapped from ours."""
    rx = view.prescription
    drug = view.drugs[item.drug_id]
    status = Status(rx.status)
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest", "id": medication_request_id(rx.id, item.id),
        "identifier": [{"system": PRESCRIPTION_SYSTEM, "value": rx.number}],
        "groupIdentifier": {"system": PRESCRIPTION_SYSTEM, "value": rx.number},
        "status": REQUEST_STATUS.get(status, "active"),
        "statusReason": {"coding": [{"system": "urn:consortium-pharmacy:status", "code": rx.status}],
                         "text": rx.status_reason or rx.status},
        "intent": "order", "medicationCodeableConcept": _drug_concept(drug),
        "subject": subject(rx.patient_ref), "authoredOn": rx.issued_on.isoformat(),
        "dispenseRequest": {
            "validityPeriod": {"start": rx.issued_on.isoformat(), "end": rx.valid_until.isoformat()},
            "numberOfRepeatsAllowed": rx.issues_total - 1,
            "quantity": {"value": item.quantity, "unit": drug.dispensing_unit},
            "expectedSupplyDuration": {"value": item.supply_days, "unit": "days",
                                       "system": "http://unitsofmeasure.org", "code": "d"},
        },
        "substitution": {"allowedCodeableConcept": item.substitution_concept} if item.substitution_concept
        else {"allowedBoolean": item.substitution_allowed},
    }
    if rx.interval_days:
        resource["dispenseRequest"]["dispenseInterval"] = {
            "value": rx.interval_days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
    if pharmacy_code:
        resource["dispenseRequest"]["performer"] = {"reference": f"Organization/{pharmacy_code}"}
    if item.dosage_structured:
        resource["dosageInstruction"] = item.dosage_structured
    elif item.dosage:
        resource["dosageInstruction"] = [{"text": item.dosage}]
    if view.clinical and rx.diagnoses:  # only to the pharmacy holding it and the prescriber
        resource["reasonCode"] = [{**({"coding": [{k: d[k] for k in ("system", "code", "display") if d.get(k)}]}
                                      if d.get("code") else {}), **({"text": d["display"]} if d.get("display") else {})}
                                  for d in rx.diagnoses]
    if rx.prescriber:
        resource["requester"] = {"display": rx.prescriber}
    return resource


def medication_dispense(view: PrescriptionView, dispense: Dispense, site_code: str) -> dict[str, Any]:
    """One dispensed lot as a FHIR R4 MedicationDispense (the lot travels in a contained Medication)."""
    rx = view.prescription
    drug = view.drugs[dispense.drug_id]
    resource: dict[str, Any] = {
        "resourceType": "MedicationDispense", "id": str(dispense.id),
        "contained": [{"resourceType": "Medication", "id": "dispensed", "code": _drug_concept(drug),
                       "batch": {"lotNumber": dispense.lot_number,
                                 "expirationDate": dispense.expiry_date.isoformat()}}],
        "status": "completed" if dispense.handed_over_at else "in-progress",
        "medicationReference": {"reference": "#dispensed"},
        "subject": subject(rx.patient_ref),
        "performer": [{"actor": {"reference": f"Organization/{site_code}"}}],
        "authorizingPrescription": [{"reference": f"MedicationRequest/"
                                                  f"{medication_request_id(rx.id, dispense.item_id)}"}],
        "quantity": {"value": dispense.quantity, "unit": drug.dispensing_unit},
        "whenPrepared": dispense.at.isoformat(),
        "substitution": {"wasSubstituted": dispense.substituted},
    }
    codes = view.trace_codes.get(dispense.id, [])
    if codes:  # the packs given, each by its trace code
        resource["extension"] = [{"url": TRACE_CODE_EXTENSION, "valueIdentifier": {"system": TRACE_CODE_SYSTEM,
                                                                                    "value": code}} for code in codes]
    if dispense.handed_over_at:
        resource["whenHandedOver"] = dispense.handed_over_at.isoformat()
    if dispense.substituted and dispense.note:
        resource["substitution"]["reason"] = [{"text": dispense.note}]
    return resource


def searchset(resources: list[dict[str, Any]], base: str) -> dict[str, Any]:
    """A searchset Bundle; each entry's ``fullUrl`` is absolute, under ``base`` (the server's FHIR base URL)."""
    base = base.rstrip("/")
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                      for r in resources]}


def transaction_response(resources: list[dict[str, Any]], created: bool) -> dict[str, Any]:
    status = "201 Created" if created else "200 OK"
    return {"resourceType": "Bundle", "type": "transaction-response",
            "entry": [{"resource": r, "response": {"status": status,
                                                   "location": f"{r['resourceType']}/{r['id']}"}}
                      for r in resources]}


def capability_statement(today: date) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": today.isoformat(), "kind": "instance",
        "fhirVersion": "4.0.1", "format": [FHIR_JSON, "json"],
        "implementation": {"description": "Consortium shared pharmacy: prescription intake and dispensing"},
        "rest": [{
            "mode": "server",
            "security": {"description": "Authorization: Bearer <API key> of a prescribing system"},
            "resource": [
                {"type": "MedicationRequest", "interaction": [{"code": "create"}, {"code": "read"}]},
                {"type": "MedicationDispense", "interaction": [{"code": "search-type"}],
                 "searchParam": [{"name": "prescription", "type": "reference",
                                  "documentation": "the prescription id (or a MedicationRequest id)"}]},
            ],
            "interaction": [{"code": "transaction"}],
        }],
    }
