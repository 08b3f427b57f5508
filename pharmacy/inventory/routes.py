from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from pharmacy.api import Blueprint, page_items, page_request, paginate, request_uow
from pharmacy.auth import requires
from pharmacy.idempotency import KEY_PARAMETER, idempotent
from pharmacy.inventory import services
from pharmacy.inventory.domain import CauseType, MovementKind
from pharmacy.inventory.schemas import (
    DispenseInputSchema,
    LedgerCheckSchema,
    LotQuerySchema,
    LotSchema,
    MovementInputSchema,
    MovementSchema,
    NearExpiryQuerySchema,
    ReceiptSchema,
    ReservationInputSchema,
    ReservationSchema,
    ReversalSchema,
    StockCardSchema,
    StockLevelSchema,
    StockQuerySchema,
    StocktakeInputSchema,
    StocktakeSchema,
)
from pharmacy.principal import Role

blp = Blueprint("inventory", __name__, url_prefix="/api/inventory",
                description="Lots, the movement ledger, reservations and first-expiry first-out dispensing")

ANY_ROLE = (Role.ADMIN, Role.PRESCRIBER, Role.PHARMACIST, Role.PROCUREMENT)


def _cause(data: dict[str, Any]) -> services.Cause | None:
    if "cause_type" in data:
        return services.Cause(CauseType(data["cause_type"]), data["cause_id"])
    return None


@blp.route("/receipts")
class ReceiptsView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("inventory.receipt", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(ReceiptSchema)
    @blp.response(201, MovementSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Receive a lot at the pharmacist's site"""
        return services.receive_stock(
            request_uow(), data["site_id"], data["drug_id"], data["lot_number"], data["expiry_date"],
            data["quantity"], unit=data["unit"], reason_code=data["reason_code"], note=data["note"],
            cause=_cause(data), trace_codes=data["trace_codes"])


@blp.route("/lots")
class LotsView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(LotQuerySchema, location="query")
    @blp.response(200, LotSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """List lots (with stock, unless include_empty)"""
        page = services.list_lots(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)


@blp.route("/lots/<id:lot_id>/movements")
class LotMovementsView(MethodView):
    @requires(*ANY_ROLE)
    @blp.response(200, StockCardSchema)
    def get(self, lot_id: int) -> dict[str, Any]:
        """A lot's stock card: the lot and its movements in order"""
        lot, movements = services.stock_card(request_uow(), lot_id)
        return {"lot": lot, "movements": movements}

    @requires(Role.PHARMACIST)
    @idempotent("inventory.movement", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(MovementInputSchema)
    @blp.response(201, MovementSchema)
    def post(self, data: dict[str, Any], lot_id: int) -> Any:
        """Record a write-off, return, transfer or count adjustment on a lot of the pharmacist's site"""
        return services.record_movement(request_uow(), lot_id, MovementKind(data["kind"]), data["quantity"],
                                        data["reason_code"], note=data["note"], cause=_cause(data))


@blp.route("/movements/<id:movement_id>/reverse")
class ReverseView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("inventory.reversal", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(ReversalSchema)
    @blp.response(201, MovementSchema)
    def post(self, data: dict[str, Any], movement_id: int) -> Any:
        """Undo a mistaken movement with a reversing one"""
        return services.reverse_movement(request_uow(), movement_id, data["note"])


@blp.route("/reservations")
class ReservationsView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("inventory.reservation", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(ReservationInputSchema)
    @blp.response(201, ReservationSchema(many=True))
    def post(self, data: dict[str, Any]) -> Any:
        """Reserve stock first-expiry first-out at the pharmacist's site"""
        return services.reserve_stock(request_uow(), data["site_id"], data["drug_id"], data["quantity"],
                                      data["supply_until"], services.Cause(CauseType(data["cause_type"]),
                                                                           data["cause_id"]))


@blp.route("/reservations/<id:reservation_id>/release")
class ReleaseView(MethodView):
    @requires(Role.PHARMACIST)
    @blp.response(200, ReservationSchema)
    def post(self, reservation_id: int) -> Any:
        """Release a reservation"""
        return services.release_reservation(request_uow(), reservation_id)


@blp.route("/dispenses")
class DispensesView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("inventory.dispense", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(DispenseInputSchema)
    @blp.response(201, MovementSchema(many=True))
    def post(self, data: dict[str, Any]) -> Any:
        """Dispense stock: the cause's reservations first, then first-expiry first-out"""
        lots = [services.LotChoice(c["lot_id"], c["quantity"]) for c in data.get("lots") or []]
        return services.dispense_stock(
            request_uow(), data["site_id"], data["drug_id"], data["quantity"], data["supply_until"],
            services.Cause(CauseType(data["cause_type"]), data["cause_id"]), lots=lots or None,
            lot_reason=data["lot_reason"])


@blp.route("/stocktakes")
class StocktakesView(MethodView):
    @requires(Role.PHARMACIST)
    @idempotent("inventory.stocktake", request_uow)
    @blp.doc(parameters=[KEY_PARAMETER])
    @blp.arguments(StocktakeInputSchema)
    @blp.response(201, StocktakeSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Record a count; differences become count-adjustment movements (all lines or none)"""
        lines = [services.CountLine(**line) for line in data["lines"]]
        return services.record_stocktake(request_uow(), data["site_id"], lines, data["note"],
                                         release_excess=data["release_excess"])


@blp.route("/stock")
class StockView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(StockQuerySchema, location="query")
    @blp.response(200, StockLevelSchema(many=True))
    @paginate(blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> Any:
        """Stock on hand per site and drug, with usable, reserved, expired and near-expiry units"""
        filters.setdefault("near_expiry_days", current_app.config["NEAR_EXPIRY_DAYS"])
        page = services.stock_levels(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)


@blp.route("/near-expiry")
class NearExpiryView(MethodView):
    @requires(*ANY_ROLE)
    @blp.arguments(NearExpiryQuerySchema, location="query")
    @blp.response(200, LotSchema(many=True))
    @paginate(blp)
    def get(self, query: dict[str, Any], pagination_parameters: Any) -> Any:
        """Lots across the consortium that expire within N days, soonest first"""
        page = services.near_expiry_lots(request_uow(), page_request(pagination_parameters), query["days"],
                                         site_id=query.get("site_id"))
        return page_items(page, pagination_parameters)


@blp.route("/ledger-check")
class LedgerCheckView(MethodView):
    @requires(Role.ADMIN, Role.PROCUREMENT)
    @blp.response(200, LedgerCheckSchema)
    def get(self) -> dict[str, Any]:
        """Prove that every lot's quantity equals the sum of its movements"""
        mismatches = services.check_ledger(request_uow())
        return {"consistent": not mismatches, "mismatches": mismatches}
