from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.tenancy import ConsortiumOwned


class Drug(ConsortiumOwned, Base):
    """An item of the consortium's unified catalog. Retired, never deleted."""

    __tablename__ = "drugs"
    __table_args__ = (
        UniqueConstraint("consortium_id", "code", name="uq_drugs_consortium_code"),
        Index("ix_drugs_consortium_national_code", "consortium_id", "national_code"),
        Index("ix_drugs_consortium_equivalence", "consortium_id", "equivalence_group"),
    )
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    national_code: Mapped[str | None] = mapped_column(String(40))
    atc_code: Mapped[str | None] = mapped_column(String(10))
    generic_name: Mapped[str] = mapped_column(String(200))
    # Pinyin of the generic name, so pharmacists can type "amxl" for 阿莫西林.
    pinyin_initials: Mapped[str] = mapped_column(String(200), default="")
    pinyin_full: Mapped[str] = mapped_column(String(400), default="")
    search_key: Mapped[str] = mapped_column(Text, default="")
    brand_name: Mapped[str | None] = mapped_column(String(200))
    manufacturer: Mapped[str | None] = mapped_column(String(200))
    dosage_form: Mapped[str] = mapped_column(String(60))
    strength_amount: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    strength_unit: Mapped[str] = mapped_column(String(20))
    dispensing_unit: Mapped[str] = mapped_column(String(20))
    pack_size: Mapped[int] = mapped_column(Integer)
    essential: Mapped[bool] = mapped_column(Boolean, default=False)
    insurance_class: Mapped[str] = mapped_column(String(10), default="none")
    controlled_class: Mapped[str] = mapped_column(String(20), default="none")
    special_storage: Mapped[str] = mapped_column(String(20), default="none")
    equivalence_group: Mapped[str | None] = mapped_column(String(60))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LocalCode(ConsortiumOwned, Base):
    """A member system's own code for a catalog drug (a hospital HIS speaks its own codes)."""

    __tablename__ = "local_codes"
    __table_args__ = (UniqueConstraint("site_id", "local_code", name="uq_local_codes_site_code"),)
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    local_code: Mapped[str] = mapped_column(String(60))
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)


class FormularyEntry(ConsortiumOwned, Base):
    """A drug the consortium lets a site dispense beyond its default list (e.g. for extended prescriptions)."""

    __tablename__ = "formulary_entries"
    __table_args__ = (UniqueConstraint("site_id", "drug_id", name="uq_formulary_entries_site_drug"),)
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
