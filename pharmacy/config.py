"""Settings read from the environment, with safe defaults for the embedded SQLite set-up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def load_config(instance_path: str) -> dict[str, Any]:
    """Build the configuration mapping from environment variables.

    ``DATABASE_URL`` defaults to a SQLite file in the instance folder, so the service runs with
    nothing else installed. ``SECRET_KEY`` defaults to a random key per process, which is safe but
    logs users out on restart; production sets it.
    """
    default_db = "sqlite:///" + str(Path(instance_path) / "pharmacy.sqlite3")
    database_url = os.environ.get("DATABASE_URL") or default_db
    # Heroku-style URLs name the old driver; we speak psycopg 3.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgres://")
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return {
        "DATABASE_URL": database_url,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        "SQL_ECHO": os.environ.get("SQL_ECHO") == "1",
        # The pages' sign-in cookie: never readable by scripts, not sent on cross-site posts, and only over
        # HTTPS when the deployment says it serves HTTPS.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": os.environ.get("PHARMACY_SECURE_COOKIES") == "1",
        "DEFAULT_PAGE_SIZE": _int("PHARMACY_PAGE_SIZE", 50),
        "MAX_PAGE_SIZE": _int("PHARMACY_MAX_PAGE_SIZE", 500),
        "NEAR_EXPIRY_DAYS": _int("PHARMACY_NEAR_EXPIRY_DAYS", 90),
        "WORKLIST_REFRESH_SECONDS": _int("PHARMACY_WORKLIST_REFRESH_SECONDS", 15),
        "INSTALLMENT_NOTICE_DAYS": _int("PHARMACY_INSTALLMENT_NOTICE_DAYS", 3),
        # Prescription policy (days); China's rules by default.
        "MAX_VALIDITY_DAYS": _int("PHARMACY_MAX_VALIDITY_DAYS", 3),
        "ORDINARY_SUPPLY_DAYS": _int("PHARMACY_ORDINARY_SUPPLY_DAYS", 7),
        "EMERGENCY_SUPPLY_DAYS": _int("PHARMACY_EMERGENCY_SUPPLY_DAYS", 3),
        "LONG_SUPPLY_DAYS": _int("PHARMACY_LONG_SUPPLY_DAYS", 84),
        # Procurement: forecasts, transfers the consortium allows, plan runs, alerts.
        "FORECAST_HISTORY_DAYS": _int("PHARMACY_FORECAST_HISTORY_DAYS", 90),
        "PLAN_HORIZON_DAYS": _int("PHARMACY_PLAN_HORIZON_DAYS", 30),
        "SERVICE_LEVEL": _float("PHARMACY_SERVICE_LEVEL", 0.95),
        "TRANSFER_MAX_KM": _float("PHARMACY_TRANSFER_MAX_KM", 15.0),
        "TRANSFER_COST_PER_UNIT": _float("PHARMACY_TRANSFER_COST_PER_UNIT", 0.02),
        "TRANSFER_COST_PER_UNIT_KM": _float("PHARMACY_TRANSFER_COST_PER_UNIT_KM", 0.005),
        "TRANSFER_COST_PER_SHIPMENT": _float("PHARMACY_TRANSFER_COST_PER_SHIPMENT", 20.0),
        "LOW_STOCK_DAYS": _int("PHARMACY_LOW_STOCK_DAYS", 7),
        # "thread": a run starts in a background thread of the process that queued it (and the scheduler
        # picks up any left queued); "queue": only the scheduler runs them.
        "PLAN_RUNNER": os.environ.get("PHARMACY_PLAN_RUNNER", "thread"),
        "PLAN_WORKERS": _int("PHARMACY_PLAN_WORKERS", os.cpu_count() or 1),
        # Plans solved on an existing Dask cluster's workers (tcp://host:8786) instead of local processes.
        "DASK_SCHEDULER": os.environ.get("PHARMACY_DASK_SCHEDULER", ""),
        "NIGHTLY_PLAN_HOUR": _int("PHARMACY_NIGHTLY_PLAN_HOUR", 2),
        # Web workers start the scheduler too when set (one of them wins the deployment lock).
        "RUN_SCHEDULER": os.environ.get("PHARMACY_RUN_SCHEDULER") == "1",
        "HEARTBEAT_SECONDS": _int("PHARMACY_HEARTBEAT_SECONDS", 60),
        # How long a process answers an API key from what it read before (0: read it on every request); only
        # while PostgreSQL tells it of every change to a key (see pharmacy/key_cache.py).
        "PRINCIPAL_CACHE_SECONDS": _float("PHARMACY_PRINCIPAL_CACHE_SECONDS", 60.0),
        "MAX_CONTENT_LENGTH": _int("PHARMACY_MAX_UPLOAD_BYTES", 32 * 1024 * 1024),
        # A JSON body is much smaller than a CSV upload: a 20,000-line stocktake is about 1.5 MB.
        "MAX_JSON_BYTES": _int("PHARMACY_MAX_JSON_BYTES", 4 * 1024 * 1024),
        # flask-smorest / OpenAPI
        "API_TITLE": "Consortium shared pharmacy",
        "API_VERSION": "1.0",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "/docs",
        # Swagger UI's assets come from the swagger-ui-bundle package, served by the app itself: hospital
        # networks are often closed to the internet.
        "OPENAPI_SWAGGER_UI_URL": "/docs/assets/",
    }
