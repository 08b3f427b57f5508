import pytest

from pharmacy.consortium.domain import SiteKind, SiteNode, check_tree, distance_km
from pharmacy.errors import InvalidSiteTree

K = SiteKind


def node(id_: int, kind: SiteKind, level: int, parent: int | None, consortium: int = 1) -> SiteNode:
    return SiteNode(id_, f"S{id_}", kind, level, parent, consortium)


def tree(*nodes: SiteNode) -> dict[int | str, SiteNode]:
    return {n.id: n for n in nodes}


def test_accepts_a_lead_with_hospitals_and_grassroots_below():
    check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.HOSPITAL, 2, 1),
                    node(3, K.COMMUNITY_HEALTH_CENTRE, 3, 2), node(4, K.VILLAGE_CLINIC, 4, 3)), 1, tight=True)


def test_refuses_a_second_lead_hospital():
    with pytest.raises(InvalidSiteTree, match="exactly one lead"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.LEAD_HOSPITAL, 1, None)), 1, tight=True)


def test_refuses_an_upper_site_for_the_lead():
    with pytest.raises(InvalidSiteTree, match="no upper site"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, 2), node(2, K.HOSPITAL, 2, None)), 1, tight=False)


def test_tight_consortium_requires_an_upper_site_but_loose_does_not():
    nodes = tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.COMMUNITY_HEALTH_CENTRE, 3, None))
    with pytest.raises(InvalidSiteTree, match="needs exactly one upper site"):
        check_tree(nodes, 1, tight=True)
    check_tree(nodes, 1, tight=False)


def test_refuses_a_lower_site_above_a_higher_one():
    with pytest.raises(InvalidSiteTree, match="must be at a higher level"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.VILLAGE_CLINIC, 4, 1),
                        node(3, K.HOSPITAL, 2, 2)), 1, tight=True)


def test_refuses_a_same_level_parent():
    with pytest.raises(InvalidSiteTree, match="higher level"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.HOSPITAL, 2, 1), node(3, K.HOSPITAL, 2, 2)),
                   1, tight=True)


def test_refuses_a_cycle_even_when_levels_were_tampered_with():
    # Two sites above each other: the level rule catches it first, the cycle check backs it up.
    with pytest.raises(InvalidSiteTree):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.HOSPITAL, 2, 3), node(3, K.HOSPITAL, 3, 2)),
                   1, tight=True)


def test_refuses_a_parent_in_another_consortium():
    with pytest.raises(InvalidSiteTree, match="another consortium"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.HOSPITAL, 2, 1, consortium=2)), 1, tight=True)


def test_refuses_a_parent_that_is_not_a_member():
    with pytest.raises(InvalidSiteTree, match="not a member"):
        check_tree(tree(node(1, K.LEAD_HOSPITAL, 1, None), node(2, K.HOSPITAL, 2, 99)), 1, tight=True)


def test_distance_between_two_hangzhou_sites_is_a_few_kilometres():
    d = distance_km((30.2590, 120.1300), (30.1640, 120.0830))
    assert d is not None and 11 < d < 12
    assert distance_km(None, (30.0, 120.0)) is None
