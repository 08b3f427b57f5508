from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from pharmacy.catalog.models import Drug
from pharmacy.catalog.schemas import CODE
from pharmacy.consortium.models import Site
from pharmacy.fields import Money, Reference, WholeNumber
from pharmacy.inventory.domain import MOST_UNITS_PER_MOVEMENT, TRANSIT_LOSS_REASONS
from pharmacy.inventory.models import Lot
from pharmacy.inventory.schemas import quantity_field
from pharmacy.procurement.domain import PlanStatus, check_tiers, parse_site_costs, parse_tiers
from pharmacy.procurement.models import Offer, PlanRun, Supplier, TransferParcel

# Suppliers and offers -----------------------------------------------------------------------------------

class SupplierSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class SupplierUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(1, 200))
    active = fields.Boolean()


class TierSchema(Schema):
    min_packs = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10_000_000))
    price_per_pack = Money(required=True, minimum=0.0001, maximum=1e7)


class _OfferTerms(Schema):
    pack_size = WholeNumber(required=True, minimum=1, maximum=100_000,
                               metadata={"description": "dispensing units in the supplier's pack"})
    lead_time_days = WholeNumber(load_default=0, maximum=365)
    capacity_packs = WholeNumber(load_default=None, allow_none=True, minimum=1, maximum=100_000_000)
    order_cost = Money(places=2, load_default=Decimal(0), metadata={
        "description": "fixed cost of each delivery of the offer to a site"})
    default_delivery_cost = Money(load_default=None, allow_none=True,
                                         metadata={"description": "per pack, to sites not listed in delivery_costs"})
    valid_from = fields.Date(required=True)
    valid_until = fields.Date(required=True)

    @validates_schema
    def _dates_in_order(self, data: dict[str, Any], **kwargs: object) -> None:
        if "valid_from" in data and "valid_until" in data and data["valid_until"] < data["valid_from"]:
            raise ValidationError("the offer ends before it starts", "valid_until")


class OfferSchema(_OfferTerms):
    id = fields.Integer(dump_only=True)
    supplier_id = Reference(Supplier, "supplier", required=True)
    drug_id = Reference(Drug, "drug", required=True)
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(1, 20),
                        metadata={"description": "all-units volume prices, ascending min_packs; the first tier's "
                                                 "minimum is the minimum order"})
    delivery_costs = fields.Dict(keys=fields.String(), values=Money(), load_default=dict,
                                 metadata={"description": "delivery cost per pack by site code (as input)"})
    active = fields.Boolean(dump_only=True, metadata={"description": "false once retired: no longer bought from"})
    updated_at = fields.DateTime(dump_only=True)

    # On the whole schema, which marshmallow skips while a field has errors: a tier missing its price is said
    # as that field's error, never checked half-read.
    @validates_schema
    def _tiers(self, data: dict[str, Any], **kwargs: object) -> None:
        try:
            check_tiers(data.get("tiers") or [])
        except ValueError as error:
            raise ValidationError(error.args[0], "tiers") from None


class OfferOutSchema(OfferSchema):
    delivery_costs = fields.Dict(keys=fields.String(), values=fields.Float(),
                                 metadata={"description": "delivery cost per pack by site id"})


class OfferQuerySchema(Schema):
    drug_id = Reference(Drug, "drug")
    supplier_id = Reference(Supplier, "supplier")
    valid_on = fields.Date()
    active = fields.Boolean()


class _TiersText(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return parse_tiers(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as error:
            raise ValidationError(error.args[0]) from None


class _SiteCostsText(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return parse_site_costs(super()._deserialize(value, attr, data, **kwargs))
        except ValueError as error:
            raise ValidationError(error.args[0]) from None


class OfferCsvRowSchema(_OfferTerms):
    """A row of the offers CSV."""

    supplier_code = fields.String(required=True, validate=CODE)
    supplier_name = fields.String(load_default=None, validate=validate.Length(max=200))
    drug_code = fields.String(required=True, validate=validate.Length(1, 40))
    tiers = _TiersText(required=True, metadata={"description": "min_packs:price;... e.g. 0:12.5;100:11.8"})
    delivery_costs = _SiteCostsText(load_default=None, metadata={"description": "SITE-CODE:cost;..."})


class OfferFormSchema(_OfferTerms):
    """An offer as the suppliers page's form sends it: tiers and delivery costs written as in the CSV."""

    supplier_id = Reference(Supplier, "supplier", required=True)
    drug_id = Reference(Drug, "drug", required=True)
    tiers = _TiersText(required=True)
    delivery_costs = _SiteCostsText(load_default=None)


class SupplierFormSchema(Schema):
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(1, 200))


# Forecasts ----------------------------------------------------------------------------------------------

class ForecastQuerySchema(Schema):
    horizon_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    service_level = fields.Float(load_default=0.95, validate=validate.Range(min=0.5, max=0.999))
    history_days = fields.Integer(load_default=90, validate=validate.Range(min=7, max=730))
    site_id = Reference(Site, "site")
    drug_id = Reference(Drug, "drug")


class ForecastSchema(Schema):
    site_id = fields.Integer()
    drug_id = fields.Integer()
    daily_usage = fields.Float(attribute="forecast.daily_usage")
    daily_sd = fields.Float(attribute="forecast.daily_sd")
    expected = fields.Float(attribute="forecast.expected")
    safety = fields.Float(attribute="forecast.safety")
    known = fields.Integer(attribute="forecast.known")
    units = fields.Integer(attribute="forecast.units")


# Plan runs ----------------------------------------------------------------------------------------------

class PlanRunInputSchema(Schema):
    horizon_days = fields.Integer(load_default=30, strict=True, validate=validate.Range(min=1, max=365))
    budget = Money(places=2, load_default=None, allow_none=True, maximum=1e12,
                          metadata={"description": "cap on money paid to suppliers (yuan); none: no cap"})
    solver = fields.String(load_default="highs", validate=validate.OneOf(["highs", "cbc"]))
    time_limit = fields.Float(load_default=60.0, validate=validate.Range(min=1, max=3600),
                              metadata={"description": "seconds per model solved"})
    gap = fields.Float(load_default=0.005, validate=validate.Range(min=0, max=0.5),
                       metadata={"description": "relative gap between the plan's cost and its proven lower bound"})
    service_level = fields.Float(load_default=0.95, validate=validate.Range(min=0.5, max=0.999))
    history_days = fields.Integer(load_default=90, strict=True, validate=validate.Range(min=7, max=730))
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class BudgetUseSchema(Schema):
    how = fields.String(metadata={"enum": ["one_model", "not_binding", "priced"]})
    price = fields.Float(allow_none=True, metadata={"description": "priced: the price set on each yuan spent"})
    rounds = fields.Integer(allow_none=True, metadata={"description": "priced: the rounds of the search"})


class RunProgressSchema(Schema):
    step = fields.String(metadata={"enum": ["queued", "reading", "inputs", "models", "baseline", "planned",
                                            "cancelled", "failed"]})
    done = fields.Integer(metadata={"description": "models: drug models solved; baseline: drugs done"})
    total = fields.Integer()
    drugs = fields.Integer(metadata={"description": "inputs: the frozen problem's drugs (and sites, offers, lots)"})
    sites = fields.Integer()
    offers = fields.Integer()
    lots = fields.Integer()
    plan_status = fields.String(metadata={"description": "planned: optimal or feasible_time_limit"})
    gap = fields.Float(metadata={"description": "planned: the gap the plan proves"})
    budget_use = fields.Nested(BudgetUseSchema, metadata={"description": "planned within a budget: how"})


class PlanRunSchema(Schema):
    id = fields.Integer()
    status = fields.String()
    trigger = fields.String()
    horizon_days = fields.Integer()
    budget = fields.Float(allow_none=True)
    solver = fields.String()
    time_limit = fields.Float()
    gap = fields.Float()
    service_level = fields.Float()
    history_days = fields.Integer()
    started_by = fields.String()
    note = fields.String()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    progress = fields.Float()
    progress_note = fields.String(metadata={"description": "where the run is, in English"})
    progress_facts = fields.Nested(RunProgressSchema, allow_none=True, metadata={
        "description": "the note as data (null for runs from before it was kept)"})
    error = fields.String()
    edited = fields.Boolean()
    approved_at = fields.DateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)
    cancel_requested_at = fields.DateTime(allow_none=True, metadata={
        "description": "when an officer cancelled the run; a running run stays running until its next model"})
    cancelled_by = fields.String(allow_none=True)
    result = fields.Dict(allow_none=True, metadata={
        "description": "costs by kind, baseline (each site buying alone, within the same budget if any), saving, "
                       "solver status, bound and gap, shortages, waste, and a summary"})


class PlanRunListItemSchema(PlanRunSchema):
    """A run in a list: without its result."""

    class Meta:
        exclude = ("result",)


class PlanRunQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf([s.value for s in PlanStatus]))


class ReasonSchema(Schema):
    code = fields.String(metadata={"description": "what the reason says, e.g. tier_reached, lent, expires_in"})
    facts = fields.Dict(metadata={"description": "its figures: numbers, and sites, lots (L<id>) and offers "
                                                "(O<id>) by the ids the plan names them with"})


class PlanLineSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    drug_id = fields.Integer()
    site_id = fields.Integer()
    offer_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer(allow_none=True)
    from_site_id = fields.Integer(allow_none=True)
    lot_id = fields.Integer(allow_none=True)
    packs = fields.Integer(allow_none=True)
    units = fields.Float()
    price_per_pack = fields.Float(allow_none=True)
    cost = fields.Float()
    why = fields.String(metadata={"description": "why, in English"})
    reasons = fields.List(fields.Nested(ReasonSchema), dump_default=list,
                          metadata={"description": "why, as codes and figures, for a caller to say in its language"})
    edited = fields.Boolean()


class PlanLineQuerySchema(Schema):
    kind = fields.String(validate=validate.OneOf(["purchase", "transfer"]))


class PurchaseEditSchema(Schema):
    offer_id = Reference(Offer, "offer", required=True)
    site_id = Reference(Site, "site", required=True)
    packs = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10_000_000),
                           metadata={"description": "0 removes the line"})


class TransferEditSchema(Schema):
    lot_id = Reference(Lot, "lot", required=True)
    site_id = Reference(Site, "site", required=True, metadata={"description": "the receiving site"})
    units = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10_000_000),
                           metadata={"description": "whole units; 0 removes the line"})


class PlanEditSchema(Schema):
    purchases = fields.List(fields.Nested(PurchaseEditSchema), load_default=list)
    transfers = fields.List(fields.Nested(TransferEditSchema), load_default=list)

    @validates_schema
    def _something(self, data: dict[str, Any], **kwargs: object) -> None:
        if not data.get("purchases") and not data.get("transfers"):
            raise ValidationError("send at least one purchase or transfer line to change", "purchases")


# Orders -------------------------------------------------------------------------------------------------

class PurchaseOrderLineSchema(Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    drug_id = fields.Integer()
    offer_id = fields.Integer(allow_none=True)
    packs = fields.Integer()
    pack_size = fields.Integer()
    units = fields.Integer()
    price_per_pack = fields.Float()
    cost = fields.Float()
    received_units = fields.Integer()
    expected_on = fields.Date(allow_none=True, metadata={"description": "when the goods still to come are expected"})


class PurchaseOrderSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    run_id = fields.Integer(allow_none=True)
    supplier_id = fields.Integer()
    status = fields.String()
    total = fields.Float()
    created_by = fields.String()
    created_at = fields.DateTime()


class PurchaseOrderDetailSchema(PurchaseOrderSchema):
    lines = fields.List(fields.Nested(PurchaseOrderLineSchema))


class OrderQuerySchema(Schema):
    status = fields.String(validate=validate.Length(max=30))
    run_id = Reference(PlanRun, "plan run")
    site_id = Reference(Site, "site")


class ReceiptLineSchema(Schema):
    drug_id = Reference(Drug, "drug", required=True)
    lot_number = fields.String(required=True, validate=validate.Length(1, 60))
    expiry_date = fields.Date(required=True)
    quantity = quantity_field(required=True)
    unit = fields.String(load_default="unit", validate=validate.OneOf(["unit", "pack"]))
    trace_codes = fields.List(fields.String(validate=validate.Length(1, 100)), load_default=list,
                              validate=validate.Length(max=1000), metadata={
                                  "description": "the packs' trace codes (药品追溯码) as scanned: 20 digits, or a GS1 "
                                                 "element string with (01) GTIN and (21) serial"})


class PurchaseReceiptSchema(Schema):
    site_id = Reference(Site, "site", required=True)
    lines = fields.List(fields.Nested(ReceiptLineSchema), required=True, validate=validate.Length(1, 500))


class CancelReasonSchema(Schema):  # an order's or a plan run's
    note = fields.String(required=True, validate=validate.Length(1, 1000), metadata={"description": "why"})


class TransferLineInputSchema(Schema):
    drug_id = Reference(Drug, "drug", required=True)
    quantity = quantity_field(required=True)
    lot_id = Reference(Lot, "lot", load_default=None, allow_none=True,
                            metadata={"description": "a lot of the sending site; none: first-expiry first-out"})


class TransferOrderInputSchema(Schema):
    from_site_id = Reference(Site, "site", required=True)
    to_site_id = Reference(Site, "site", required=True)
    lines = fields.List(fields.Nested(TransferLineInputSchema), required=True, validate=validate.Length(1, 200))
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class TransferLineSchema(Schema):
    id = fields.Integer()
    drug_id = fields.Integer()
    lot_id = fields.Integer(allow_none=True)
    quantity = fields.Integer()
    usable_until = fields.Date(allow_none=True)


class TransferParcelSchema(Schema):
    id = fields.Integer()
    line_id = fields.Integer()
    drug_id = fields.Integer()
    from_lot_id = fields.Integer()
    lot_number = fields.String()
    expiry_date = fields.Date()
    shipped = fields.Integer()
    received = fields.Integer()
    lost = fields.Integer(metadata={"description": "declared on receipt as not arrived whole"})


class TransferOrderSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    run_id = fields.Integer(allow_none=True)
    prescription_id = fields.Integer(allow_none=True)
    from_site_id = fields.Integer()
    to_site_id = fields.Integer()
    reason = fields.String()
    status = fields.String()
    note = fields.String()
    created_by = fields.String()
    created_at = fields.DateTime()
    shipped_at = fields.DateTime(allow_none=True)
    received_at = fields.DateTime(allow_none=True)
    cancelled_at = fields.DateTime(allow_none=True)


class TransferOrderDetailSchema(Schema):
    order = fields.Nested(TransferOrderSchema)
    lines = fields.List(fields.Nested(TransferLineSchema))
    parcels = fields.List(fields.Nested(TransferParcelSchema))


class TransferQuerySchema(OrderQuerySchema):
    direction = fields.String(validate=validate.OneOf(["incoming", "outgoing"]))


class ParcelReceiptSchema(Schema):
    parcel_id = Reference(TransferParcel, "parcel", required=True)
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10_000_000))


class TransitLossSchema(Schema):
    parcel_id = Reference(TransferParcel, "parcel", required=True)
    units = WholeNumber(minimum=1, maximum=MOST_UNITS_PER_MOVEMENT, required=True)
    reason = fields.String(required=True, validate=validate.OneOf(TRANSIT_LOSS_REASONS),
                           metadata={"description": "why they did not arrive whole"})
    note = fields.String(load_default="", validate=validate.Length(max=500))


class TransferReceiptSchema(Schema):
    parcels = fields.List(fields.Nested(ParcelReceiptSchema), load_default=list,
                          metadata={"description": "units per parcel; empty: everything still outstanding that is "
                                                   "not declared lost"})
    losses = fields.List(fields.Nested(TransitLossSchema), load_default=list,
                         metadata={"description": "units of a parcel that did not arrive whole, and why"})

    @post_load
    def _as_mapping(self, data: dict[str, Any], **kwargs: object) -> dict[str, Any]:
        seen: dict[int, int] = {}
        for parcel in data["parcels"]:
            if parcel["parcel_id"] in seen:
                raise ValidationError(f"parcel {parcel['parcel_id']} is listed twice", "parcels")
            seen[parcel["parcel_id"]] = parcel["quantity"]
        return {"parcels": seen, "losses": data["losses"]}


class ApprovalSchema(Schema):
    run = fields.Nested(PlanRunSchema)
    purchase_orders = fields.List(fields.Nested(PurchaseOrderSchema))
    transfer_orders = fields.List(fields.Nested(TransferOrderSchema))
    alerts = fields.Integer(metadata={"description": "alerts raised for what the plan leaves undone: a site short of "
                                                     "a drug over the horizon, a lot expected to expire unused"})


class AlertSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    site_id = fields.Integer()
    drug_id = fields.Integer()
    lot_id = fields.Integer(allow_none=True)
    message = fields.String()
    raised_on = fields.Date()
    acknowledged_at = fields.DateTime(allow_none=True, metadata={"description": "when it was taken in hand"})
    acknowledged_by = fields.String(allow_none=True, metadata={"description": "who took it in hand"})


class AlertQuerySchema(Schema):
    kind = fields.String(validate=validate.OneOf(["near_expiry", "low_stock", "planned_shortage", "planned_waste"]))
    site_id = Reference(Site, "site")
    since = fields.Date()
    open = fields.Boolean(metadata={"description": "true: only alerts not acknowledged; false: only acknowledged"})


class PromiseSchema(Schema):
    expected_on = fields.Date(required=True, metadata={"description": "the day the supplier promised"})
    site_id = Reference(Site, "site", metadata={"description": "only the lines to this site; default: all still open"})


class IncomingSchema(Schema):
    kind = fields.String(metadata={"description": "purchase_order, in_transit (shipped) or transfer_requested "
                                                  "(held for it at the sender)"})
    order_id = fields.Integer()
    order_number = fields.String()
    units = fields.Integer()
    expected_on = fields.Date()
    from_site_id = fields.Integer(allow_none=True)
    expiry_date = fields.Date(allow_none=True)


class PositionSchema(Schema):
    site_id = fields.Integer()
    drug_id = fields.Integer()
    on_hand = fields.Integer()
    expired = fields.Integer(metadata={"description": "of on hand, in lots no longer usable today"})
    held = fields.Integer()
    held_for_prescriptions = fields.Integer()
    held_for_transfers = fields.Integer(metadata={"description": "promised to other sites"})
    held_by_hand = fields.Integer()
    available = fields.Integer(metadata={"description": "usable today and not held"})
    on_order = fields.Integer()
    in_transit = fields.Integer()
    position = fields.Integer(metadata={"description": "available + on order + in transit"})
    incoming = fields.List(fields.Nested(IncomingSchema))


class PositionQuerySchema(Schema):
    site_id = Reference(Site, "site")
    drug_id = Reference(Drug, "drug")


class OrderLineInputSchema(Schema):
    site_id = Reference(Site, "site", required=True, metadata={"description": "the site the goods go to"})
    offer_id = Reference(Offer, "offer", required=True)
    packs = WholeNumber(minimum=1, maximum=1_000_000, required=True)


class PurchaseOrderInputSchema(Schema):
    supplier_id = Reference(Supplier, "supplier", required=True)
    lines = fields.List(fields.Nested(OrderLineInputSchema), required=True, validate=validate.Length(1, 500))
    note = fields.String(load_default="", validate=validate.Length(max=1000))
