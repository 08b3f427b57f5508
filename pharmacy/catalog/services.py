"""Use cases of the unified drug catalog."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, exists, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from pharmacy import audit
from pharmacy.catalog.domain import default_formulary_includes, may_dispense, pinyin_keys, search_key
from pharmacy.catalog.models import Drug, FormularyEntry, LocalCode
from pharmacy.catalog.schemas import DrugSchema
from pharmacy.consortium.domain import GRASSROOTS_KINDS, SiteKind
from pharmacy.consortium.models import Site
from pharmacy.csv_import import read_csv
from pharmacy.db import contains
from pharmacy.errors import Conflict, Message, NotFound, PreconditionFailed, ValidationFailed
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.unit_of_work import UnitOfWork

CSV_COLUMNS = [
    "code", "national_code", "atc_code", "generic_name", "brand_name", "manufacturer", "dosage_form",
    "strength_amount", "strength_unit", "dispensing_unit", "pack_size", "essential", "insurance_class",
    "controlled_class", "special_storage", "equivalence_group", "active",
]
REQUIRED_COLUMNS = {name for name, f in DrugSchema().fields.items() if f.required}


SEARCHED_FIELDS = ("code", "national_code", "generic_name", "brand_name")


def _with_search_keys(values: dict[str, Any]) -> dict[str, Any]:
    """A new drug's values with its pinyin and search key derived."""
    values["pinyin_initials"], values["pinyin_full"] = pinyin_keys(values["generic_name"])
    values["search_key"] = search_key(*(values.get(f) for f in SEARCHED_FIELDS))  # type: ignore[arg-type]
    return values


def _apply_changes(drug: Drug, changes: Mapping[str, Any]) -> bool:
    """Set what differs on ``drug`` (bumping its version); derived search keys follow. True if anything did."""
    changed = {k: v for k, v in changes.items() if _comparable(getattr(drug, k)) != _comparable(v)}
    if not changed:
        return False
    for key, value in changed.items():
        setattr(drug, key, value)
    if changed.keys() & set(SEARCHED_FIELDS):
        drug.pinyin_initials, drug.pinyin_full = pinyin_keys(drug.generic_name)
        drug.search_key = search_key(drug.code, drug.national_code, drug.generic_name, drug.brand_name)
    drug.version += 1
    return True


def create_drug(uow: UnitOfWork, data: Mapping[str, Any]) -> Drug:
    """Add a drug to the consortium catalog."""
    with uow:
        if uow.session.scalars(select(Drug.id).where(Drug.code == data["code"])).first():
            raise Conflict(Message("drug code %(code)s already exists", code=data["code"]), {"code": data["code"]})
        drug = Drug(consortium_id=uow.principal.consortium_id, **_with_search_keys(dict(data)))
        uow.session.add(drug)
        uow.commit()
        return drug


def get_drug(uow: UnitOfWork, drug_id: int) -> Drug:
    with uow:
        return uow.get(Drug, drug_id, what="drug")


def update_drug(uow: UnitOfWork, drug_id: int, changes: Mapping[str, Any], if_match: int) -> Drug:
    """Change a drug if the caller saw its current version (ETag); retiring is ``active = False``."""
    with uow:
        drug = uow.get(Drug, drug_id, for_update=True, what="drug")
        if drug.version != if_match:
            raise PreconditionFailed(Message(
                "drug %(drug)s was changed by someone else (now version %(version)s, you sent %(sent)s); reload it "
                "and apply your change again", drug=drug.code, version=drug.version, sent=if_match))
        _apply_changes(drug, changes)
        uow.commit()
        return drug


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def drug_matches(q: str) -> ColumnElement[bool]:
    """The drugs a search finds (by code, national code, generic or brand name, pinyin): one scan of one precomputed
    column. Every search of drugs, and of what names them (a prescription, a lot), uses it."""
    return Drug.search_key.like(contains(q.strip().lower()), escape="\\")


def search_drugs(uow: UnitOfWork, page: PageRequest, *, q: str | None = None, active: bool | None = None,
                 essential: bool | None = None, equivalence_group: str | None = None) -> Page[Drug]:
    """Find drugs by code, national code, generic or brand name, or pinyin; best matches first.

    Ranking: exact code, code prefix, pinyin-initials prefix, name prefix, full-pinyin prefix, then
    anything containing the query; shorter names first within a rank.
    """
    with uow:
        stmt: Select[Any] = select(Drug)
        if active is not None:
            stmt = stmt.where(Drug.active.is_(active))
        if essential is not None:
            stmt = stmt.where(Drug.essential.is_(essential))
        if equivalence_group is not None:
            stmt = stmt.where(Drug.equivalence_group == equivalence_group)
        if not q:
            return fetch_page(uow.session, stmt.order_by(Drug.code), page)
        term = q.strip().lower()
        prefix = _escape_like(term) + "%"
        code, national = func.lower(Drug.code), func.lower(func.coalesce(Drug.national_code, ""))
        name, brand = func.lower(Drug.generic_name), func.lower(func.coalesce(Drug.brand_name, ""))
        rank = case(
            (or_(code == term, national == term), literal(0)),
            (code.like(prefix, escape="\\"), literal(1)),
            (Drug.pinyin_initials.like(prefix, escape="\\"), literal(2)),
            (or_(name.like(prefix, escape="\\"), brand.like(prefix, escape="\\")), literal(3)),
            (Drug.pinyin_full.like(prefix, escape="\\"), literal(4)),
            else_=literal(5),
        )
        # One scan of one precomputed column finds the candidates; only they are ranked.
        stmt = stmt.where(drug_matches(term)).order_by(
            rank, func.length(Drug.generic_name), Drug.code)
        return fetch_page(uow.session, stmt, page)


def drugs_by_id(uow: UnitOfWork, ids: Iterable[int]) -> dict[int, Drug]:
    """The drugs named by ``ids`` (a page never needs the whole catalog)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with uow:
        return {d.id: d for d in uow.session.scalars(select(Drug).where(Drug.id.in_(wanted)))}


def find_drug_by_code(session: Session, code: str, site_id: int | None) -> Drug | None:
    """The drug a code means: a consortium code, a national code, or the site's local code, in that order."""
    return find_drugs_by_code(session, [code], site_id).get(code)


# The ways a code names a drug, in the order a code is read, each a statement built once (its codes bound as a list):
# the consortium's code, a national code (an active drug before a retired one, then the oldest), a site's local code.
_BY_CODE = select(Drug).where(Drug.code.in_(bindparam("codes", expanding=True)))
_BY_NATIONAL_CODE = (select(Drug).where(Drug.national_code.in_(bindparam("codes", expanding=True)))
                     .order_by(Drug.active.desc(), Drug.id))
_BY_LOCAL_CODE = (select(Drug, LocalCode.local_code).join(LocalCode, LocalCode.drug_id == Drug.id)
                  .where(LocalCode.site_id == bindparam("site_id"),
                         LocalCode.local_code.in_(bindparam("codes", expanding=True))))


def find_drugs_by_code(session: Session, codes: Iterable[str], site_id: int | None) -> dict[str, Drug]:
    """The drug each code means, by code (see :func:`find_drug_by_code`), a prescription's items together: one
    statement when each is a consortium code, as a prescription mostly says, and one more for each other way of
    naming a drug that is still needed, whatever the number of codes. A code that means no drug is not in the
    answer."""
    meant: dict[str, Drug] = {}
    wanted = sorted(set(codes))
    if wanted:
        meant.update((drug.code, drug) for drug in session.scalars(_BY_CODE, {"codes": wanted}))
    if missing := [code for code in wanted if code not in meant]:
        for drug in session.scalars(_BY_NATIONAL_CODE, {"codes": missing}):
            meant.setdefault(drug.national_code, drug)  # type: ignore[arg-type]  # the first is the one wanted
    if site_id is not None and (missing := [code for code in wanted if code not in meant]):
        meant.update((local, drug) for drug, local in session.execute(
            _BY_LOCAL_CODE, {"codes": missing, "site_id": site_id}))
    return meant


def resolve_code(uow: UnitOfWork, code: str, site_id: int | None = None) -> Drug:
    """The drug a code means (see :func:`find_drug_by_code`); the caller's site's local codes by default."""
    with uow:
        site_id = site_id if site_id is not None else uow.principal.site_id
        drug = find_drug_by_code(uow.session, code, site_id)
        if drug is None:
            raise NotFound(Message("no drug has code %(code)s in the consortium catalog, as a national code or as a "
                                   "local code of site %(site)s", code=code, site=site_id) if site_id is not None
                           else Message("no drug has code %(code)s in the consortium catalog, as a national code",
                                        code=code))
        return drug


def sites_that_may_dispense(session: Session, sites: list[Site], drugs: list[Drug]) -> list[Site]:
    """The sites that may dispense every one of ``drugs``: default lists plus the consortium's extensions."""
    # The consortium's extensions are asked for only where a default list leaves a drug out.
    wanting = [s for s in sites if not all(may_dispense(SiteKind(s.kind), d.active, d.essential, False) for d in drugs)]
    extended = {(site_id, drug_id) for site_id, drug_id in session.execute(
        select(FormularyEntry.site_id, FormularyEntry.drug_id).where(
            FormularyEntry.site_id.in_([s.id for s in wanting]), FormularyEntry.drug_id.in_([d.id for d in drugs])))
    } if wanting else set()
    return [site for site in sites
            if all(may_dispense(SiteKind(site.kind), d.active, d.essential, (site.id, d.id) in extended)
                   for d in drugs)]


def map_local_code(uow: UnitOfWork, site_id: int, local_code: str, drug_id: int) -> LocalCode:
    """Map a member system's local code to a catalog drug (one mapping per site and code)."""
    with uow:
        uow.get(Site, site_id, what="site")
        uow.get(Drug, drug_id, what="drug")
        existing = uow.session.scalars(select(LocalCode).where(
            LocalCode.site_id == site_id, LocalCode.local_code == local_code)).first()
        if existing is not None and existing.drug_id != drug_id:
            raise Conflict(Message("local code %(code)s of site %(site)s already maps to drug %(drug)s",
                                   code=local_code, site=site_id, drug=existing.drug_id), {"local_code": local_code})
        if existing is None:
            existing = LocalCode(consortium_id=uow.principal.consortium_id, site_id=site_id,
                                 local_code=local_code, drug_id=drug_id)
            uow.session.add(existing)
        uow.commit()
        return existing


def list_local_codes(uow: UnitOfWork, page: PageRequest, *, site_id: int | None = None,
                     drug_id: int | None = None) -> Page[LocalCode]:
    with uow:
        stmt = select(LocalCode).order_by(LocalCode.site_id, LocalCode.local_code)
        if site_id is not None:
            stmt = stmt.where(LocalCode.site_id == site_id)
        if drug_id is not None:
            stmt = stmt.where(LocalCode.drug_id == drug_id)
        return fetch_page(uow.session, stmt, page)


# Formularies -----------------------------------------------------------------------------------

def site_formulary(uow: UnitOfWork, site_id: int, page: PageRequest) -> Page[tuple[Drug, bool]]:
    """The active drugs a site may dispense, each with whether it is there by extension."""
    with uow:
        site = uow.get(Site, site_id, what="site")
        extended = exists().where(FormularyEntry.site_id == site.id, FormularyEntry.drug_id == Drug.id)
        stmt = select(Drug, extended.label("extended")).where(Drug.active.is_(True))
        if SiteKind(site.kind) in GRASSROOTS_KINDS:
            stmt = stmt.where(or_(Drug.essential.is_(True), extended))
        stmt = stmt.order_by(Drug.code)
        total = uow.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = uow.session.execute(stmt.limit(page.page_size).offset((page.page - 1) * page.page_size)).all()
        return Page([(drug, bool(ext)) for drug, ext in rows], total)


def site_may_dispense(uow: UnitOfWork, site_id: int, drug_id: int) -> bool:
    with uow:
        site = uow.get(Site, site_id, what="site")
        drug = uow.get(Drug, drug_id, what="drug")
        if not drug.active:
            return False
        if default_formulary_includes(SiteKind(site.kind), drug.essential):
            return True
        return uow.session.scalars(select(FormularyEntry.id).where(
            FormularyEntry.site_id == site_id, FormularyEntry.drug_id == drug_id)).first() is not None


def extend_formulary(uow: UnitOfWork, site_id: int, drug_id: int, note: str = "") -> FormularyEntry:
    """Let a site dispense a drug beyond its default list."""
    with uow:
        uow.get(Site, site_id, what="site")
        drug = uow.get(Drug, drug_id, what="drug")
        if not drug.active:
            raise ValidationFailed(Message("drug %(code)s is retired", code=drug.code), {"drug_id": drug_id})
        entry = uow.session.scalars(select(FormularyEntry).where(
            FormularyEntry.site_id == site_id, FormularyEntry.drug_id == drug_id)).first()
        if entry is None:
            entry = FormularyEntry(consortium_id=uow.principal.consortium_id, site_id=site_id, drug_id=drug_id,
                                   note=note)
            uow.session.add(entry)
        uow.commit()
        return entry


def remove_formulary_extension(uow: UnitOfWork, site_id: int, drug_id: int) -> None:
    with uow:
        entry = uow.session.scalars(select(FormularyEntry).where(
            FormularyEntry.site_id == site_id, FormularyEntry.drug_id == drug_id)).first()
        if entry is None:
            raise NotFound(Message("drug %(drug)s is not an extension of site %(site)s's formulary", drug=drug_id,
                                   site=site_id))
        uow.session.delete(entry)
        uow.commit()


# CSV import and export -------------------------------------------------------------------------

def _comparable(value: Any) -> Any:
    return Decimal(value).normalize() if isinstance(value, Decimal) else value


def import_drugs_csv(uow: UnitOfWork, text: str) -> dict[str, int]:
    """Import drugs from CSV: all rows or none.

    Every bad row is reported with its line, column and reason. A row whose code exists updates that
    drug only if something differs, so importing the same file again changes nothing.
    """
    rows = read_csv(text, CSV_COLUMNS, REQUIRED_COLUMNS, DrugSchema(), key=lambda v: v["code"], key_column="code")
    parsed = {values["code"]: (line, values) for line, values in rows}

    with uow:
        existing = {d.code: d for d in uow.session.scalars(select(Drug).where(Drug.code.in_(list(parsed))))}
        new_rows, updated = [], 0
        for code, (_, values) in parsed.items():
            drug = existing.get(code)
            if drug is None:
                new_rows.append({**_with_search_keys(values), "consortium_id": uow.principal.consortium_id})
            elif _apply_changes(drug, values):
                updated += 1
        uow.session.flush()
        for start in range(0, len(new_rows), 2000):
            uow.session.execute(insert(Drug), new_rows[start:start + 2000])
        result = {"created": len(new_rows), "updated": updated, "unchanged": len(parsed) - len(new_rows) - updated}
        if new_rows or updated:
            audit.record(uow.session, "import", "Drug", "csv",
                         f"catalog import: {result['created']} created, {result['updated']} updated")
        uow.commit()
        return result


def export_drugs_csv(uow: UnitOfWork) -> str:
    """The whole catalog as CSV, in the import's columns (so an export re-imports unchanged)."""
    with uow:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        columns = [getattr(Drug, c) for c in CSV_COLUMNS]
        for row in uow.session.execute(select(*columns).order_by(Drug.code)):
            writer.writerow(["" if v is None else (str(v).lower() if isinstance(v, bool) else
                                                   format(Decimal(v).normalize(), "f") if isinstance(v, Decimal)
                                                   else v) for v in row])
        return out.getvalue()

