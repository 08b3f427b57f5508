"""The shared pharmacy service of a medical consortium."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask_smorest import Api

from pharmacy import auth, hygiene, retries
from pharmacy.config import load_config
from pharmacy.db import Database
from pharmacy.errors import ErrorSchema, register_error_handlers


class _Api(Api):
    ERROR_SCHEMA = ErrorSchema  # the one error shape, documented once as the component "Error"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application: settings, database, API, error handlers, command line."""
    # PHARMACY_INSTANCE_PATH moves the instance folder (SQLite file, scheduler lock) out of the source tree.
    app = Flask(__name__, instance_relative_config=True, instance_path=os.environ.get("PHARMACY_INSTANCE_PATH"))
    app.config.update(load_config(app.instance_path))
    if config:
        app.config.update(config)
    app.config.setdefault("API_SPEC_OPTIONS", {})
    app.config["API_SPEC_OPTIONS"].update(
        {
            "info": {"description": "Unified drug catalog, lot-level stock, prescription routing and pooled "
                                    "purchase planning for the members of a medical consortium."},
            "security": [{"BearerKey": []}, {"ApiKeyHeader": []}, {"Basic": []}],
            "components": {"securitySchemes": auth.SECURITY_SCHEMES},
        }
    )
    if app.config["DATABASE_URL"].startswith("sqlite:///") and ":memory:" not in app.config["DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)

    database = Database(app.config["DATABASE_URL"], echo=app.config["SQL_ECHO"])
    app.extensions["pharmacy_db"] = database

    _import_models()
    app.url_map.converters["id"] = hygiene.IdConverter
    api = _Api(app)
    api.register_converter(hygiene.IdConverter, lambda converter: hygiene.ID_PARAMETER_SCHEMA)
    _serve_swagger_ui_assets(app)
    register_error_handlers(app)
    auth.init_app(app)
    hygiene.init_app(app)
    _register_blueprints(api)
    _plan_runner(app, database)
    from pharmacy.web import init_web

    init_web(app)
    retries.init_app(app)  # last: it wraps every view registered above
    if app.config.get("RUN_SCHEDULER"):
        from pharmacy.scheduler import start_scheduler_when_free

        start_scheduler_when_free(app)
    return app


def _serve_swagger_ui_assets(app: Flask) -> None:
    from flask import send_from_directory
    from swagger_ui_bundle import swagger_ui_path

    # The endpoint's name starts as flask-smorest's own docs endpoints do: it is the docs, not the API.
    app.add_url_rule("/docs/assets/<path:filename>", "api-docs-assets",
                     lambda filename: send_from_directory(str(swagger_ui_path), filename))


def _plan_runner(app: Flask, database: Database) -> None:
    from pharmacy.clock import system_clock
    from pharmacy.procurement.plan_runs import PlanRunner, PlanSettings

    app.extensions["plan_runner"] = PlanRunner(
        database, lambda: app.config.get("CLOCK") or system_clock, lambda: PlanSettings.from_config(app.config),
        app.config.get("PLAN_RUNNER", "thread"))


def _import_models() -> None:
    # Every mapped class must be imported before the first query so relationships and the tenancy
    # filter see the whole schema; every event handler, so that the unit of work finds it.
    from pharmacy import handlers, idempotency, models  # noqa: F401


def _register_blueprints(api: Api) -> None:
    from pharmacy.accounts.routes import blp as accounts_blp
    from pharmacy.catalog.routes import blp as catalog_blp
    from pharmacy.consortium.routes import blp as consortium_blp
    from pharmacy.inventory.routes import blp as inventory_blp
    from pharmacy.prescriptions.fhir_routes import blp as fhir_blp
    from pharmacy.prescriptions.routes import blp as prescriptions_blp
    from pharmacy.procurement.routes import blp as procurement_blp
    from pharmacy.system.routes import audit_blp, health_blp, jobs_blp

    for blp in (health_blp, consortium_blp, accounts_blp, catalog_blp, inventory_blp, prescriptions_blp,
                fhir_blp, procurement_blp, audit_blp, jobs_blp):
        api.register_blueprint(blp)
