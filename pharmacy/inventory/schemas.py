from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from pharmacy.catalog.models import Drug
from pharmacy.consortium.models import Site
from pharmacy.fields import Reference, WholeNumber
from pharmacy.inventory.domain import MANUAL_KINDS, MOST_UNITS_PER_LOT, MOST_UNITS_PER_MOVEMENT, CauseType
from pharmacy.inventory.models import Lot


def quantity_field(**kwargs: object) -> fields.Integer:
    """A whole, positive number of dispensing units: fractions and strings are refused."""
    return fields.Integer(strict=True, validate=validate.Range(min=1, max=MOST_UNITS_PER_MOVEMENT),
                          **kwargs)  # type: ignore[arg-type]


CAUSE_TYPES = [c.value for c in CauseType]


class CauseFields(Schema):
    cause_type = fields.String(validate=validate.OneOf(CAUSE_TYPES))
    cause_id = fields.String(validate=validate.Length(1, 60))

    @validates_schema
    def _both_or_neither(self, data: dict, **kwargs: object) -> None:
        if ("cause_type" in data) != ("cause_id" in data):
            raise ValidationError("give cause_type and cause_id together", "cause_id")


class ReceiptSchema(CauseFields):
    site_id = Reference(Site, "site", required=True)
    drug_id = Reference(Drug, "drug", required=True)
    lot_number = fields.String(required=True, validate=validate.Length(1, 60))
    expiry_date = fields.Date(required=True)
    quantity = quantity_field(required=True)
    unit = fields.String(load_default="unit", validate=validate.OneOf(["unit", "pack"]),
                         metadata={"description": "quantity in dispensing units (default) or in packs"})
    reason_code = fields.String(load_default="purchase", validate=validate.Length(1, 40))
    note = fields.String(load_default="", validate=validate.Length(max=1000))
    trace_codes = fields.List(fields.String(validate=validate.Length(1, 100)), load_default=list,
                              validate=validate.Length(max=1000), metadata={
                                  "description": "the packs' trace codes (药品追溯码) as scanned: 20 digits, or a GS1 "
                                                 "element string with (01) GTIN and (21) serial"})


class MovementInputSchema(CauseFields):
    kind = fields.String(required=True, validate=validate.OneOf(sorted(k.value for k in MANUAL_KINDS)),
                         metadata={"description": "receipts, dispenses and reversals have their own routes"})
    quantity = fields.Integer(required=True, strict=True,
                              validate=validate.Range(min=-MOST_UNITS_PER_MOVEMENT, max=MOST_UNITS_PER_MOVEMENT),
                              metadata={"description": "signed: negative removes stock"})
    reason_code = fields.String(required=True, validate=validate.Length(1, 40))
    note = fields.String(load_default="", validate=validate.Length(max=1000))


class ReversalSchema(Schema):
    note = fields.String(required=True, validate=validate.Length(1, 1000),
                         metadata={"description": "why the original movement was wrong"})


class MovementSchema(Schema):
    id = fields.Integer()
    lot_id = fields.Integer()
    site_id = fields.Integer()
    drug_id = fields.Integer()
    kind = fields.String()
    quantity = fields.Integer()
    reason_code = fields.String()
    note = fields.String()
    actor = fields.String()
    cause_type = fields.String(allow_none=True)
    cause_id = fields.String(allow_none=True)
    reverses_id = fields.Integer(allow_none=True)
    at = fields.DateTime()


class LotSchema(Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    drug_id = fields.Integer()
    lot_number = fields.String()
    expiry_date = fields.Date()
    quantity = fields.Integer()
    reserved = fields.Integer()
    available = fields.Method("_available")

    def _available(self, lot: object) -> int:
        return lot.quantity - lot.reserved  # type: ignore[attr-defined]


class StockCardSchema(Schema):
    lot = fields.Nested(LotSchema)
    movements = fields.List(fields.Nested(MovementSchema))


class ReservationInputSchema(Schema):
    site_id = Reference(Site, "site", required=True)
    drug_id = Reference(Drug, "drug", required=True)
    quantity = quantity_field(required=True)
    supply_until = fields.Date(required=True, metadata={"description": "lots must last until this day"})
    cause_type = fields.String(required=True, validate=validate.OneOf([CauseType.MANUAL.value]), metadata={
        "description": "stock is held here by hand; a prescription's is held by routing it, a transfer's by its order"})
    cause_id = fields.String(required=True, validate=validate.Length(1, 60),
                             metadata={"description": "your own reference for the hold (a ward, a recall)"})


class ReservationSchema(Schema):
    id = fields.Integer()
    lot_id = fields.Integer()
    site_id = fields.Integer()
    drug_id = fields.Integer()
    quantity = fields.Integer()
    status = fields.String()
    cause_type = fields.String()
    cause_id = fields.String()
    supply_until = fields.Date()


class LotChoiceSchema(Schema):
    lot_id = Reference(Lot, "lot", required=True)
    quantity = quantity_field(required=True)


class DispenseInputSchema(ReservationInputSchema):
    lots = fields.List(fields.Nested(LotChoiceSchema), metadata={"description": "only to override FEFO"})
    lot_reason = fields.String(load_default="", validate=validate.Length(max=500))


class CountLineSchema(Schema):
    lot_id = Reference(Lot, "lot")
    drug_id = Reference(Drug, "drug")
    lot_number = fields.String(validate=validate.Length(1, 60))
    expiry_date = fields.Date()
    counted = WholeNumber(maximum=MOST_UNITS_PER_LOT, required=True)
    book = WholeNumber(maximum=MOST_UNITS_PER_LOT, metadata={
        "description": "the quantity on record when the count sheet was made: the adjustment is counted - book, "
                       "so what moved since is kept (default: the quantity on record now)"})


class StocktakeInputSchema(Schema):
    site_id = Reference(Site, "site", required=True)
    note = fields.String(load_default="", validate=validate.Length(max=1000))
    release_excess = fields.Boolean(load_default=False, metadata={
        "description": "where a count is below what is held, release the holds it cannot cover (and hold them again "
                       "from other lots where possible) instead of refusing the count"})
    lines = fields.List(fields.Nested(CountLineSchema), required=True, validate=validate.Length(min=1, max=20000))


class StocktakeSchema(Schema):
    id = fields.Integer()
    site_id = fields.Integer()
    counted_by = fields.String()
    note = fields.String()
    lines_counted = fields.Integer()
    lines_adjusted = fields.Integer()
    at = fields.DateTime()


class StockLevelSchema(Schema):
    site_id = fields.Integer()
    drug_id = fields.Integer()
    on_hand = fields.Integer()
    reserved = fields.Integer()
    usable = fields.Integer(metadata={"description": "unexpired and not reserved"})
    expired = fields.Integer()
    near_expiry = fields.Integer()
    lots = fields.Integer()


class StockQuerySchema(Schema):
    site_id = Reference(Site, "site")
    drug_id = Reference(Drug, "drug")
    near_expiry_days = fields.Integer(validate=validate.Range(1, 3650))


class LotQuerySchema(Schema):
    site_id = Reference(Site, "site")
    drug_id = Reference(Drug, "drug")
    include_empty = fields.Boolean(load_default=False)


class NearExpiryQuerySchema(Schema):
    days = fields.Integer(load_default=90, validate=validate.Range(1, 3650))
    site_id = Reference(Site, "site")


class LedgerMismatchSchema(Schema):
    lot_id = fields.Integer()
    quantity = fields.Integer()
    ledger_sum = fields.Integer()
    reserved = fields.Integer()
    held_sum = fields.Integer()


class LedgerCheckSchema(Schema):
    consistent = fields.Boolean()
    mismatches = fields.List(fields.Nested(LedgerMismatchSchema))
