from __future__ import annotations

from marshmallow import Schema, fields, validate

ACCOUNT_ROLES = ["admin", "prescriber", "pharmacist", "procurement"]


class ApiKeySchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(1, 120))
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = fields.Integer(allow_none=True)
    key_prefix = fields.String(dump_only=True, metadata={"description": "first characters, to recognise a key"})
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class NewApiKeySchema(ApiKeySchema):
    key = fields.String(dump_only=True, metadata={"description": "the key itself; shown this once only"})


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.@\-]{3,80}$"))
    display_name = fields.String(load_default="", validate=validate.Length(max=120))
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = fields.Integer(allow_none=True)
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=200))
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class UserUpdateSchema(Schema):
    display_name = fields.String(validate=validate.Length(max=120))
    role = fields.String(validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = fields.Integer(allow_none=True)
    password = fields.String(load_only=True, validate=validate.Length(max=200))
    active = fields.Boolean()
