from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pharmacy.catalog.models import Drug
from pharmacy.consortium.models import Site
from pharmacy.fields import Reference, WholeNumber
from pharmacy.inventory.models import Lot
from pharmacy.prescriptions.domain import (
    CRITICALITIES,
    GENDERS,
    LONGEST,
    MOST_CLINICAL_ENTRIES,
    MOST_REPEATS,
    MOST_SUPPLY_DAYS,
    MOST_UNITS_PER_ISSUE,
    REJECT_REASONS,
    RETURN_REASONS,
    Kind,
    Status,
)
from pharmacy.prescriptions.models import PrescriptionItem
from pharmacy.prescriptions.services import PrescriptionView


class PatientSchema(Schema):
    ref = fields.String(required=True, validate=validate.Length(1, LONGEST["patient"]),
                        metadata={"description": "pseudonymous patient id; no names or ID numbers"})
    district = fields.String(allow_none=True, validate=validate.Length(max=LONGEST["district"]))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    birth_date = fields.Date(allow_none=True, metadata={
        "description": "for the pharmacist's review (age); shown only to the pharmacy holding it and the prescriber"})
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS), metadata={
        "description": "FHIR's administrative gender; shown only to the pharmacy holding it and the prescriber"})


CLINICAL_TEXT = validate.Length(max=LONGEST["clinical"])


class DiagnosisSchema(Schema):
    code = fields.String(load_default="", validate=CLINICAL_TEXT, metadata={"description": "e.g. an ICD-10 code"})
    system = fields.String(load_default="", validate=CLINICAL_TEXT)
    display = fields.String(load_default="", validate=CLINICAL_TEXT, metadata={"description": "in words"})

    @validates_schema
    def _said(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not (data.get("code") or "").strip() and not (data.get("display") or "").strip():
            raise ValidationError("a diagnosis has a code or words", "display")


class AllergySchema(Schema):
    substance = fields.String(required=True, validate=validate.Length(1, LONGEST["clinical"]),
                              metadata={"description": "what the patient is allergic to, in words"})
    code = fields.String(load_default="", validate=CLINICAL_TEXT)
    reaction = fields.String(load_default="", validate=CLINICAL_TEXT)
    criticality = fields.String(load_default="", validate=validate.OneOf(["", *CRITICALITIES]))


class ItemInSchema(Schema):
    drug_code = fields.String(required=True, validate=validate.Length(1, LONGEST["drug_code"]),
                              metadata={"description": "consortium, national or your own local code"})
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, MOST_UNITS_PER_ISSUE),
                              metadata={"description": "dispensing units per issue"})
    supply_days = fields.Integer(required=True, strict=True, validate=validate.Range(1, MOST_SUPPLY_DAYS))
    repeats = fields.Integer(load_default=0, strict=True, validate=validate.Range(0, MOST_REPEATS),
                             metadata={"description": "issues after the first (long prescriptions)"})
    interval_days = fields.Integer(strict=True, validate=validate.Range(1, MOST_SUPPLY_DAYS))
    substitution_allowed = fields.Boolean(load_default=True)
    dosage = fields.String(load_default="", validate=validate.Length(max=LONGEST["dosage"]))


class PrescriptionInSchema(Schema):
    number = fields.String(required=True, validate=validate.Length(1, LONGEST["number"]),
                           metadata={"description": "the hospital's prescription number"})
    patient = fields.Nested(PatientSchema, required=True)
    prescriber = fields.String(load_default="", validate=validate.Length(max=LONGEST["prescriber"]))
    kind = fields.String(load_default=Kind.ORDINARY.value, validate=validate.OneOf([k.value for k in Kind]))
    issued_on = fields.Date(required=True)
    valid_until = fields.Date(metadata={"description": "default: the day of issue"})
    nominated_pharmacy = Reference(Site, "site", metadata={"description": "site id of the pharmacy the patient "
                                                                          "chose"})
    items = fields.List(fields.Nested(ItemInSchema), required=True, validate=validate.Length(1, 20))
    diagnoses = fields.List(fields.Nested(DiagnosisSchema), load_default=list,
                            validate=validate.Length(max=MOST_CLINICAL_ENTRIES),
                            metadata={"description": "why it is prescribed, for the pharmacist's review"})
    allergies = fields.List(fields.Nested(AllergySchema), load_default=list,
                            validate=validate.Length(max=MOST_CLINICAL_ENTRIES),
                            metadata={"description": "the patient's known allergies, for the pharmacist's review"})


class ItemOutSchema(Schema):
    id = fields.Integer()
    drug_id = fields.Integer()
    drug_code = fields.String()
    generic_name = fields.String()
    quantity = fields.Integer()
    supply_days = fields.Integer()
    substitution_allowed = fields.Boolean()
    dosage = fields.String()
    dispensed_this_issue = fields.Integer()


class DispenseOutSchema(Schema):
    id = fields.Integer()
    item_id = fields.Integer()
    issue = fields.Integer()
    drug_id = fields.Integer()
    drug_code = fields.String()
    lot_number = fields.String()
    expiry_date = fields.Date()
    quantity = fields.Integer()
    substituted = fields.Boolean()
    note = fields.String()
    at = fields.DateTime()
    by = fields.String(metadata={"description": "who dispensed it"})
    handed_over_at = fields.DateTime(allow_none=True)
    handed_over_by = fields.String(allow_none=True)
    checked_at = fields.DateTime(allow_none=True, metadata={"description": "confirmed by a second pharmacist"})
    checked_by = fields.String(allow_none=True)
    trace_codes = fields.List(fields.String(), metadata={"description": "the packs' trace codes given"})


class PassedOverSchema(Schema):
    pharmacy = fields.String(metadata={"description": "the code of the pharmacy the prescriber nominated"})
    reason = fields.String(metadata={"enum": ["cannot_fill", "may_not_dispense", "stock_taken"], "description":
                                     "short of usable stock; the drugs are not for it to dispense; another "
                                     "prescription took its stock meanwhile"})
    short_items = fields.List(fields.String(), metadata={"description": "cannot_fill: the drug codes it is short of"})


class RoutingFactsSchema(Schema):
    pharmacy = fields.String()
    nominated = fields.Boolean(metadata={"description": "the prescriber nominated this pharmacy"})
    can_fill = fields.Boolean(metadata={"description": "it can fill every item from usable stock"})
    short_items = fields.List(fields.String(), metadata={"description": "drug codes it cannot fill from stock"})
    district = fields.String(allow_none=True, metadata={"description": "the patient's district, if it is in it"})
    distance_km = fields.Float(allow_none=True, metadata={"description": "from the patient, if both are located"})
    open_queue = fields.Integer(metadata={"description": "prescriptions open at this pharmacy"})
    passed_over = fields.Nested(PassedOverSchema, metadata={
        "description": "present when the pharmacy the prescriber nominated did not get it, and why"})


class RoutingSchema(Schema):
    pharmacy = fields.String()
    reason = fields.String(metadata={"description": "why this pharmacy was chosen"})
    facts = fields.Nested(RoutingFactsSchema, metadata={"description": "the reason as data"})
    considered = fields.List(fields.String())
    returned_from = fields.List(fields.Integer())
    transfers_text = fields.List(fields.String())
    shortages_text = fields.List(fields.String())


class ReturnedSchema(Schema):
    site = fields.String(metadata={"description": "the code of the pharmacy that returned it"})
    reason_code = fields.String()
    note = fields.String()


class StockRequestSchema(Schema):
    drug = fields.String(metadata={"description": "drug code"})
    quantity = fields.Integer()
    donor = fields.String(allow_none=True, metadata={
        "description": "the member asked for a transfer; null: a shortage recorded for procurement"})


class StatusFactsSchema(Schema):
    what = fields.String(metadata={"description": "what happened: routed, awaiting_stock, or the action taken "
                                                  "(accept, reject, prepare, dispense_all, cancel, expire, ...)"})
    returned = fields.Nested(ReturnedSchema, metadata={"description": "routed again after this return"})
    pharmacy = fields.String(metadata={"description": "routed to, or waiting at"})
    requests = fields.List(fields.Nested(StockRequestSchema), metadata={"description": "the stock asked for"})
    reason_code = fields.String()
    note = fields.String()
    issue = fields.Integer(metadata={"description": "a long prescription's issue (1 = first)"})
    issues_total = fields.Integer()
    on = fields.String(metadata={"format": "date", "description": "the issue's due day, or the day validity ended"})
    passed_over = fields.Nested(PassedOverSchema, metadata={"description": "routed elsewhere than nominated: why"})


class PrescriptionOutSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    status = fields.String(metadata={"enum": [s.value for s in Status]})
    status_reason = fields.String(metadata={"description": "why it has this status, in English"})
    status_facts = fields.Nested(StatusFactsSchema, allow_none=True, metadata={
        "description": "the status reason as data (null for prescriptions from before it was kept)"})
    kind = fields.String()
    issued_on = fields.Date()
    valid_until = fields.Date()
    prescriber_site_id = fields.Integer()
    prescriber = fields.String()
    pharmacy_site_id = fields.Integer(allow_none=True)
    nominated_site_id = fields.Integer(allow_none=True)
    patient = fields.Nested(PatientSchema)
    diagnoses = fields.List(fields.Nested(DiagnosisSchema), metadata={
        "description": "only to the pharmacy holding it and the prescriber"})
    allergies = fields.List(fields.Nested(AllergySchema), metadata={
        "description": "only to the pharmacy holding it and the prescriber"})
    routing = fields.Nested(RoutingSchema)
    issue = fields.Integer(metadata={"description": "the issue in progress (1 = first)"})
    issues_total = fields.Integer()
    next_due_on = fields.Date(allow_none=True)
    items = fields.List(fields.Nested(ItemOutSchema))
    dispenses = fields.List(fields.Nested(DispenseOutSchema))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PrescriptionSummarySchema(Schema):
    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    kind = fields.String()
    pharmacy_site_id = fields.Integer(allow_none=True)
    prescriber_site_id = fields.Integer()
    valid_until = fields.Date()
    updated_at = fields.DateTime()


def present(view: PrescriptionView) -> dict[str, Any]:
    """A prescription with its items and dispenses, as the API shows it."""
    rx = view.prescription
    given: dict[int, int] = {}
    for d in view.dispenses:
        if d.issue == rx.current_issue:
            given[d.item_id] = given.get(d.item_id, 0) + d.quantity
    patient: dict[str, Any] = {"ref": rx.patient_ref, "district": rx.patient_district}
    clinical: dict[str, Any] = {}
    if view.clinical:  # the pharmacy holding it and the prescriber only
        patient.update(birth_date=rx.patient_birth_date, gender=rx.patient_gender)
        clinical = {"diagnoses": rx.diagnoses or [], "allergies": rx.allergies or []}
    return {
        "id": rx.id, "number": rx.number, "status": rx.status, "status_reason": rx.status_reason,
        "status_facts": rx.status_facts, "kind": rx.kind,
        "issued_on": rx.issued_on, "valid_until": rx.valid_until, "prescriber_site_id": rx.prescriber_site_id,
        "prescriber": rx.prescriber, "pharmacy_site_id": rx.pharmacy_site_id,
        "nominated_site_id": rx.nominated_site_id,
        "patient": patient, **clinical,
        "routing": rx.routing, "issue": rx.current_issue + 1, "issues_total": rx.issues_total,
        "next_due_on": rx.next_due_on if rx.issues_total > 1 else None,
        "items": [{"id": i.id, "drug_id": i.drug_id, "drug_code": view.drugs[i.drug_id].code,
                   "generic_name": view.drugs[i.drug_id].generic_name, "quantity": i.quantity,
                   "supply_days": i.supply_days, "substitution_allowed": i.substitution_allowed, "dosage": i.dosage,
                   "dispensed_this_issue": given.get(i.id, 0)} for i in view.items],
        "dispenses": [{"id": d.id, "item_id": d.item_id, "issue": d.issue + 1, "drug_id": d.drug_id,
                       "drug_code": view.drugs[d.drug_id].code, "lot_number": d.lot_number,
                       "expiry_date": d.expiry_date, "quantity": d.quantity, "substituted": d.substituted,
                       "note": d.note, "at": d.at, "by": d.actor, "handed_over_at": d.handed_over_at,
                       "handed_over_by": d.handed_over_by, "checked_at": d.checked_at, "checked_by": d.checked_by,
                       "trace_codes": view.trace_codes.get(d.id, [])} for d in view.dispenses],
        "created_at": rx.created_at, "updated_at": rx.updated_at,
    }


class RejectSchema(Schema):
    reason_code = fields.String(required=True, validate=validate.OneOf(sorted(REJECT_REASONS)))
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class ReturnSchema(Schema):
    reason_code = fields.String(required=True, validate=validate.OneOf(sorted(RETURN_REASONS)))
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class CancelSchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class LotChoiceInSchema(Schema):
    lot_id = Reference(Lot, "lot", required=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(1, 100_000))


class DispenseLineSchema(Schema):
    item_id = Reference(PrescriptionItem, "prescription item", required=True)
    quantity = fields.Integer(strict=True, validate=validate.Range(1, 100_000),
                              metadata={"description": "default: what is left of this issue"})
    lots = fields.List(fields.Nested(LotChoiceInSchema), metadata={"description": "only to override FEFO"})
    lot_reason = fields.String(load_default="", validate=validate.Length(max=500))
    substitute_drug_id = Reference(Drug, "drug")
    substitution_reason = fields.String(load_default="", validate=validate.Length(max=500))
    trace_codes = fields.List(fields.String(validate=validate.Length(1, 100)), load_default=list,
                              validate=validate.Length(max=1000), metadata={
                                  "description": "the packs' trace codes (药品追溯码) as scanned: 20 digits, or a GS1 "
                                                 "element string with (01) GTIN and (21) serial; a code dispensed "
                                                 "before anywhere in the consortium is refused"})


class DispenseInSchema(Schema):
    items = fields.List(fields.Nested(DispenseLineSchema), load_default=list,
                        metadata={"description": "empty: dispense everything left, FEFO"})


class PrescriptionQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    site_id = Reference(Site, "site")
    q = fields.String(validate=validate.Length(1, 100), metadata={
        "description": "the number, the patient's pseudonymous id, or a drug's code, name or pinyin initials"})
    kind = fields.String(validate=validate.OneOf([k.value for k in Kind]))


class EventQuerySchema(Schema):
    after = WholeNumber(load_default=0,
                           metadata={"description": "the cursor: the last event id you have seen"})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


class EventSchema(Schema):
    id = fields.Integer(metadata={"description": "cursor"})
    event_id = fields.String(metadata={"description": "stable id for de-duplication"})
    type = fields.String()
    status = fields.String()
    prescription_id = fields.Integer()
    payload = fields.Dict()
    at = fields.DateTime()


class EventPageSchema(Schema):
    events = fields.List(fields.Nested(EventSchema))
    next_cursor = fields.Integer()


class WebhookInSchema(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False, validate=validate.Length(max=500),
                     metadata={"description": "http:// or https:// with a host"})
    site_id = Reference(Site, "site", metadata={"description": "the hospital; default: the caller's site"})


class WebhookSchema(Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    url = fields.String()
    active = fields.Boolean()
    created_at = fields.DateTime()


class NewWebhookSchema(WebhookSchema):
    secret = fields.String(metadata={"description": "to check X-Signature with; shown once"})


class WebhookDeliveryQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))


class WebhookDeliverySchema(Schema):
    id = fields.Integer()
    event_id = fields.String(attribute="event.event_id", metadata={"description": "the event's X-Event-Id"})
    event_type = fields.String(attribute="event.type")
    prescription_id = fields.Integer(attribute="event.prescription_id")
    status = fields.String(attribute="delivery.status", metadata={"description": "pending, delivered or failed"})
    attempts = fields.Integer(attribute="delivery.attempts")
    next_attempt_at = fields.DateTime(attribute="delivery.next_attempt_at")
    last_error = fields.String(attribute="delivery.last_error")
    delivered_at = fields.DateTime(attribute="delivery.delivered_at", allow_none=True)


class RedeliverSchema(Schema):
    since = fields.AwareDateTime(metadata={"description": "only deliveries of events at or after this time"})
    delivery_ids = fields.List(WholeNumber(minimum=1),
                               validate=validate.Length(max=1000), load_default=list,
                               metadata={"description": "only these deliveries"})


class RedeliveredSchema(Schema):
    redelivered = fields.Integer(metadata={"description": "deliveries given up that are due again now"})
