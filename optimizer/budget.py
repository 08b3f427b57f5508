"""Keeping within a budget: one plan for each part (a drug of the pooled plan, or a site of the baseline),
chosen among that part's candidate plans so that the parts together cost least while spending within it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from optimizer.lines import EPS
from optimizer.plan import Costs

Candidate = TypeVar("Candidate")


def cheapest_within(candidates: Sequence[Sequence[Candidate]], budget: float,
                    costs_of: Callable[[Candidate], Costs]) -> list[Candidate] | None:
    """One of each part's ``candidates``, costing least in all while spending within ``budget``; None if even
    the least spending overruns it.

    Greedily: each part starts from its plan that spends least, then the steps that save the most per yuan spent
    are taken while the budget allows, a step being a move along the part's lower convex hull of cost against
    spending. That is the optimum of the budget priced by one multiplier, and within one step of the best
    choice; a plan off the hull is never taken (some mix of its neighbours on the hull would beat it).
    """
    hulls = [lower_hull(options, costs_of) for options in candidates]
    chosen = [hull[0] for hull in hulls]
    spent = sum(costs_of(c).spending for c in chosen)
    if spent > budget + EPS:
        return None
    # Most saved per yuan first; steps saving the same (rounded, so that a part's steps along a straight stretch of
    # its hull stay in their order) in the order of the parts and of their hulls.
    steps = sorted((-round(saving_rate(costs_of(hull[k]), costs_of(hull[k + 1])), 9), n, k)
                   for n, hull in enumerate(hulls) for k in range(len(hull) - 1))
    reached = [0] * len(hulls)  # how far along its hull each part has gone
    for _, n, k in steps:
        if reached[n] != k:
            continue  # an earlier step of this part did not fit
        extra = costs_of(hulls[n][k + 1]).spending - costs_of(hulls[n][k]).spending
        if spent + extra <= budget + EPS:
            spent += extra
            reached[n] = k + 1
            chosen[n] = hulls[n][k + 1]
    return chosen


def lower_hull(options: Sequence[Candidate], costs_of: Callable[[Candidate], Costs]) -> list[Candidate]:
    """The ``options`` on the lower convex hull of cost against spending, from the one spending least (the
    cheapest of those) to the cheapest: the plans some price of spending makes best."""
    hull: list[Candidate] = []
    for option in sorted(options, key=lambda o: (costs_of(o).spending, costs_of(o).total)):
        costs = costs_of(option)
        if hull and costs.total >= costs_of(hull[-1]).total - EPS:
            continue  # spends more and saves nothing
        while len(hull) >= 2 and saving_rate(costs_of(hull[-2]), costs_of(hull[-1])) < \
                saving_rate(costs_of(hull[-1]), costs) - EPS:
            hull.pop()  # not on the hull: a later step saves more per yuan
        hull.append(option)
    return hull


def saving_rate(a: Costs, b: Costs) -> float:
    """Cost saved per yuan of extra spending, going from plan ``a`` to plan ``b`` (which spends more)."""
    return (a.total - b.total) / max(b.spending - a.spending, EPS)
