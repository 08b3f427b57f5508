from __future__ import annotations

from marshmallow import Schema, fields, validate

from pharmacy.consortium.domain import SiteKind
from pharmacy.consortium.models import Site
from pharmacy.fields import Reference, WholeNumber

SITE_KINDS = [kind.value for kind in SiteKind]

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$",
                       error="use 1-40 letters, digits, '_', '-' or '.', starting with a letter or digit")


class ConsortiumSchema(Schema):
    id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    tight = fields.Boolean(metadata={"description": "every member but the lead has exactly one upper site"})
    created_at = fields.DateTime(dump_only=True)


class ConsortiumUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(1, 200))
    tight = fields.Boolean()


class SiteSchema(Schema):
    id = fields.Integer(dump_only=True)
    consortium_id = fields.Integer(dump_only=True)
    code = fields.String(required=True, validate=CODE)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    kind = fields.String(required=True, validate=validate.OneOf(SITE_KINDS))
    level = WholeNumber(minimum=1, maximum=9,
                           metadata={"description": "1 = lead hospital; larger = lower in the tree; default by kind"})
    parent_id = Reference(Site, "upper site", allow_none=True, metadata={"description": "the upper site; none for the "
                                                                                   "lead"})
    district = fields.String(allow_none=True, validate=validate.Length(max=100))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    dispenses = fields.Boolean(load_default=False)
    opening_hours = fields.String(load_default="", validate=validate.Length(max=200), metadata={
        "description": "a pharmacy's hours, printed on labels and guidance sheets (e.g. 周一至周日 8:00–17:00)"})
    phone = fields.String(load_default="", validate=validate.Length(max=40))
    active = fields.Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)


class SiteUpdateSchema(Schema):
    code = fields.String(validate=CODE)
    name = fields.String(validate=validate.Length(1, 200))
    kind = fields.String(validate=validate.OneOf(SITE_KINDS))
    level = WholeNumber(minimum=1, maximum=9)
    parent_id = Reference(Site, "upper site", allow_none=True)
    district = fields.String(allow_none=True, validate=validate.Length(max=100))
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))
    dispenses = fields.Boolean()
    opening_hours = fields.String(validate=validate.Length(max=200))
    phone = fields.String(validate=validate.Length(max=40))
    active = fields.Boolean()


class SiteQuerySchema(Schema):
    kind = fields.String(validate=validate.OneOf(SITE_KINDS))
    district = fields.String(validate=validate.Length(max=100))
    dispenses = fields.Boolean()
    active = fields.Boolean()
    parent_id = Reference(Site, "upper site")
