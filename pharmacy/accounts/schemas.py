from __future__ import annotations

from marshmallow import Schema, fields, validate

from pharmacy.accounts.domain import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, USERNAME_PATTERN
from pharmacy.consortium.models import Site
from pharmacy.fields import Reference

ACCOUNT_ROLES = ["admin", "prescriber", "pharmacist", "procurement"]


class ApiKeySchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(1, 120))
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = Reference(Site, "site", allow_none=True)
    key_prefix = fields.String(dump_only=True, metadata={"description": "first characters, to recognise a key"})
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class NewApiKeySchema(ApiKeySchema):
    key = fields.String(dump_only=True, metadata={"description": "the key itself; shown this once only"})


PASSWORD = validate.Length(MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH)


class UserSchema(Schema):
    id = fields.Integer(dump_only=True)
    # As it is kept: accounts made before the username rule was checked may not follow it.
    username = fields.String(required=True)
    display_name = fields.String(load_default="", validate=validate.Length(max=120))
    role = fields.String(required=True, validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = Reference(Site, "site", allow_none=True)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class NewUserSchema(UserSchema):
    username = fields.String(required=True, validate=validate.Regexp(USERNAME_PATTERN), metadata={
        "description": "2 to 80 ASCII letters, digits, '.', '_', '@' or '-'"})


class UserUpdateSchema(Schema):
    display_name = fields.String(validate=validate.Length(max=120))
    role = fields.String(validate=validate.OneOf(ACCOUNT_ROLES))
    site_id = Reference(Site, "site", allow_none=True)
    password = fields.String(load_only=True, validate=PASSWORD)
    active = fields.Boolean()
