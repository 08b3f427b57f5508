from __future__ import annotations

import hashlib
import json
from typing import Any

from flask import current_app, request
from flask.views import MethodView

from pharmacy.api import Blueprint, page_items, page_request, paginate, request_uow
from pharmacy.auth import current_principal, requires
from pharmacy.errors import ValidationFailed
from pharmacy.inventory.services import LotChoice
from pharmacy.prescriptions import services, webhooks
from pharmacy.prescriptions.domain import Kind, Limits
from pharmacy.prescriptions.schemas import (
    CancelSchema,
    DispenseInSchema,
    EventPageSchema,
    EventQuerySchema,
    NewWebhookSchema,
    PrescriptionInSchema,
    PrescriptionOutSchema,
    PrescriptionQuerySchema,
    PrescriptionSummarySchema,
    RedeliveredSchema,
    RedeliverSchema,
    RejectSchema,
    ReturnSchema,
    WebhookDeliveryQuerySchema,
    WebhookDeliverySchema,
    WebhookInSchema,
    WebhookSchema,
    present,
)
from pharmacy.principal import Role

blp = Blueprint("prescriptions", __name__, url_prefix="/api",
                description="Prescription intake, routing, review, dispensing and events to prescribers")

ANY_ROLE = (Role.ADMIN, Role.PRESCRIBER, Role.PHARMACIST, Role.PROCUREMENT)
IDEMPOTENCY_KEY = {"in": "header", "name": "Idempotency-Key", "required": False, "schema": {"type": "string"},
                   "description": "a retry with the same key returns the first result and creates nothing"}


def limits() -> Limits:
    config = current_app.config
    return config.get("PRESCRIPTION_LIMITS") or Limits(
        max_validity_days=config["MAX_VALIDITY_DAYS"], ordinary_supply_days=config["ORDINARY_SUPPLY_DAYS"],
        emergency_supply_days=config["EMERGENCY_SUPPLY_DAYS"], long_supply_days=config["LONG_SUPPLY_DAYS"])


def request_hash() -> str:
    """A fingerprint of the body as sent, to tell a retry from a different request under the same key."""
    body = request.get_json(silent=True)
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 120):
        raise ValidationFailed("Idempotency-Key must be 1 to 120 characters", {"Idempotency-Key": key})
    return key


def _input(data: dict[str, Any]) -> services.PrescriptionInput:
    patient = data["patient"]
    return services.PrescriptionInput(
        number=data["number"], patient_ref=patient["ref"], kind=Kind(data["kind"]), issued_on=data["issued_on"],
        valid_until=data.get("valid_until") or data["issued_on"], prescriber=data["prescriber"],
        patient_district=patient.get("district"), patient_latitude=patient.get("latitude"),
        patient_longitude=patient.get("longitude"), nominated_site_id=data.get("nominated_pharmacy"),
        patient_birth_date=patient.get("birth_date"), patient_gender=patient.get("gender"),
        diagnoses=tuple({k: v for k, v in d.items() if v} for d in data["diagnoses"]),
        allergies=tuple({k: v for k, v in a.items() if v} for a in data["allergies"]),
        items=tuple(services.ItemInput(
            code=i["drug_code"], quantity=i["quantity"], supply_days=i["supply_days"], repeats=i["repeats"],
            interval_days=i.get("interval_days"), substitution_allowed=i["substitution_allowed"], dosage=i["dosage"])
            for i in data["items"]))


@blp.route("/prescriptions")
class PrescriptionsView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(PrescriptionQuerySchema, location="query")
    @blp.response(200, PrescriptionSummarySchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """The worklist: a pharmacy's prescriptions, a hospital's own, or all of them (admin, procurement)"""
        page = services.list_prescriptions(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.PRESCRIBER)
    @blp.arguments(PrescriptionInSchema)
    @blp.response(201, PrescriptionOutSchema, headers={
        "Location": {"description": "the prescription's URL", "schema": {"type": "string"}},
        "Idempotent-Replayed": {"description": "true: a retry, answered with the first result",
                                "schema": {"type": "string", "enum": ["true"]}}})
    @blp.doc(parameters=[IDEMPOTENCY_KEY])
    def post(self, data: dict[str, Any]) -> Any:
        """Send a prescription: it is checked, routed to a pharmacy and its stock reserved"""
        intake = services.submit_prescription(request_uow(), _input(data), request_hash(), idempotency_key(),
                                              limits())
        headers = {"Location": f"/api/prescriptions/{intake.prescription.id}"}
        if not intake.created:
            headers["Idempotent-Replayed"] = "true"
        return present(intake.view), 201, headers


@blp.route("/prescriptions/worklist-counts")
class CountsView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, description="open prescriptions of the pharmacist's site by status")
    def get(self) -> dict[str, int]:
        """Counts of the pharmacy's prescriptions by status"""
        return services.worklist_counts(request_uow())


@blp.route("/prescriptions/<id:rx_id>")
class PrescriptionView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, PrescriptionOutSchema)
    def get(self, rx_id: int) -> Any:
        """One prescription: items, where it was routed and why, what was dispensed"""
        return present(services.get_prescription(request_uow(), rx_id))


def _action(rx_id: int, run: Any) -> Any:
    return present(run(request_uow(), rx_id))


@blp.route("/prescriptions/<id:rx_id>/accept")
class AcceptView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, rx_id: int) -> Any:
        """Review: accept"""
        return _action(rx_id, services.accept)


@blp.route("/prescriptions/<id:rx_id>/reject")
class RejectView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.arguments(RejectSchema)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, data: dict[str, Any], rx_id: int) -> Any:
        """Review: reject with a reason (it goes back to the prescriber)"""
        return _action(rx_id, lambda uow, i: services.reject(uow, i, data["reason_code"], data["note"]))


@blp.route("/prescriptions/<id:rx_id>/return")
class ReturnView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.arguments(ReturnSchema)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, data: dict[str, Any], rx_id: int) -> Any:
        """Give it back for stock or operational reasons: it is routed to another pharmacy"""
        return present(services.return_prescription(request_uow(), rx_id, data["reason_code"], data["note"]))


@blp.route("/prescriptions/<id:rx_id>/stock-arrived")
class StockArrivedView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, rx_id: int) -> Any:
        """The stock it waited for has arrived: reserve it"""
        return _action(rx_id, services.stock_arrived)


@blp.route("/prescriptions/<id:rx_id>/prepare")
class PrepareView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, rx_id: int) -> Any:
        """Mark it prepared"""
        return _action(rx_id, services.prepare)


@blp.route("/prescriptions/<id:rx_id>/dispense")
class DispenseView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.arguments(DispenseInSchema)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, data: dict[str, Any], rx_id: int) -> Any:
        """Dispense in full or in part (FEFO by default; other lots or a substitute with a reason)"""
        lines = [services.DispenseLine(
            item_id=line["item_id"], quantity=line.get("quantity"),
            lots=tuple(LotChoice(c["lot_id"], c["quantity"]) for c in line.get("lots") or []),
            lot_reason=line["lot_reason"], substitute_drug_id=line.get("substitute_drug_id"),
            substitution_reason=line["substitution_reason"], trace_codes=tuple(line["trace_codes"]))
            for line in data["items"]]
        return present(services.dispense(request_uow(), rx_id, lines))


@blp.route("/prescriptions/<id:rx_id>/second-check")
class SecondCheckView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, rx_id: int) -> Any:
        """A second pharmacist (not the one who dispensed) confirms what was dispensed; controlled drugs are handed
        over only after it"""
        return _action(rx_id, services.second_check)


@blp.route("/prescriptions/<id:rx_id>/hand-over")
class HandOverView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, rx_id: int) -> Any:
        """The patient collected the dispensed drugs"""
        return _action(rx_id, services.hand_over)


@blp.route("/prescriptions/<id:rx_id>/cancel")
class CancelView(MethodView):
    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.arguments(CancelSchema)
    @blp.response(200, PrescriptionOutSchema)
    def post(self, data: dict[str, Any], rx_id: int) -> Any:
        """Withdraw the prescription (refused once dispensing has started)"""
        return _action(rx_id, lambda uow, i: services.cancel(uow, i, data["note"]))


@blp.route("/prescription-events")
class EventsView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(EventQuerySchema, location="query")
    @blp.response(200, EventPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Status changes after a cursor, oldest first (poll with the returned next_cursor)"""
        events = services.list_events(request_uow(), query["after"], query["limit"])
        return {"events": events, "next_cursor": events[-1].id if events else query["after"]}


@blp.route("/webhooks")
class WebhooksView(MethodView):
    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.response(200, WebhookSchema(many=True))
    def get(self) -> Any:
        """Webhook subscriptions"""
        return webhooks.list_subscriptions(request_uow())

    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.arguments(WebhookInSchema)
    @blp.response(201, NewWebhookSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Subscribe a URL to the hospital's prescription events (signed with HMAC-SHA256)"""
        site_id = data.get("site_id") or current_principal().site_id
        if site_id is None:
            raise ValidationFailed("name the hospital's site_id", {"site_id": "required"})
        return webhooks.subscribe(request_uow(), site_id, data["url"])


@blp.route("/webhooks/<id:subscription_id>/deactivate")
class WebhookDeactivateView(MethodView):
    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.response(200, WebhookSchema)
    def post(self, subscription_id: int) -> Any:
        """Stop sending events to a URL"""
        return webhooks.unsubscribe(request_uow(), subscription_id)


@blp.route("/webhooks/<id:subscription_id>/deliveries")
class WebhookDeliveriesView(MethodView):
    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.arguments(WebhookDeliveryQuerySchema, location="query")
    @blp.response(200, WebhookDeliverySchema(many=True))
    def get(self, query: dict[str, Any], subscription_id: int) -> Any:
        """A subscription's latest deliveries (100, newest first): what was sent, what failed and why"""
        return [{"delivery": d, "event": e, "id": d.id}
                for d, e in webhooks.list_deliveries(request_uow(), subscription_id, query.get("status"))]


@blp.route("/webhooks/<id:subscription_id>/redeliver")
class WebhookRedeliverView(MethodView):
    @requires(Role.PRESCRIBER, Role.ADMIN)
    @blp.arguments(RedeliverSchema)
    @blp.response(200, RedeliveredSchema)
    def post(self, data: dict[str, Any], subscription_id: int) -> Any:
        """Send again the deliveries that were given up (all, since a time, or the ones named), with two days of
        retries anew"""
        return {"redelivered": webhooks.redeliver(request_uow(), subscription_id, since=data.get("since"),
                                                  delivery_ids=data["delivery_ids"])}
