"""FHIR R4 REST endpoints: ``application/fhir+json`` in and out, OperationOutcome for errors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import Response, request
from flask.views import MethodView
from sqlalchemy import select

from pharmacy.api import Blueprint, current_clock, request_uow
from pharmacy.auth import requires
from pharmacy.catalog.services import find_drug_by_code
from pharmacy.consortium.models import Site
from pharmacy.errors import NotFound, ValidationFailed
from pharmacy.hygiene import db_id
from pharmacy.prescriptions import fhir, services
from pharmacy.prescriptions.routes import idempotency_key, limits
from pharmacy.principal import Role
from pharmacy.unit_of_work import UnitOfWork


def _fhir(description: str, resource: str) -> dict[str, Any]:
    return {"description": description, "content": {fhir.FHIR_JSON: {"schema": {
        "type": "object", "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": [resource]}}}}}}


OPERATION_OUTCOME = _fhir("an OperationOutcome: what is wrong, one issue per detail, each with its expression",
                          "OperationOutcome")


class FhirBlueprint(Blueprint):
    """Errors under /fhir are OperationOutcomes (see pharmacy.errors), and documented as such."""

    @staticmethod
    def _prepare_response_doc(doc: Any, doc_info: Any, *, api: Any, spec: Any, **kwargs: Any) -> Any:
        doc = Blueprint._prepare_response_doc(doc, doc_info, api=api, spec=spec, **kwargs)
        doc.setdefault("responses", {})["default"] = OPERATION_OUTCOME
        return doc


blp = FhirBlueprint("fhir", __name__, url_prefix="/fhir",
                    description="FHIR R4: MedicationRequest in; MedicationRequest and MedicationDispense out")

ANY_ROLE = (Role.ADMIN, Role.PRESCRIBER, Role.PHARMACIST, Role.PROCUREMENT)
FHIR_BODY = {"required": True, "content": {fhir.FHIR_JSON: {"schema": {"type": "object"}}}}


def fhir_response(resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(resource, ensure_ascii=False, default=str), status=status, mimetype=fhir.FHIR_JSON,
                    headers=headers)


def _body() -> tuple[Any, str]:
    raw = request.get_data()
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise fhir.FhirInvalid("the body is not JSON",
                               [{"expression": "body", "diagnostics": "malformed JSON"}]) from None
    return body, hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _take_in(resources: list[dict[str, Any]], digest: str,
             supporting: dict[str, dict[str, Any]] | None = None) -> tuple[services.PrescriptionView, bool]:
    uow = request_uow()
    with uow:
        site_id = uow.principal.site_id
        resolver = fhir.Resolver(lambda code: find_drug_by_code(uow.session, code, site_id) is not None)
        data = fhir.read_medication_requests(resources, uow.today(), resolver, supporting)
    intake = services.submit_prescription(request_uow(), data, digest, idempotency_key(), limits())
    return intake.view, intake.created


def _site_codes(uow: UnitOfWork) -> dict[int, str]:
    with uow:
        return {site_id: code for site_id, code in uow.session.execute(select(Site.id, Site.code))}


def _requests(view: services.PrescriptionView) -> list[dict[str, Any]]:
    codes = _site_codes(request_uow())
    pharmacy = codes.get(view.prescription.pharmacy_site_id) if view.prescription.pharmacy_site_id else None
    return [fhir.medication_request(view, item, pharmacy) for item in view.items]


@blp.route("/metadata")
class MetadataView(MethodView):
    @blp.doc(security=[], responses={"200": _fhir("the CapabilityStatement (no credentials needed)",
                                                  "CapabilityStatement")})
    def get(self) -> Response:
        """The server's CapabilityStatement"""
        return fhir_response(fhir.capability_statement(current_clock().today()))


@blp.route("")
class TransactionView(MethodView):
    @requires(Role.PRESCRIBER)
    @blp.doc(requestBody=FHIR_BODY, responses={"200": _fhir("transaction-response Bundle", "Bundle")})
    def post(self) -> Response:
        """A transaction Bundle of MedicationRequests sharing a groupIdentifier: one prescription"""
        body, digest = _body()
        requests, supporting = fhir.read_transaction(body)
        view, created = _take_in(requests, digest, supporting)
        return fhir_response(fhir.transaction_response(_requests(view), created))


@blp.route("/MedicationRequest")
class MedicationRequestsView(MethodView):
    @requires(Role.PRESCRIBER)
    @blp.doc(requestBody=FHIR_BODY, responses={"201": _fhir("the MedicationRequest as taken in", "MedicationRequest"),
                                                "200": _fhir("a retry: the MedicationRequest taken in before",
                                                             "MedicationRequest")})
    def post(self) -> Response:
        """Send a one-item prescription as a MedicationRequest"""
        body, digest = _body()
        view, created = _take_in([body], digest)
        resource = _requests(view)[0]
        return fhir_response(resource, 201 if created else 200,
                             {"Location": f"/fhir/MedicationRequest/{resource['id']}"})


@blp.route("/MedicationRequest/<string:request_id>")
class MedicationRequestView(MethodView):
    @requires(*ANY_ROLE)
    @blp.doc(responses={"200": _fhir("the MedicationRequest, its status mapped from ours", "MedicationRequest")})
    def get(self, request_id: str) -> Response:
        """Read a MedicationRequest (one item of a prescription) with its current status"""
        rx_text, _, item_text = request_id.partition("-")
        rx_id, item_id = db_id(rx_text), db_id(item_text)
        if rx_id is None or item_id is None:
            raise NotFound(f"MedicationRequest/{request_id} not found")
        view = services.get_prescription(request_uow(), rx_id)
        resource = next((r for r in _requests(view) if r["id"] == request_id), None)
        if resource is None:
            raise NotFound(f"MedicationRequest/{request_id} not found")
        return fhir_response(resource)


@blp.route("/MedicationDispense")
class MedicationDispensesView(MethodView):
    @requires(*ANY_ROLE)
    @blp.doc(parameters=[{"in": "query", "name": "prescription", "required": True, "schema": {"type": "string"}}],
             responses={"200": _fhir("searchset Bundle of MedicationDispense", "Bundle")})
    def get(self) -> Response:
        """What was dispensed for a prescription: lot, quantity, substitution"""
        raw = (request.args.get("prescription") or "").removeprefix("MedicationRequest/").split("-")[0]
        if not raw.isascii() or not raw.isdigit():
            said = "not a prescription id" if raw else "a prescription id is required"
            raise ValidationFailed("search by ?prescription=<id>: the prescription id, or a MedicationRequest id",
                                   {"prescription": [said]})
        rx_id = db_id(raw)
        if rx_id is None:
            raise NotFound(f"prescription {raw} not found")
        view = services.get_prescription(request_uow(), rx_id)
        codes = _site_codes(request_uow())
        return fhir_response(fhir.searchset([fhir.medication_dispense(view, d, codes.get(d.site_id, str(d.site_id)))
                                             for d in view.dispenses], request.url_root + "fhir"))
