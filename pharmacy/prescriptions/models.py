from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.inventory.models import Movement
from pharmacy.tenancy import ConsortiumOwned


class Prescription(ConsortiumOwned, Base):
    """A prescription from an upper hospital, held by one pharmacy at a time.

    Patient data is kept to the minimum: a pseudonymous reference, where the patient lives (district,
    optionally coordinates) so the nearest pharmacy can be found, and what the prescriber chose to send for the
    pharmacist's review (审方): birth date, sex, diagnoses and allergies, shown only to the pharmacy that holds the
    prescription and to its prescriber (see :func:`pharmacy.prescriptions.domain.sees_clinical_facts`), and kept
    out of the audit trail's text.
    """

    __tablename__ = "prescriptions"
    __table_args__ = (
        UniqueConstraint("prescriber_site_id", "number", name="uq_prescriptions_site_number"),
        UniqueConstraint("prescriber_site_id", "idempotency_key", name="uq_prescriptions_site_idempotency_key"),
        Index("ix_prescriptions_pharmacy_status", "pharmacy_site_id", "status"),
        Index("ix_prescriptions_status_valid_until", "status", "valid_until"),
    )
    __audited__ = True
    __audit_private__ = frozenset({"patient_birth_date", "patient_gender", "diagnoses", "allergies"})
    # A status change is the last thing its request writes: its commit writes it with the event (rows_at_commit).
    __written_at_commit__ = True
    __acting_site__ = "pharmacy_site_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(60))
    prescriber_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    prescriber: Mapped[str] = mapped_column(String(120), default="")
    patient_ref: Mapped[str] = mapped_column(String(80))
    patient_district: Mapped[str | None] = mapped_column(String(100))
    patient_latitude: Mapped[float | None] = mapped_column()
    patient_longitude: Mapped[float | None] = mapped_column()
    patient_birth_date: Mapped[date | None] = mapped_column(Date)
    patient_gender: Mapped[str | None] = mapped_column(String(10))  # FHIR's: male | female | other | unknown
    diagnoses: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{"code", "system", "display"}]
    allergies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # [{"substance", "code", "reaction", ...}]
    kind: Mapped[str] = mapped_column(String(20))  # ordinary | emergency | long
    issued_on: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(30))
    status_reason: Mapped[str] = mapped_column(Text, default="")  # in English, for prescribing systems
    # What the reason says, as facts (see StatusReason): pages say them in their own language.
    status_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    nominated_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    pharmacy_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"))
    routing: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    returned_from: Mapped[list[int]] = mapped_column(JSON, default=list)
    issues_total: Mapped[int] = mapped_column(Integer, default=1)
    current_issue: Mapped[int] = mapped_column(Integer, default=0)
    interval_days: Mapped[int | None] = mapped_column(Integer)
    next_due_on: Mapped[date | None] = mapped_column(Date)
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    request_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(10), default="api")  # api | fhir
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # set by the service's clock


class PrescriptionItem(ConsortiumOwned, Base):
    """One drug of a prescription; ``quantity`` is per issue, in dispensing units."""

    __tablename__ = "prescription_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    supply_days: Mapped[int] = mapped_column(Integer)
    substitution_allowed: Mapped[bool] = mapped_column(Boolean, default=True)
    dosage: Mapped[str] = mapped_column(Text, default="")  # the words the pharmacist reads (and the label)
    external_id: Mapped[str | None] = mapped_column(String(120))  # the sender's MedicationRequest id
    # What a FHIR sender said as it said it, echoed back: substitution.allowedCodeableConcept (whether substitution
    # is allowed is ``substitution_allowed``, read from it) and the structured dosageInstruction.
    substitution_concept: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dosage_structured: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Many-to-one only, so that a new prescription and its items are written in one flush; there is no collection
    # on the prescription to go stale when an item is added by its key.
    prescription: Mapped[Prescription] = relationship(lazy="raise")


class Dispense(ConsortiumOwned, Base):
    """Units of one lot given for one item of one issue (a FHIR MedicationDispense)."""

    __tablename__ = "dispenses"
    __written_at_commit__ = True  # a hand-over's stamp, written by its commit (rows_at_commit)

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("prescription_items.id"))
    issue: Mapped[int] = mapped_column(Integer)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"))
    lot_id: Mapped[int] = mapped_column(ForeignKey("lots.id"))
    lot_number: Mapped[str] = mapped_column(String(60))
    expiry_date: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    substituted: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    movement_id: Mapped[int] = mapped_column(ForeignKey("movements.id"))
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handed_over_by: Mapped[str | None] = mapped_column(String(160))
    # A controlled drug is confirmed by a second pharmacist before it is handed over (双人核对).
    checked_by: Mapped[str | None] = mapped_column(String(160))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The ledger movement the units left by: set on a new dispense, so that both are written in one flush.
    movement: Mapped[Movement] = relationship(lazy="raise")


class PrescriptionReturn(ConsortiumOwned, Base):
    """A pharmacy gave a prescription back (it was routed again elsewhere): who, when and why. The pharmacy keeps
    this record in its history; the prescription itself, and its patient, it no longer sees."""

    __tablename__ = "prescription_returns"
    __table_args__ = (Index("ix_prescription_returns_site_at", "site_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    number: Mapped[str] = mapped_column(String(60))
    reason_code: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(160))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PrescriptionEvent(ConsortiumOwned, Base):
    """The outbox: one row per status change, written in the change's transaction. ``id`` is the cursor."""

    __tablename__ = "prescription_events"
    # The events not yet made into webhook deliveries: the delivery job finds them without reading the outbox.
    __table_args__ = (Index("ix_prescription_events_to_fan_out", "id", postgresql_where=text("NOT fanned_out"),
                            sqlite_where=text("NOT fanned_out")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    prescription_id: Mapped[int] = mapped_column(ForeignKey("prescriptions.id"), index=True)
    prescriber_site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    pharmacy_site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Made into a delivery to each of its hospital's subscriptions yet (by the delivery job, not the request).
    fanned_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class WebhookSubscription(ConsortiumOwned, Base):
    """Where a prescribing system wants its events pushed; payloads are signed with ``secret``."""

    __tablename__ = "webhook_subscriptions"
    __audited__ = True
    __acting_site__ = "site_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    # Kept readable: the service must sign with it. It is shown to the subscriber once.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(ConsortiumOwned, Base):
    """One event to one subscription, retried with backoff until delivered or given up (and sent again if
    asked)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_pending", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("prescription_events.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Since when it has been tried (its event's time before it was first sent again): given up two days on.
    retrying_since: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Shortage(ConsortiumOwned, Base):
    """Demand the whole consortium could not meet, recorded for procurement."""

    __tablename__ = "shortages"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"))
    drug_id: Mapped[int] = mapped_column(ForeignKey("drugs.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    prescription_id: Mapped[int | None] = mapped_column(ForeignKey("prescriptions.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
