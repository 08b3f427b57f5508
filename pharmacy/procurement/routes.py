from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import current_app
from flask.views import MethodView

from pharmacy.api import CSV_BODY, Blueprint, page_items, page_request, paginate, request_uow, uploaded_csv
from pharmacy.auth import requires
from pharmacy.catalog.schemas import ImportResultSchema
from pharmacy.idempotency import KEY_PARAMETER, idempotent
from pharmacy.pagination import PageRequest
from pharmacy.principal import Role
from pharmacy.procurement import plan_runs, services
from pharmacy.procurement.schemas import (
    AlertQuerySchema,
    AlertSchema,
    ApprovalSchema,
    CancelReasonSchema,
    ForecastQuerySchema,
    ForecastSchema,
    OfferOutSchema,
    OfferQuerySchema,
    OfferSchema,
    OrderQuerySchema,
    PlanEditSchema,
    PlanLineQuerySchema,
    PlanLineSchema,
    PlanRunInputSchema,
    PlanRunListItemSchema,
    PlanRunQuerySchema,
    PlanRunSchema,
    PositionQuerySchema,
    PositionSchema,
    PromiseSchema,
    PurchaseOrderDetailSchema,
    PurchaseOrderInputSchema,
    PurchaseOrderSchema,
    PurchaseReceiptSchema,
    SupplierSchema,
    SupplierUpdateSchema,
    TransferOrderDetailSchema,
    TransferOrderInputSchema,
    TransferOrderSchema,
    TransferQuerySchema,
    TransferReceiptSchema,
)

blp = Blueprint("procurement", __name__, url_prefix="/api",
                description="Suppliers and offers, forecasts, purchase-plan runs, purchase and transfer orders")

OFFICERS = (Role.PROCUREMENT, Role.ADMIN)
STAFF = (Role.PROCUREMENT, Role.ADMIN, Role.PHARMACIST)


def plan_runner() -> plan_runs.PlanRunner:
    return current_app.extensions["plan_runner"]


# Suppliers and offers -----------------------------------------------------------------------------------

@blp.route("/suppliers")
class SuppliersView(MethodView):
    @requires(*OFFICERS)
    @blp.response(200, SupplierSchema(many=True))
    @paginate(blp)
    def get(self, pagination_parameters: Any) -> Any:
        """List suppliers"""
        return page_items(services.list_suppliers(request_uow(), page_request(pagination_parameters)),
                          pagination_parameters)

    @requires(*OFFICERS)
    @blp.arguments(SupplierSchema)
    @blp.response(201, SupplierSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a supplier (a distribution company)"""
        return services.create_supplier(request_uow(), data["code"], data["name"])


@blp.route("/suppliers/<id:supplier_id>")
class SupplierView(MethodView):
    @requires(*OFFICERS)
    @blp.arguments(SupplierUpdateSchema)
    @blp.response(200, SupplierSchema)
    def patch(self, data: dict[str, Any], supplier_id: int) -> Any:
        """Rename a supplier, or stop buying from it (active=false)"""
        return services.update_supplier(request_uow(), supplier_id, data)


@blp.route("/offers")
class OffersView(MethodView):
    @requires(*OFFICERS)
    @blp.arguments(OfferQuerySchema, location="query")
    @blp.response(200, OfferOutSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List offers (filter by drug, supplier, or the day they are valid on)"""
        page = services.list_offers(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(*OFFICERS)
    @blp.arguments(OfferSchema)
    @blp.response(201, OfferOutSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record a supplier's offer for a drug: pack size, volume tiers, minimum order, capacity, lead time,
        delivery costs by site code, validity dates"""
        return services.create_offer(request_uow(), data)


@blp.route("/offers/<id:offer_id>")
class OfferView(MethodView):
    @requires(*OFFICERS)
    @blp.response(200, OfferOutSchema)
    def get(self, offer_id: int) -> Any:
        """One offer"""
        return services.get_offer(request_uow(), offer_id)


@blp.route("/offers/import")
class OfferImportView(MethodView):
    @requires(*OFFICERS)
    @blp.doc(requestBody=CSV_BODY)
    @blp.response(200, ImportResultSchema)
    def post(self) -> Any:
        """Import offers from CSV (columns: supplier_code, supplier_name, drug_code, pack_size, tiers
        "0:12.5;100:11.8", lead_time_days, capacity_packs, order_cost, default_delivery_cost, delivery_costs
        "SITE:0.5;...", valid_from, valid_until): all rows or none, every bad row reported"""
        return services.import_offers_csv(request_uow(), uploaded_csv())


@blp.route("/forecasts")
class ForecastsView(MethodView):
    @requires(*STAFF)
    @blp.arguments(ForecastQuerySchema, location="query")
    @blp.response(200, ForecastSchema(many=True))
    def get(self, query: dict[str, Any]) -> Any:
        """Demand per site and drug over a horizon: ledger usage, safety stock at a service level, known demand"""
        uow = request_uow()
        result = services.forecast_demand(uow, query["horizon_days"], query["service_level"], query["history_days"])
        site_id = uow.principal.site_id if uow.principal.site_bound else query.get("site_id")
        return [f for f in result if (site_id is None or f.site_id == site_id)
                and ("drug_id" not in query or f.drug_id == query["drug_id"])]


# Plan runs ----------------------------------------------------------------------------------------------

@blp.route("/plan-runs")
class PlanRunsView(MethodView):
    @requires(*OFFICERS)
    @blp.arguments(PlanRunQuerySchema, location="query")
    @blp.response(200, PlanRunListItemSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List plan runs, newest first"""
        page = plan_runs.list_plan_runs(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.PROCUREMENT)
    @blp.arguments(PlanRunInputSchema)
    @blp.response(202, PlanRunSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Start a plan run; it runs in the background: follow its progress at /api/plan-runs/{id}"""
        return plan_runs.start_plan_run(request_uow(), **data, on_queued=plan_runner().submit)


@blp.route("/plan-runs/<id:run_id>")
class PlanRunView(MethodView):
    @requires(*OFFICERS)
    @blp.response(200, PlanRunSchema)
    def get(self, run_id: int) -> Any:
        """A plan run: progress, and once finished its cost by kind beside the site-by-site baseline"""
        return plan_runs.get_plan_run(request_uow(), run_id)


@blp.route("/plan-runs/<id:run_id>/inputs")
class PlanRunInputsView(MethodView):
    @requires(*OFFICERS)
    @blp.response(200, description="the problem exactly as the optimizer saw it, and the map back to our ids")
    def get(self, run_id: int) -> Any:
        """The run's frozen inputs"""
        return plan_runs.plan_inputs(request_uow(), run_id)


@blp.route("/plan-runs/<id:run_id>/lines")
class PlanLinesView(MethodView):
    @requires(*OFFICERS)
    @blp.arguments(PlanLineQuerySchema, location="query")
    @blp.response(200, PlanLineSchema(many=True))
    def get(self, query: dict[str, Any], run_id: int) -> Any:
        """The plan's purchase and transfer lines, each with why"""
        return plan_runs.plan_lines(request_uow(), run_id, query.get("kind"))

    @requires(Role.PROCUREMENT)
    @blp.arguments(PlanEditSchema)
    @blp.response(200, PlanRunSchema)
    def patch(self, data: dict[str, Any], run_id: int) -> Any:
        """Edit purchase lines (packs of an offer for a site) or transfer lines (units of a lot to a site; 0
        removes a line); the plan is re-costed and re-checked, or refused with every broken rule"""
        return plan_runs.edit_plan(request_uow(), run_id,
                                   [plan_runs.PurchaseEdit(**p) for p in data["purchases"]],
                                   [plan_runs.TransferEdit(**t) for t in data["transfers"]])


@blp.route("/plan-runs/<id:run_id>/approve")
class PlanApprovalView(MethodView):
    @requires(Role.PROCUREMENT)
    @blp.response(201, ApprovalSchema)
    def post(self, run_id: int) -> Any:
        """Approve a plan into purchase orders (one per supplier) and transfer orders (one per pair of sites)"""
        return plan_runs.approve_plan(request_uow(), run_id)


@blp.route("/plan-runs/<id:run_id>/cancel")
class PlanCancelView(MethodView):
    @requires(Role.PROCUREMENT)
    @blp.arguments(CancelReasonSchema)
    @blp.response(200, PlanRunSchema)
    def post(self, data: dict[str, Any], run_id: int) -> Any:
        """Cancel a queued run (it never runs) or a running one (it stops at its next model solved, and keeps
        no plan)"""
        return plan_runs.cancel_plan_run(request_uow(), run_id, data["note"])


# Purchase orders ----------------------------------------------------------------------------------------

@blp.route("/purchase-orders")
class PurchaseOrdersView(MethodView):
    @requires(*STAFF)
    @blp.arguments(OrderQuerySchema, location="query")
    @blp.response(200, PurchaseOrderSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List purchase orders (a pharmacist sees those delivering to the own site)"""
        page = services.list_purchase_orders(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.PROCUREMENT)
    @blp.arguments(PurchaseOrderInputSchema)
    @blp.response(201, PurchaseOrderDetailSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Order from a supplier outside a plan: each line priced at the tier the order's volume reaches, expected
        after the offer's lead time"""
        lines = [services.OrderLine(**line) for line in data["lines"]]
        return _order_detail(*services.place_purchase_order(request_uow(), data["supplier_id"], lines, data["note"]))


def _order_detail(order: Any, lines: Any) -> SimpleNamespace:
    return SimpleNamespace(**{column.key: getattr(order, column.key) for column in order.__table__.columns},
                           lines=lines)


@blp.route("/purchase-orders/<id:order_id>")
class PurchaseOrderView(MethodView):
    @requires(*STAFF)
    @blp.response(200, PurchaseOrderDetailSchema)
    def get(self, order_id: int) -> Any:
        """A purchase order and its lines"""
        return _order_detail(*services.get_purchase_order(request_uow(), order_id))


@blp.route("/purchase-orders/<id:order_id>/promise")
class PurchasePromiseView(MethodView):
    @requires(Role.PROCUREMENT)
    @blp.arguments(PromiseSchema)
    @blp.response(200, PurchaseOrderDetailSchema)
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Record the day the supplier promised for what is still to come: plans and alerts count it from then"""
        return _order_detail(*services.promise_delivery(request_uow(), order_id, data["expected_on"],
                                                        data.get("site_id")))


@blp.route("/inventory/position")
class PositionView(MethodView):
    @requires(*STAFF)
    @blp.arguments(PositionQuerySchema, location="query")
    @blp.response(200, PositionSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """What each site can count on per drug: on hand, held (for prescriptions, for transfers, by hand),
        available, on order and in transit (a pharmacist sees the own site's)"""
        page = services.inventory_position(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)


@blp.route("/purchase-orders/<id:order_id>/receipts")
class PurchaseReceiptView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("procurement.purchase_receipt", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(PurchaseReceiptSchema)
    @blp.response(201, PurchaseOrderDetailSchema)
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Receive goods of a purchase order at the pharmacist's site (partial deliveries allowed)"""
        lines = [services.ReceiptLine(**line) for line in data["lines"]]
        return _order_detail(*services.receive_purchase_order(request_uow(), order_id, data["site_id"], lines))


@blp.route("/purchase-orders/<id:order_id>/cancel")
class PurchaseCancelView(MethodView):
    @requires(Role.PROCUREMENT)
    @blp.arguments(CancelReasonSchema)
    @blp.response(200, PurchaseOrderSchema)
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Cancel a purchase order nothing of which has arrived"""
        return services.cancel_purchase_order(request_uow(), order_id, data["note"])


# Transfer orders ----------------------------------------------------------------------------------------

@blp.route("/transfer-orders")
class TransferOrdersView(MethodView):
    @requires(*STAFF)
    @blp.arguments(TransferQuerySchema, location="query")
    @blp.response(200, TransferOrderSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List transfer orders (a pharmacist sees the own site's, incoming or outgoing)"""
        page = services.list_transfer_orders(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)

    @requires(Role.PROCUREMENT)
    @blp.arguments(TransferOrderInputSchema)
    @blp.response(201, TransferOrderDetailSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Ask one member to send stock to another"""
        return services.create_transfer_order(
            request_uow(), data["from_site_id"], data["to_site_id"],
            [(line["drug_id"], line["quantity"], line["lot_id"]) for line in data["lines"]], data["note"])


@blp.route("/transfer-orders/<id:order_id>")
class TransferOrderView(MethodView):
    @requires(*STAFF)
    @blp.response(200, TransferOrderDetailSchema)
    def get(self, order_id: int) -> Any:
        """A transfer order, its lines and the parcels shipped"""
        return services.get_transfer_order(request_uow(), order_id)


@blp.route("/transfer-orders/<id:order_id>/ship")
class TransferShipView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, TransferOrderDetailSchema)
    def post(self, order_id: int) -> Any:
        """Ship a requested transfer from the pharmacist's site (transfer-out movements, FEFO or planned lots)"""
        return services.ship_transfer(request_uow(), order_id)


@blp.route("/transfer-orders/<id:order_id>/receive")
class TransferReceiveView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("procurement.transfer_receipt", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(TransferReceiptSchema)
    @blp.response(200, TransferOrderDetailSchema)
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Receive a shipped transfer at the pharmacist's site (partial allowed); a prescription waiting for
        it moves on"""
        return services.receive_transfer(request_uow(), order_id, data["parcels"],
                                         [services.TransitLoss(**loss) for loss in data["losses"]])


@blp.route("/transfer-orders/<id:order_id>/cancel")
class TransferCancelView(MethodView):
    @requires(*STAFF)
    @blp.arguments(CancelReasonSchema)
    @blp.response(200, TransferOrderDetailSchema)
    def post(self, data: dict[str, Any], order_id: int) -> Any:
        """Cancel a transfer that has not shipped"""
        return services.cancel_transfer(request_uow(), order_id, data["note"])


# Alerts -------------------------------------------------------------------------------------------------

@blp.route("/alerts")
class AlertsView(MethodView):
    @requires(*STAFF)
    @blp.arguments(AlertQuerySchema, location="query")
    @blp.response(200, AlertSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """Near-expiry and low-stock alerts, and what approved plans leave undone, newest first (a pharmacist sees
        the own site's)"""
        page = services.list_alerts(request_uow(), PageRequest(pagination_parameters.page,
                                                               pagination_parameters.page_size), **filters)
        return page_items(page, pagination_parameters)


@blp.route("/alerts/<id:alert_id>/acknowledge")
class AlertAcknowledgeView(MethodView):
    @requires(Role.PHARMACIST, Role.PROCUREMENT)
    @blp.response(200, AlertSchema)
    def post(self, alert_id: int) -> Any:
        """Take an alert in hand: who and when are kept, and it leaves the open list"""
        return services.acknowledge_alert(request_uow(), alert_id)
