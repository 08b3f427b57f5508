from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow


class JobRun(Base):
    """One execution of a scheduled job: which process ran it, when, and how it ended.

    Jobs serve the whole deployment (every consortium), so runs belong to no consortium; ``detail`` holds
    counts only, never a consortium's data.
    """

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(80), index=True)
    runner: Mapped[str] = mapped_column(String(120))  # host:pid of the scheduler that ran it
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(10), default="running")  # running | ok | failed
    detail: Mapped[str] = mapped_column(Text, default="")
