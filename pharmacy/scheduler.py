"""Scheduled jobs: data with stable ids, run by exactly one scheduler per deployment.

Web workers never start a scheduler. ``pharmacy scheduler`` runs it as its own process (or ``pharmacy
serve`` in-process for the single-process set-up); either way it first takes a deployment-wide lock
(a PostgreSQL advisory lock, or a file lock beside the SQLite file), so a second scheduler started by
mistake waits instead of running every job twice.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask
from sqlalchemy import text

from pharmacy.db import Database
from pharmacy.principal import SYSTEM
from pharmacy.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x5048_4152  # arbitrary, stable advisory-lock key for this service


@dataclass(frozen=True)
class JobDefinition:
    """One periodic job: a stable id, an APScheduler trigger and the service it calls."""

    id: str
    func: Callable[[Database], Any]
    trigger: str
    trigger_args: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def _expire_uncollected(database: Database) -> Any:
    from pharmacy.prescriptions.services import expire_uncollected

    return expire_uncollected(UnitOfWork(database.session_factory, SYSTEM))


def _prepare_due_installments(database: Database, notice_days: int) -> Any:
    from pharmacy.prescriptions.services import prepare_due_installments

    return prepare_due_installments(UnitOfWork(database.session_factory, SYSTEM), notice_days)


def _deliver_webhooks(database: Database) -> Any:
    from pharmacy.prescriptions.webhooks import deliver_due

    return deliver_due(UnitOfWork(database.session_factory, SYSTEM))


def job_definitions(config: Mapping[str, Any]) -> list[JobDefinition]:
    """Every periodic job of the service, as data: a stable id, a trigger and the service it runs."""
    notice = int(config.get("INSTALLMENT_NOTICE_DAYS", 3))
    return [
        JobDefinition("prescriptions.expire_uncollected", _expire_uncollected, "interval", {"minutes": 10},
                      description="expire prescriptions past their validity and release their stock"),
        JobDefinition("prescriptions.prepare_due_installments",
                      lambda database: _prepare_due_installments(database, notice), "interval", {"hours": 1},
                      description=f"reserve long-prescription issues due within {notice} days"),
        JobDefinition("prescriptions.deliver_webhooks", _deliver_webhooks, "interval", {"seconds": 30},
                      description="deliver and retry webhooks to prescribing systems"),
    ]


class DeploymentLock:
    """Held while this process is the deployment's one scheduler."""

    def __init__(self, database: Database, instance_path: str) -> None:
        self._database = database
        self._path = os.path.join(instance_path, "scheduler.lock")
        self._resource: Any = None

    def acquire(self) -> bool:
        if self._database.is_postgresql:
            conn = self._database.engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}).scalar()
            conn.commit()
            if got:
                self._resource = conn
                return True
            conn.close()
            return False
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        handle = open(self._path, "w")  # noqa: SIM115 - held open for the scheduler's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._resource = handle
        return True

    def release(self) -> None:
        if self._resource is not None:
            if self._database.is_postgresql:
                # Advisory locks belong to the session, and a pooled connection outlives close().
                self._resource.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEDULER_LOCK_KEY})
                self._resource.commit()
            self._resource.close()
            self._resource = None


def build_scheduler(app: Flask, scheduler: BaseScheduler | None = None) -> BaseScheduler:
    """An APScheduler with every job registered (not started)."""
    database: Database = app.extensions["pharmacy_db"]
    scheduler = scheduler or BackgroundScheduler(timezone="UTC")
    for job in job_definitions(app.config):
        scheduler.add_job(job.func, job.trigger, args=[database], id=job.id, name=job.description or job.id,
                          replace_existing=True, coalesce=True, max_instances=1, **job.trigger_args)
    return scheduler


def start_scheduler(app: Flask) -> tuple[BaseScheduler, DeploymentLock] | None:
    """Start the background scheduler if no other process of this deployment runs one."""
    lock = DeploymentLock(app.extensions["pharmacy_db"], app.instance_path)
    if not lock.acquire():
        log.warning("another process runs the scheduler; not starting one here")
        return None
    scheduler = build_scheduler(app)
    scheduler.start()
    return scheduler, lock
