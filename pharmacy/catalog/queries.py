"""What the pages read of the catalog: drugs by id and by code, and the equivalence groups."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import select

from pharmacy.catalog.models import Drug, FormularyEntry, LocalCode
from pharmacy.unit_of_work import UnitOfWork


def drugs_by_id(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, Drug]:
    """The drugs a page names, by id (a page never needs the whole catalog)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with uow:
        return {d.id: d for d in uow.session.scalars(select(Drug).where(Drug.id.in_(wanted)))}


def drugs_by_code(uow: UnitOfWork, codes: Iterable[str]) -> dict[str, Drug]:
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    with uow:
        return {d.code: d for d in uow.session.scalars(select(Drug).where(Drug.code.in_(wanted)))}


def equivalence_groups(uow: UnitOfWork) -> list[tuple[str, list[Drug]]]:
    """Each equivalence group with its drugs (active first, by code), groups in name order."""
    with uow:
        groups: dict[str, list[Drug]] = defaultdict(list)
        for drug in uow.session.scalars(select(Drug).where(Drug.equivalence_group.is_not(None))
                                        .order_by(Drug.active.desc(), Drug.code)):
            groups[drug.equivalence_group or ""].append(drug)
        return sorted(groups.items())


def local_codes_of(uow: UnitOfWork, drug_id: int) -> list[LocalCode]:
    """The member systems' own codes for a drug, by site."""
    with uow:
        return list(uow.session.scalars(select(LocalCode).where(LocalCode.drug_id == drug_id)
                                        .order_by(LocalCode.site_id, LocalCode.local_code)))


def formulary_extensions(uow: UnitOfWork, *, site_id: int | None = None,
                         drug_id: int | None = None) -> list[FormularyEntry]:
    """The drugs the consortium lets sites dispense beyond their default lists, of a site or of a drug."""
    with uow:
        stmt = select(FormularyEntry).order_by(FormularyEntry.site_id, FormularyEntry.drug_id)
        if site_id is not None:
            stmt = stmt.where(FormularyEntry.site_id == site_id)
        if drug_id is not None:
            stmt = stmt.where(FormularyEntry.drug_id == drug_id)
        return list(uow.session.scalars(stmt))
