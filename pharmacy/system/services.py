"""Reading the scheduler's record: each job with its last run and outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from pharmacy.scheduler import JobDefinition
from pharmacy.system.models import JobRun
from pharmacy.unit_of_work import UnitOfWork


@dataclass(frozen=True)
class JobStatus:
    id: str
    description: str
    trigger: str
    schedule: str
    last_run: JobRun | None
    last_success_at: object | None


def job_statuses(uow: UnitOfWork, definitions: Sequence[JobDefinition]) -> list[JobStatus]:
    """Every job definition with its latest run and when it last succeeded."""
    with uow:
        latest = select(JobRun.job_id, func.max(JobRun.id).label("id")).group_by(JobRun.job_id).subquery()
        runs = {run.job_id: run for run in uow.session.scalars(select(JobRun).join(latest, latest.c.id == JobRun.id))}
        succeeded = dict(uow.session.execute(select(JobRun.job_id, func.max(JobRun.finished_at))
                                             .where(JobRun.outcome == "ok").group_by(JobRun.job_id)).all())
        return [JobStatus(d.id, d.description, d.trigger,
                          ", ".join(f"{k}={v}" for k, v in d.trigger_args.items() if k != "timezone"),
                          runs.get(d.id), succeeded.get(d.id)) for d in definitions]
