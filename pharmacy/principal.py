"""Who is acting: the principal every service receives, and the roles it may hold."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    PRESCRIBER = "prescriber"
    PHARMACIST = "pharmacist"
    PROCUREMENT = "procurement"
    SYSTEM = "system"  # command-line and scheduled jobs; never reachable over HTTP


# Roles that act for one site; the others act for the whole consortium.
SITE_BOUND_ROLES = frozenset({Role.PRESCRIBER, Role.PHARMACIST})


@dataclass(frozen=True)
class Principal:
    """An authenticated actor: an API key or a user account, bound to one consortium.

    ``consortium_id`` is ``None`` only for the system principal of command-line tools and jobs,
    which work across consortia.
    """

    kind: str  # "api_key" | "user" | "system"
    account_id: int | None
    name: str
    role: Role
    consortium_id: int | None
    site_id: int | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def site_bound(self) -> bool:
        return self.role in SITE_BOUND_ROLES

    def may_act_for_site(self, site_id: int | None) -> bool:
        return not self.site_bound or (site_id is not None and site_id == self.site_id)


SYSTEM = Principal(kind="system", account_id=None, name="system", role=Role.SYSTEM, consortium_id=None)


def system_for(consortium_id: int) -> Principal:
    """The system principal confined to one consortium (used by jobs that run per consortium)."""
    return Principal(kind="system", account_id=None, name="system", role=Role.SYSTEM,
                     consortium_id=consortium_id)
