"""Health, the audit trail, and the scheduled jobs' record."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text

from pharmacy.api import Blueprint, page_items, page_request, paginate, request_uow
from pharmacy.audit import AuditEntry, read_audit_trail
from pharmacy.auth import requires
from pharmacy.errors import problem
from pharmacy.principal import Role
from pharmacy.scheduler import job_definitions
from pharmacy.system.services import job_statuses

health_blp = Blueprint("health", __name__, description="Liveness and database reachability")
audit_blp = Blueprint("audit", __name__, url_prefix="/api", description="The append-only audit trail")
jobs_blp = Blueprint("jobs", __name__, url_prefix="/api", description="Scheduled jobs and their last runs")


class HealthSchema(Schema):
    status = fields.String()
    database = fields.String()


@health_blp.route("/health")
class HealthView(MethodView):
    @health_blp.response(200, HealthSchema)
    @health_blp.alt_response(503, description="the database does not answer")
    @health_blp.doc(security=[])
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


class JobRunSchema(Schema):
    runner = fields.String(metadata={"description": "host:pid of the scheduler process"})
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    outcome = fields.String(metadata={"description": "running | ok | failed"})
    detail = fields.String()


class JobStatusSchema(Schema):
    id = fields.String()
    description = fields.String()
    trigger = fields.String()
    schedule = fields.String()
    last_run = fields.Nested(JobRunSchema, allow_none=True)
    last_success_at = fields.DateTime(allow_none=True)


@jobs_blp.route("/jobs")
class JobsView(MethodView):
    @requires(Role.ADMIN, Role.PROCUREMENT)
    @jobs_blp.response(200, JobStatusSchema(many=True))
    def get(self) -> Any:
        """Every scheduled job (stable id, schedule) with its last run and outcome"""
        return job_statuses(request_uow(), job_definitions(current_app.config))
