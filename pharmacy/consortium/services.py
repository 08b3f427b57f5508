"""Use cases for consortia and their member sites."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from pharmacy.consortium.domain import DEFAULT_LEVEL, SiteKind, SiteNode, check_tree
from pharmacy.consortium.models import Consortium, Site
from pharmacy.errors import Conflict, Message, NotFound
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.unit_of_work import UnitOfWork


def create_consortium(uow: UnitOfWork, code: str, name: str, tight: bool = True) -> Consortium:
    """Create a consortium (deployment-level: command line only)."""
    with uow:
        if uow.session.scalars(select(Consortium).where(Consortium.code == code)).first():
            raise Conflict(f"consortium {code} already exists", {"code": code})
        consortium = Consortium(code=code, name=name, tight=tight)
        uow.session.add(consortium)
        uow.commit()
        return consortium


def get_consortium(uow: UnitOfWork, consortium_id: int) -> Consortium:
    with uow:
        return uow.get(Consortium, consortium_id)


def find_consortium(uow: UnitOfWork, code: str) -> Consortium:
    with uow:
        consortium = uow.session.scalars(select(Consortium).where(Consortium.code == code)).first()
        if consortium is None:
            raise NotFound(f"consortium {code} not found")
        return consortium


def update_consortium(uow: UnitOfWork, consortium_id: int, changes: Mapping[str, Any]) -> Consortium:
    """Rename a consortium or change whether it is tight (the tree is checked again)."""
    with uow:
        consortium = uow.get(Consortium, consortium_id, for_update=True)
        for key, value in changes.items():
            setattr(consortium, key, value)
        _check_consortium_tree(uow, consortium, {})
        uow.commit()
        return consortium


def _node(site: Site) -> SiteNode:
    return SiteNode(site.id, site.code, SiteKind(site.kind), site.level, site.parent_id, site.consortium_id)


def _check_consortium_tree(uow: UnitOfWork, consortium: Consortium, replaced: dict[int | str, SiteNode]) -> None:
    sites = uow.session.scalars(
        select(Site).where(Site.consortium_id == consortium.id)
    ).all()
    nodes: dict[int | str, SiteNode] = {s.id: _node(s) for s in sites}
    nodes.update(replaced)
    check_tree(nodes, consortium.id, consortium.tight)


def create_site(uow: UnitOfWork, consortium_id: int, data: Mapping[str, Any]) -> Site:
    """Add a member site; its place in the tree is checked before anything is written."""
    with uow:
        consortium = uow.get(Consortium, consortium_id, for_update=True)
        _ensure_code_free(uow, consortium.id, data["code"])
        kind = SiteKind(data["kind"])
        values = dict(data)
        values.setdefault("level", DEFAULT_LEVEL[kind])
        values["parent_id"] = _resolve_parent(uow, values.get("parent_id"))
        candidate = SiteNode("new", values["code"], kind, values["level"], values["parent_id"], consortium.id)
        _check_consortium_tree(uow, consortium, {"new": candidate})
        site = Site(consortium_id=consortium.id, **{"created_at": uow.now(), **values})
        uow.session.add(site)
        uow.commit()
        return site


def _ensure_code_free(uow: UnitOfWork, consortium_id: int, code: str) -> None:
    if uow.session.scalars(select(Site.id).where(Site.consortium_id == consortium_id, Site.code == code)).first():
        raise Conflict(Message("site code %(code)s is already used in this consortium", code=code), {"code": code})


def _resolve_parent(uow: UnitOfWork, parent_id: int | None) -> int | None:
    if parent_id is None:
        return None
    # Loaded through the consortium filter: a parent in another consortium is simply not found.
    return uow.get(Site, parent_id, what="upper site").id


def update_site(uow: UnitOfWork, site_id: int, changes: Mapping[str, Any]) -> Site:
    """Change a site; moving it in the tree re-checks the whole tree (cycles, levels, consortium)."""
    with uow:
        site = uow.get(Site, site_id, for_update=True)
        consortium = uow.get(Consortium, site.consortium_id)
        values = dict(changes)
        if "parent_id" in values:
            values["parent_id"] = _resolve_parent(uow, values["parent_id"])
        if "code" in values and values["code"] != site.code:
            _ensure_code_free(uow, site.consortium_id, values["code"])
        if "kind" in values and "level" not in values:
            values["level"] = DEFAULT_LEVEL[SiteKind(values["kind"])]
        candidate = SiteNode(
            site.id, values.get("code", site.code), SiteKind(values.get("kind", site.kind)),
            values.get("level", site.level), values.get("parent_id", site.parent_id), site.consortium_id,
        )
        _check_consortium_tree(uow, consortium, {site.id: candidate})
        for key, value in values.items():
            setattr(site, key, value)
        uow.commit()
        return site


def get_site(uow: UnitOfWork, site_id: int) -> Site:
    with uow:
        return uow.get(Site, site_id)


def find_site(uow: UnitOfWork, code: str) -> Site:
    with uow:
        site = uow.session.scalars(select(Site).where(Site.code == code)).first()
        if site is None:
            raise NotFound(f"site {code} not found")
        return site


def list_sites(uow: UnitOfWork, page: PageRequest, *, kind: str | None = None, district: str | None = None,
               dispenses: bool | None = None, active: bool | None = None,
               parent_id: int | None = None) -> Page[Site]:
    """The principal's consortium's sites, filtered, in code order."""
    with uow:
        stmt = select(Site).order_by(Site.code)
        if kind is not None:
            stmt = stmt.where(Site.kind == kind)
        if district is not None:
            stmt = stmt.where(Site.district == district)
        if dispenses is not None:
            stmt = stmt.where(Site.dispenses.is_(dispenses))
        if active is not None:
            stmt = stmt.where(Site.active.is_(active))
        if parent_id is not None:
            stmt = stmt.where(Site.parent_id == parent_id)
        return fetch_page(uow.session, stmt, page)


def sites_by_id(uow: UnitOfWork) -> dict[int, Site]:
    """Every site of the caller's consortium by id: what pages name sites by (a consortium has tens of sites, a
    province thousands, all small rows)."""
    with uow:
        return {site.id: site for site in uow.session.scalars(select(Site).order_by(Site.code))}
