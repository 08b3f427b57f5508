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
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask
from sqlalchemy import select, text

from pharmacy.clock import Clock, system_clock
from pharmacy.db import Database
from pharmacy.principal import SYSTEM, system_for
from pharmacy.retries import retried
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


def each_consortium(database: Database, clock: Clock, work: Callable[[UnitOfWork], Any], *, nothing: Any = 0,
                    retry: bool = True) -> Any:
    """Run a job's service once per consortium, each in a unit of work confined to it (the tenancy filter on, so
    no consortium's run reads or writes another's rows). A transient failure is retried (unless ``retry`` is off:
    for work that commits as it goes); a consortium whose run still fails is logged and the others run all the
    same, and the job then fails naming it. Returns the sum of the results (numbers, or counts by name), starting
    from ``nothing``."""
    from pharmacy.consortium.models import Consortium

    with UnitOfWork(database.session_factory, SYSTEM, clock) as uow:
        consortia = list(uow.session.scalars(select(Consortium.id).order_by(Consortium.id)))
    total: Any = nothing
    failed: list[str] = []
    for consortium_id in consortia:
        def once(cid: int = consortium_id) -> Any:
            return work(UnitOfWork(database.session_factory, system_for(cid), clock))

        try:
            result = retried(once) if retry else once()
        except Exception as error:
            log.exception("scheduled job failed for consortium %s", consortium_id)
            failed.append(f"consortium {consortium_id}: {type(error).__name__}: {error}")
            continue
        total = _add(total, result)
    if failed:
        raise JobFailed("; ".join(failed) + f" (the other {len(consortia) - len(failed)} consortia ran)")
    return total


class JobFailed(Exception):
    """A job ran for every consortium, but not successfully for all."""


def _add(total: Any, result: Any) -> Any:
    if isinstance(result, dict):
        return {key: total.get(key, 0) + value for key, value in result.items()}
    return total + result


def _expire_uncollected(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.prescriptions.services import expire_uncollected

    return each_consortium(database, _clock(config), expire_uncollected)


def _prepare_due_installments(database: Database, config: Mapping[str, Any], notice_days: int) -> Any:
    from pharmacy.prescriptions.services import prepare_due_installments

    return each_consortium(database, _clock(config), lambda uow: prepare_due_installments(uow, notice_days))


def _deliver_webhooks(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.prescriptions.webhooks import deliver_due

    return each_consortium(database, _clock(config), deliver_due,
                           nothing={"delivered": 0, "retrying": 0, "failed": 0})


def _plan_settings(config: Mapping[str, Any]) -> Any:
    from pharmacy.procurement.plan_runs import PlanSettings

    return PlanSettings.from_config(config)


def _run_queued_plans(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.procurement.plan_runs import run_queued_plans

    return run_queued_plans(database, _clock(config), _plan_settings(config))


def _nightly_plans(database: Database, config: Mapping[str, Any]) -> Any:
    """A draft plan for every consortium, ready for the officers in the morning."""
    from pharmacy.procurement.plan_runs import execute_run, start_plan_run

    clock = _clock(config)

    def plan(uow: UnitOfWork) -> int:
        run = start_plan_run(uow, horizon_days=int(config.get("PLAN_HORIZON_DAYS", 30)),
                             service_level=float(config.get("SERVICE_LEVEL", 0.95)),
                             history_days=int(config.get("FORECAST_HISTORY_DAYS", 90)), trigger="nightly",
                             note="nightly draft")
        return int(execute_run(database, run.id, clock, _plan_settings(config)) == "succeeded")

    return each_consortium(database, clock, plan, retry=False)


def _near_expiry_alerts(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.procurement.services import raise_near_expiry_alerts

    days = int(config.get("NEAR_EXPIRY_DAYS", 90))
    return each_consortium(database, _clock(config), lambda uow: raise_near_expiry_alerts(uow, days))


def _low_stock_alerts(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.procurement.services import raise_low_stock_alerts

    days = int(config.get("LOW_STOCK_DAYS", 7))
    return each_consortium(database, _clock(config), lambda uow: raise_low_stock_alerts(uow, days))


def _release_expired_reservations(database: Database, config: Mapping[str, Any]) -> Any:
    from pharmacy.procurement.services import release_expired_reservations

    return each_consortium(database, _clock(config), release_expired_reservations)


def _heartbeat(database: Database) -> Any:
    return "alive"


def _clock(config: Mapping[str, Any]) -> Clock:
    return config.get("CLOCK") or system_clock


def job_definitions(config: Mapping[str, Any]) -> list[JobDefinition]:
    """Every periodic job of the service, as data: a stable id, a trigger and the service it runs."""
    notice = int(config.get("INSTALLMENT_NOTICE_DAYS", 3))
    local = {"timezone": "Asia/Shanghai"}
    return [
        JobDefinition("prescriptions.expire_uncollected", lambda database: _expire_uncollected(database, config),
                      "interval", {"minutes": 10},
                      description="expire prescriptions past their validity and release their stock"),
        JobDefinition("prescriptions.prepare_due_installments",
                      lambda database: _prepare_due_installments(database, config, notice), "interval",
                      {"hours": 1},
                      description=f"reserve long-prescription issues due within {notice} days"),
        JobDefinition("prescriptions.deliver_webhooks", lambda database: _deliver_webhooks(database, config),
                      "interval", {"seconds": 30},
                      description="deliver and retry webhooks to prescribing systems"),
        JobDefinition("procurement.run_queued_plans", lambda database: _run_queued_plans(database, config),
                      "interval", {"seconds": 30},
                      description="run plan runs left queued, and fail runs whose process died"),
        JobDefinition("procurement.nightly_plan", lambda database: _nightly_plans(database, config), "cron",
                      {"hour": int(config.get("NIGHTLY_PLAN_HOUR", 2)), "minute": 0, **local},
                      description="a draft purchase plan for every consortium"),
        JobDefinition("inventory.near_expiry_alerts", lambda database: _near_expiry_alerts(database, config),
                      "cron", {"hour": 6, "minute": 0, **local},
                      description="alert on lots expiring within the near-expiry window"),
        JobDefinition("inventory.low_stock_alerts", lambda database: _low_stock_alerts(database, config), "cron",
                      {"hour": 6, "minute": 10, **local},
                      description="alert where available stock covers less than the low-stock days of usage"),
        JobDefinition("inventory.release_expired_reservations",
                      lambda database: _release_expired_reservations(database, config), "interval", {"hours": 1},
                      description="release stock held for closed prescriptions or on expired lots"),
        JobDefinition("system.heartbeat", _heartbeat, "interval",
                      {"seconds": int(config.get("HEARTBEAT_SECONDS", 60))},
                      description="shows which process runs the scheduler, and that it is alive"),
    ]


def runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def recorded(job: JobDefinition, database: Database) -> Callable[[], Any]:
    """The job's function, with its run, outcome and result written to ``job_runs``."""
    from pharmacy.system.models import JobRun

    def run() -> Any:
        with UnitOfWork(database.session_factory, SYSTEM) as uow:
            entry = JobRun(job_id=job.id, runner=runner_name(), started_at=uow.now(), outcome="running")
            uow.session.add(entry)
            uow.commit()
            entry_id = entry.id
        outcome, detail, result = "ok", "", None
        try:
            result = job.func(database)
            detail = "" if result is None else str(result)[:1000]
        except Exception as error:
            log.exception("scheduled job %s failed", job.id)
            outcome, detail = "failed", f"{type(error).__name__}: {error}"[:4000]
        with UnitOfWork(database.session_factory, SYSTEM) as uow:
            done = uow.get(JobRun, entry_id)
            done.finished_at, done.outcome, done.detail = uow.now(), outcome, detail
            uow.commit()
        return result

    return run


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
        scheduler.add_job(recorded(job, database), job.trigger, id=job.id, name=job.description or job.id,
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
    # Held by the app for the process's life: a lock nobody references is closed, and with it released.
    app.extensions["scheduler"] = (scheduler, lock)
    return scheduler, lock


def start_scheduler_when_free(app: Flask, retry_seconds: float = 30.0) -> threading.Thread:
    """For web workers (``PHARMACY_RUN_SCHEDULER=1``): the worker that takes the deployment lock runs the
    scheduler; the others keep trying in the background, so one takes over if that worker ends."""

    def keep_trying() -> None:
        stop = threading.Event()
        while not stop.is_set():
            if start_scheduler(app) is not None:
                return
            stop.wait(retry_seconds)

    thread = threading.Thread(target=keep_trying, name="scheduler-lock", daemon=True)
    thread.start()
    return thread
