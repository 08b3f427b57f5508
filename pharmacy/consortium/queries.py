"""What the pages read of the consortium: its sites by id and by code, and the membership tree as it is drawn."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from pharmacy.consortium.models import Site
from pharmacy.unit_of_work import UnitOfWork


def sites_by_id(uow: UnitOfWork) -> dict[int, Site]:
    """Every site of the consortium, by id (a consortium has tens of sites, a province a few thousand)."""
    with uow:
        return {s.id: s for s in uow.session.scalars(select(Site).order_by(Site.code))}


def site_tree(uow: UnitOfWork) -> list[tuple[int, Site]]:
    """The membership tree top down, each site with its depth: the lead hospital, then each site's members
    under it in code order; sites without an upper site (in a loose consortium) after the lead."""
    sites = sites_by_id(uow)
    members: dict[int | None, list[Site]] = defaultdict(list)
    for site in sites.values():
        members[site.parent_id if site.parent_id in sites else None].append(site)
    tree: list[tuple[int, Site]] = []

    def walk(site: Site, depth: int) -> None:
        tree.append((depth, site))
        for member in sorted(members.get(site.id, []), key=lambda s: s.code):
            walk(member, depth + 1)

    for top in sorted(members[None], key=lambda s: (s.level, s.code)):
        walk(top, 0)
    return tree
