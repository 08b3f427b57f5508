"""Builders of test data, through the services (so tests see what production writes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from pharmacy.accounts.services import create_api_key
from pharmacy.consortium.services import create_consortium, create_site
from pharmacy.principal import SYSTEM, Role, system_for
from pharmacy.unit_of_work import UnitOfWork

SessionFactory = Callable[[], Session]


@dataclass
class Tenant:
    consortium_id: int
    sites: dict[str, int] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


@dataclass
class World:
    a: Tenant
    b: Tenant


def site_data(code: str, kind: str, parent: int | None = None, *, dispenses: bool = False,
              district: str = "D1", lat: float = 30.0, lon: float = 120.0) -> dict[str, Any]:
    return {"code": code, "name": f"Site {code}", "kind": kind, "parent_id": parent, "district": district,
            "latitude": lat, "longitude": lon, "dispenses": dispenses}


def build_tenant(factory: SessionFactory, code: str) -> Tenant:
    consortium = create_consortium(UnitOfWork(factory, SYSTEM), code, f"Consortium {code}")
    tenant = Tenant(consortium.id)
    uow = UnitOfWork(factory, system_for(consortium.id))

    def add(site_code: str, kind: str, parent: str | None, **kw: Any) -> None:
        parent_id = tenant.sites[parent] if parent else None
        tenant.sites[site_code] = create_site(uow, consortium.id, site_data(f"{code}-{site_code}", kind,
                                                                           parent_id, **kw)).id

    add("LEAD", "lead_hospital", None, dispenses=True, lat=30.25, lon=120.13)
    add("H2", "hospital", "LEAD", dispenses=True, lat=30.27, lon=120.11)
    add("C1", "community_health_centre", "LEAD", dispenses=True, lat=30.26, lon=120.14)
    add("C2", "community_health_centre", "H2", dispenses=True, district="D2", lat=30.29, lon=120.10)
    add("V1", "village_clinic", "C1", lat=30.20, lon=120.05)
    for role, site in (("admin", None), ("procurement", None), ("prescriber", "LEAD"), ("pharmacist", "C1"),
                       ("pharmacist_c2", "C2")):
        base_role = Role(role.split("_")[0])
        _, plain = create_api_key(uow, consortium.id, f"test {role}", base_role,
                                  tenant.sites[site] if site else None)
        tenant.keys[role] = plain
    return tenant


def build_world(factory: SessionFactory) -> World:
    return World(a=build_tenant(factory, "A"), b=build_tenant(factory, "B"))


DRUG_DEFAULTS: dict[str, Any] = {
    "generic_name": "阿莫西林胶囊", "dosage_form": "capsule", "strength_amount": "250", "strength_unit": "mg",
    "dispensing_unit": "capsule", "pack_size": 24, "essential": True,
}


def drug_data(code: str, **overrides: Any) -> dict[str, Any]:
    return {"code": code, **DRUG_DEFAULTS, **overrides}


def add_drug(client: Any, tenant: Tenant, code: str, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/drugs", json=drug_data(code, **overrides), headers=tenant.headers("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def receive(client: Any, tenant: Tenant, site: str, drug_id: int, lot: str, expiry: str, quantity: int,
            role: str = "pharmacist") -> Any:
    return client.post("/api/inventory/receipts", headers=tenant.headers(role), json={
        "site_id": tenant.sites[site], "drug_id": drug_id, "lot_number": lot, "expiry_date": expiry,
        "quantity": quantity})
