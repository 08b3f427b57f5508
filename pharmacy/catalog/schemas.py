from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from pharmacy.catalog.domain import ControlledClass, InsuranceClass, SpecialStorage
from pharmacy.catalog.models import Drug
from pharmacy.consortium.models import Site
from pharmacy.fields import Reference, WholeNumber

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$",
                       error="use 1-40 letters, digits, '_', '-' or '.', starting with a letter or digit")


def _choices(enum: type) -> validate.OneOf:
    return validate.OneOf([member.value for member in enum])  # type: ignore[attr-defined]


STRONGEST = Decimal("9999999999.9999")  # the strength column's NUMERIC(14, 4)


def _positive(value: Decimal) -> None:
    # A function, not validate.Range: Range's Decimal bound would reach the OpenAPI document as a string.
    if value <= 0:
        raise ValidationError("must be greater than 0")
    if value > STRONGEST:
        raise ValidationError(f"must be at most {STRONGEST}")


class _Strength(fields.Decimal):
    """Kept exact (Decimal, 4 places), sent as the number the document promises."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> float | None:  # type: ignore[override]
        number = super()._serialize(value, attr, obj, **kwargs)
        return None if number is None else float(number)


class DrugFieldsSchema(Schema):
    """The editable fields of a drug; also the columns of the CSV import."""

    national_code = fields.String(allow_none=True, validate=validate.Length(max=40),
                                  metadata={"description": "national medical-insurance drug code"})
    atc_code = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z][0-9]{2}[A-Z]{0,2}[0-9]{0,2}$",
                                                                       error="not an ATC code"))
    generic_name = fields.String(required=True, validate=validate.Length(1, 200))
    brand_name = fields.String(allow_none=True, validate=validate.Length(max=200))
    manufacturer = fields.String(allow_none=True, validate=validate.Length(max=200))
    dosage_form = fields.String(required=True, validate=validate.Length(1, 60))
    strength_amount = _Strength(required=True, places=4, validate=_positive,
                                metadata={"minimum": 0, "exclusiveMinimum": True, "maximum": float(STRONGEST),
                                          "description": "greater than 0"})
    strength_unit = fields.String(required=True, validate=validate.Length(1, 20))
    dispensing_unit = fields.String(required=True, validate=validate.Length(1, 20))
    pack_size = WholeNumber(required=True, minimum=1, maximum=100000,
                               metadata={"description": "dispensing units per pack"})
    essential = fields.Boolean(load_default=False, metadata={"description": "on the essential-medicines list"})
    insurance_class = fields.String(load_default="none", validate=_choices(InsuranceClass))
    controlled_class = fields.String(load_default="none", validate=_choices(ControlledClass))
    special_storage = fields.String(load_default="none", validate=_choices(SpecialStorage))
    equivalence_group = fields.String(allow_none=True, validate=validate.Length(max=60),
                                      metadata={"description": "drugs in one group may replace each other"})
    active = fields.Boolean(load_default=True)


class DrugSchema(DrugFieldsSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE, metadata={"description": "the consortium's code"})
    pinyin_initials = fields.String(dump_only=True)
    version = fields.Integer(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class DrugUpdateSchema(DrugFieldsSchema):
    """Used with ``partial=True``: only the fields sent change (defaults are not applied)."""


class DrugQuerySchema(Schema):
    q = fields.String(validate=validate.Length(1, 100),
                      metadata={"description": "code, national code, name or pinyin initials (e.g. amxl)"})
    active = fields.Boolean()
    essential = fields.Boolean()
    equivalence_group = fields.String(validate=validate.Length(max=60))


class ResolveQuerySchema(Schema):
    code = fields.String(required=True, validate=validate.Length(1, 60))
    site_id = Reference(Site, "site", metadata={"description": "whose local codes to try; the caller's site by "
                                                                  "default"})


class LocalCodeSchema(Schema):
    id = fields.Integer(dump_only=True)
    site_id = Reference(Site, "site", required=True)
    local_code = fields.String(required=True, validate=validate.Length(1, 60))
    drug_id = Reference(Drug, "drug", required=True)


class LocalCodeQuerySchema(Schema):
    site_id = Reference(Site, "site")
    drug_id = Reference(Drug, "drug")


class FormularyDrugSchema(Schema):
    drug = fields.Nested(DrugSchema)
    extended = fields.Boolean(metadata={"description": "on the list by the consortium's extension, not by default"})


class FormularyEntrySchema(Schema):
    note = fields.String(load_default="", validate=validate.Length(max=200))


class ImportResultSchema(Schema):
    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
