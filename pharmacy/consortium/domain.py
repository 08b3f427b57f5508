"""Rules of the consortium's membership tree, and distances between sites. Plain Python."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pharmacy.errors import InvalidSiteTree, Message


class SiteKind(StrEnum):
    LEAD_HOSPITAL = "lead_hospital"
    HOSPITAL = "hospital"
    COMMUNITY_HEALTH_CENTRE = "community_health_centre"
    TOWNSHIP_HEALTH_CENTRE = "township_health_centre"
    VILLAGE_CLINIC = "village_clinic"
    DISTRIBUTION_CENTRE = "distribution_centre"


# Level 1 is the top of the tree; grassroots sites sit lower (larger numbers).
DEFAULT_LEVEL: dict[SiteKind, int] = {
    SiteKind.LEAD_HOSPITAL: 1,
    SiteKind.HOSPITAL: 2,
    SiteKind.DISTRIBUTION_CENTRE: 2,
    SiteKind.COMMUNITY_HEALTH_CENTRE: 3,
    SiteKind.TOWNSHIP_HEALTH_CENTRE: 3,
    SiteKind.VILLAGE_CLINIC: 4,
}

GRASSROOTS_KINDS = frozenset(
    {SiteKind.COMMUNITY_HEALTH_CENTRE, SiteKind.TOWNSHIP_HEALTH_CENTRE, SiteKind.VILLAGE_CLINIC}
)


@dataclass(frozen=True)
class SiteNode:
    """What the tree rules need to know of a site."""

    id: int | str  # a new site has no id yet: any unique placeholder will do
    code: str
    kind: SiteKind
    level: int
    parent_id: int | str | None
    consortium_id: int


def check_tree(nodes: Mapping[int | str, SiteNode], consortium_id: int, tight: bool) -> None:
    """Raise :class:`InvalidSiteTree` unless ``nodes`` form one valid membership tree.

    Rules: exactly one lead hospital, at level 1 and with no upper site; every upper site exists, belongs
    to the same consortium and is strictly higher (smaller level) than its member; no cycles; in a tight
    consortium every other site has an upper site.
    """
    leads = [n for n in nodes.values() if n.kind is SiteKind.LEAD_HOSPITAL]
    if len(leads) > 1:
        raise InvalidSiteTree(
            Message("a consortium has exactly one lead hospital"),
            {"kind": f"lead hospitals: {', '.join(sorted(n.code for n in leads))}"},
        )
    for node in nodes.values():
        if node.consortium_id != consortium_id:
            raise InvalidSiteTree(Message("site %(site)s belongs to another consortium", site=node.code),
                                  {"parent_id": node.code})
        if node.kind is SiteKind.LEAD_HOSPITAL:
            if node.parent_id is not None:
                raise InvalidSiteTree(Message("the lead hospital has no upper site"), {"parent_id": node.code})
            if node.level != 1:
                raise InvalidSiteTree(Message("the lead hospital is at level 1"), {"level": node.code})
            continue
        if node.level <= 1:
            raise InvalidSiteTree(Message("only the lead hospital is at level 1 (site %(site)s)", site=node.code),
                                  {"level": node.code})
        if node.parent_id is None:
            if tight:
                raise InvalidSiteTree(
                    Message("in a tight consortium site %(site)s needs exactly one upper site", site=node.code),
                    {"parent_id": "required"},
                )
            continue
        parent = nodes.get(node.parent_id)
        if parent is None:
            raise InvalidSiteTree(
                Message("upper site of %(site)s is not a member of this consortium", site=node.code),
                {"parent_id": node.parent_id},
            )
        if parent.level >= node.level:
            raise InvalidSiteTree(
                Message("site %(site)s (level %(level)s) cannot sit under %(upper)s (level %(upper_level)s): an upper "
                        "site must be at a higher level", site=node.code, level=node.level, upper=parent.code,
                        upper_level=parent.level),
                {"parent_id": parent.code},
            )
    _check_acyclic(nodes)


def _check_acyclic(nodes: Mapping[int | str, SiteNode]) -> None:
    # Levels strictly decrease upwards, so a cycle cannot pass the level rule; this guard stays because
    # it is the invariant that matters, and costs one walk.
    for start in nodes.values():
        seen: set[int | str] = set()
        node: SiteNode | None = start
        while node is not None and node.parent_id is not None:
            if node.id in seen:
                raise InvalidSiteTree(Message("site %(site)s is its own upper site through a cycle", site=start.code),
                                      {"parent_id": start.code})
            seen.add(node.id)
            node = nodes.get(node.parent_id)


def distance_km(a: tuple[float, float] | None, b: tuple[float, float] | None) -> float | None:
    """Great-circle distance between two (latitude, longitude) points, or None if either is unknown."""
    if a is None or b is None:
        return None
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(h))
