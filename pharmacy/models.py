"""Every mapped table, imported in one place (for the app, the migrations and the tests)."""

from pharmacy.accounts.models import ApiKey, User
from pharmacy.audit import AuditEntry
from pharmacy.catalog.models import Drug, FormularyEntry, LocalCode
from pharmacy.consortium.models import Consortium, Site
from pharmacy.db import Base
from pharmacy.inventory.models import Lot, Movement, Reservation, Stocktake
from pharmacy.prescriptions.models import (
    Dispense,
    Prescription,
    PrescriptionEvent,
    PrescriptionItem,
    Shortage,
    TransferRequest,
    WebhookDelivery,
    WebhookSubscription,
)

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "Consortium",
    "Dispense",
    "Drug",
    "FormularyEntry",
    "LocalCode",
    "Lot",
    "Movement",
    "Prescription",
    "PrescriptionEvent",
    "PrescriptionItem",
    "Reservation",
    "Shortage",
    "Site",
    "Stocktake",
    "TransferRequest",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
