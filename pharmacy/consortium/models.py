from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.tenancy import ConsortiumOwned


class Consortium(Base):
    """A medical consortium (医联体): one lead hospital and its members."""

    __tablename__ = "consortia"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # In a tight consortium every member but the lead has exactly one upper site.
    tight: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Site(ConsortiumOwned, Base):
    """A member institution; a pharmacy is a site that dispenses."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("consortium_id", "code", name="uq_sites_consortium_code"),)
    __audited__ = True
    __acting_site__ = "id"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    level: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    district: Mapped[str | None] = mapped_column(String(100))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    dispenses: Mapped[bool] = mapped_column(Boolean, default=False)
    # What a pharmacy prints on a label and a guidance sheet, for the patient to come back or call.
    opening_hours: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
