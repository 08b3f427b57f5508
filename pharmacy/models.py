"""Every mapped table, imported in one place (for the app, the migrations and the tests)."""

from pharmacy.accounts.models import ApiKey, User
from pharmacy.audit import AuditEntry
from pharmacy.consortium.models import Consortium, Site
from pharmacy.db import Base

__all__ = ["ApiKey", "AuditEntry", "Base", "Consortium", "Site", "User"]
