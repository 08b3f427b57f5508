from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    ColumnElement,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.inventory.domain import Cause, CauseType
from pharmacy.tenancy import ConsortiumOwned


class Lot(ConsortiumOwned, Base):
    """One batch of one drug at one site. ``quantity`` always equals the sum of the lot's movements."""

    __tablename__ = "lots"
    __written_at_commit__ = True  # a dispense's last change to its lots, written by its commit (rows_at_commit)
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

    @classmethod
    def usable_on(cls, day: date) -> ColumnElement[bool]:
        """The SQL twin of :func:`pharmacy.inventory.domain.usable_on`: the lot is good on ``day``."""
        return cls.expiry_date >= day


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
    """Stock of one lot held for a cause until consumed, released or expired.

    The cause is typed: a prescription or a transfer order by its row (a foreign key, so a hold never names a
    row that does not exist), or a pharmacist's manual hold by a reference of their own.
    """

    __tablename__ = "reservations"
    __written_at_commit__ = True  # consumed by a dispense, written by its commit (rows_at_commit)
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint(
            "(cause_type = 'prescription' AND prescription_id IS NOT NULL AND transfer_order_id IS NULL "
            "AND reference IS NULL) OR "
            "(cause_type = 'transfer' AND transfer_order_id IS NOT NULL AND prescription_id IS NULL "
            "AND reference IS NULL) OR "
            "(cause_type = 'manual' AND reference IS NOT NULL AND prescription_id IS NULL "
            "AND transfer_order_id IS NULL)", name="one_typed_cause"),
        Index("ix_reservations_held_lot", "status", "lot_id"),
    )
    __acting_site__ = "site_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="held")  # held | consumed | released
    cause_type: Mapped[CauseType] = mapped_column(Enum(
        CauseType, native_enum=False, length=30, values_callable=lambda kinds: [k.value for k in kinds],
        validate_strings=True))
    prescription_id: Mapped[int | None] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    transfer_order_id: Mapped[int | None] = mapped_column(ForeignKey("transfer_orders.id"), index=True)
    reference: Mapped[str | None] = mapped_column(String(60))
    supply_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @staticmethod
    def cause_columns(cause: Cause) -> dict[str, object]:
        """The columns that name ``cause`` on a hold."""
        return {"cause_type": cause.type, "prescription_id": cause.row_id if cause.type is CauseType.PRESCRIPTION
                else None, "transfer_order_id": cause.row_id if cause.type is CauseType.TRANSFER else None,
                "reference": cause.id if cause.type is CauseType.MANUAL else None}

    @classmethod
    def held_for(cls, cause: Cause) -> ColumnElement[bool]:
        """The SQL twin of "this hold is for ``cause``"."""
        if cause.type is CauseType.PRESCRIPTION:
            return cls.prescription_id == cause.row_id
        if cause.type is CauseType.TRANSFER:
            return cls.transfer_order_id == cause.row_id
        return (cls.cause_type == cause.type) & (cls.reference == cause.id)

    @property
    def cause(self) -> Cause:
        ref = self.prescription_id if self.cause_type is CauseType.PRESCRIPTION else \
            self.transfer_order_id if self.cause_type is CauseType.TRANSFER else self.reference
        return Cause(self.cause_type, str(ref))

    @property
    def cause_id(self) -> str:
        """The cause as the API names it: the row's id, or the manual hold's reference."""
        return self.cause.id


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


class TraceCode(ConsortiumOwned, Base):
    """A drug trace code (药品追溯码): the code of one smallest sales pack, which belongs to one lot. Known from the
    receipt that scanned it in, or from the dispense that first scanned it. The unique key makes "one code, one
    lot" the database's rule, whichever site scans it."""

    __tablename__ = "trace_codes"
    __table_args__ = (UniqueConstraint("consortium_id", "code", name="uq_trace_codes_consortium_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(80))  # as normalised: 20 digits, or GS1 (01) GTIN + (21) serial
    kind: Mapped[str] = mapped_column(String(10))  # national | gs1
    gtin: Mapped[str | None] = mapped_column(String(14))
    serial: Mapped[str | None] = mapped_column(String(20))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))  # where it was first scanned
    source: Mapped[str] = mapped_column(String(20))  # receipt | dispense
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TraceCodeDispense(ConsortiumOwned, Base):
    """A trace code given to a patient with a dispense movement. The unique key on the code makes "dispensed
    once, anywhere in the consortium" the database's rule: the same pack given twice points at resold or fake
    drugs."""

    __tablename__ = "trace_code_dispenses"

    id: Mapped[int] = mapped_column(primary_key=True)
    trace_code_id: Mapped[int] = mapped_column(ForeignKey("trace_codes.id"), unique=True)
    movement_id: Mapped[int] = mapped_column(ForeignKey("movements.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
