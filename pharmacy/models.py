"""Every mapped table, imported in one place (for the app, the migrations and the tests)."""

from pharmacy.accounts.models import ApiKey, User
from pharmacy.audit import AuditEntry
from pharmacy.catalog.models import Drug, FormularyEntry, LocalCode
from pharmacy.consortium.models import Consortium, Site
from pharmacy.db import Base
from pharmacy.idempotency import IdempotentRequest
from pharmacy.inventory.models import Lot, Movement, Reservation, Stocktake, TraceCode, TraceCodeDispense
from pharmacy.prescriptions.models import (
    Dispense,
    Prescription,
    PrescriptionEvent,
    PrescriptionItem,
    PrescriptionReturn,
    Shortage,
    WebhookDelivery,
    WebhookSubscription,
)
from pharmacy.procurement.models import (
    Alert,
    Offer,
    OfferDeliveryCost,
    OfferTier,
    PlanLine,
    PlanRun,
    PurchaseOrder,
    PurchaseOrderLine,
    Supplier,
    TransferOrder,
    TransferOrderLine,
    TransferParcel,
)
from pharmacy.system.models import JobRun

__all__ = [
    "Alert",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Consortium",
    "Dispense",
    "Drug",
    "FormularyEntry",
    "IdempotentRequest",
    "JobRun",
    "LocalCode",
    "Lot",
    "Movement",
    "Offer",
    "OfferDeliveryCost",
    "OfferTier",
    "PlanLine",
    "PlanRun",
    "Prescription",
    "PrescriptionEvent",
    "PrescriptionItem",
    "PrescriptionReturn",
    "PurchaseOrder",
    "PurchaseOrderLine",
    "Reservation",
    "Shortage",
    "Site",
    "Stocktake",
    "Supplier",
    "TraceCode",
    "TraceCodeDispense",
    "TransferOrder",
    "TransferOrderLine",
    "TransferParcel",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
