from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.tenancy import ConsortiumOwned


class Lot(ConsortiumOwned, Base):
    """One batch of one drug at one site. ``quantity`` always equals the sum of the lot's movements."""

    __tablename__ = "lots"
    __table_args__ = (
        UniqueConstraint("site_id", "drug_id", "lot_number", name="uq_lots_site_drug_lot_number"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= quantity", name="reserved_within_quantity"),
        Index("ix_lots_site_drug_expiry", "site_id", "drug_id", "expiry_date"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)
    lot_number: Mapped[str] = mapped_column(String(60))
    expiry_date: Mapped[date] = mapped_column(Date, index=True)
    quantity: Mapped[int] = mapped_column(Integer, default=0)  # dispensing units on hand
    reserved: Mapped[int] = mapped_column(Integer, default=0)  # held by open reservations
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Movement(ConsortiumOwned, Base):
    """One signed change of a lot's quantity: append-only, undone only by a reversing movement."""

    __tablename__ = "movements"
    __table_args__ = (
        CheckConstraint("quantity <> 0", name="quantity_not_zero"),
        Index("ix_movements_cause", "cause_type", "cause_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    quantity: Mapped[int] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(160))
    cause_type: Mapped[str | None] = mapped_column(String(30))
    cause_id: Mapped[str | None] = mapped_column(String(60))
    # A reversal names the movement it undoes; the unique index lets a movement be undone only once.
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("movements.id"), unique=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Reservation(ConsortiumOwned, Base):
    """Stock of one lot held for a cause (a prescription) until consumed, released or expired."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_reservations_cause", "cause_type", "cause_id"),
    )
    __acting_site__ = "site_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="held")  # held | consumed | released
    cause_type: Mapped[str] = mapped_column(String(30))
    cause_id: Mapped[str] = mapped_column(String(60))
    supply_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Stocktake(ConsortiumOwned, Base):
    """A count of a site's stock; its differences become count-adjustment movements."""

    __tablename__ = "stocktakes"
    __acting_site__ = "site_id"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    counted_by: Mapped[str] = mapped_column(String(160))
    note: Mapped[str] = mapped_column(Text, default="")
    lines_counted: Mapped[int] = mapped_column(Integer, default=0)
    lines_adjusted: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
