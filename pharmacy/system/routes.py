"""Health and the audit trail."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields
from sqlalchemy import text

from pharmacy.api import page_items, page_request, paginate, request_uow
from pharmacy.audit import AuditEntry, read_audit_trail
from pharmacy.auth import requires
from pharmacy.errors import problem
from pharmacy.principal import Role

health_blp = Blueprint("health", __name__, description="Liveness and database reachability")
audit_blp = Blueprint("audit", __name__, url_prefix="/api", description="The append-only audit trail")


class HealthSchema(Schema):
    status = fields.String()
    database = fields.String()


@health_blp.route("/health")
class HealthView(MethodView):
    @health_blp.response(200, HealthSchema)
    @health_blp.alt_response(503, description="the database does not answer")
    def get(self) -> Any:
        """Is the service up and its database reachable?"""
        database = current_app.extensions["pharmacy_db"]
        try:
            with database.session_factory() as session:
                session.execute(text("SELECT 1"))
        except Exception as error:  # any failure to reach the database means unhealthy
            return problem(503, f"database unreachable: {type(error).__name__}")
        return {"status": "ok", "database": database.engine.dialect.name}


class AuditEntrySchema(Schema):
    id = fields.Integer()
    at = fields.DateTime()
    actor = fields.String()
    actor_role = fields.String()
    site_id = fields.Integer(allow_none=True)
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String()
    summary = fields.String()


class AuditQuerySchema(Schema):
    object_type = fields.String()
    object_id = fields.String()
    actor = fields.String()
    action = fields.String()
    since = fields.AwareDateTime(metadata={"description": "ISO 8601 with offset"})
    until = fields.AwareDateTime()


@audit_blp.route("/audit")
class AuditView(MethodView):
    @requires(Role.ADMIN)
    @audit_blp.arguments(AuditQuerySchema, location="query")
    @audit_blp.response(200, AuditEntrySchema(many=True))
    @paginate(audit_blp)
    def get(self, filters: dict[str, Any], pagination_parameters: Any) -> list[AuditEntry]:
        """Read the audit trail (there is no way to change it)"""
        page = read_audit_trail(request_uow(), page_request(pagination_parameters), **filters)
        return page_items(page, pagination_parameters)
