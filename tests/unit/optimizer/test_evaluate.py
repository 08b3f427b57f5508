"""Re-costing edited plans, the rules they must keep, and frozen inputs that reproduce a plan."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from optimizer import Decisions, PlanningError, check_decisions, evaluate, scenarios, solve
from optimizer.serialize import decisions_of, plan_from_dict, plan_to_dict, problem_from_dict, problem_to_dict


@pytest.fixture(scope="module")
def problem():  # type: ignore[no-untyped-def]
    return scenarios.consortium(hospitals=1, grassroots=6, drugs=6, seed=4)


@pytest.fixture(scope="module")
def plan(problem):  # type: ignore[no-untyped-def]
    return solve(problem, gap=1e-7, workers=1)


def test_an_unedited_plan_recosts_to_its_own_cost(problem, plan) -> None:  # type: ignore[no-untyped-def]
    again = evaluate(problem, decisions_of(plan))
    assert again.costs.total == pytest.approx(plan.costs.total, rel=1e-6)
    assert again.costs.purchase == pytest.approx(plan.costs.purchase, rel=1e-6)
    assert {(p.offer, p.site, p.packs) for p in again.purchases} == {(p.offer, p.site, p.packs) for p in plan.purchases}


def test_buying_one_pack_less_recosts_the_plan_and_shows_the_shortage(problem, plan) -> None:  # type: ignore[no-untyped-def]
    decisions = decisions_of(plan)
    # a line whose offer has no minimum order above what is left, so the edit stays within the rules
    line = next(p for p in plan.purchases if p.packs > 1 and sum(
        q.packs for q in plan.purchases if q.offer == p.offer) - 1 >= next(
        o for o in problem.offers if o.id == p.offer).minimum_order_packs)
    edited = Decisions({**decisions.purchases, (line.offer, line.site): line.packs - 1}, decisions.transfers,
                       decisions.moves)
    again = evaluate(problem, edited)
    assert again.costs.purchase < plan.costs.purchase
    assert again.costs.total >= plan.costs.total - 1e-6  # the plan was optimal: an edit cannot beat it
    assert sum(p.packs for p in again.purchases) == sum(p.packs for p in plan.purchases) - 1


def test_an_edit_below_the_minimum_order_or_to_an_unreachable_site_is_refused_with_where(problem) -> None:  # type: ignore[no-untyped-def]
    offer = next(o for o in problem.offers if o.minimum_order_packs > 1)
    site = next(d.site for d in problem.demands if d.drug == offer.drug
                and (not offer.delivery_cost_per_pack or d.site in offer.delivery_cost_per_pack))
    broken = check_decisions(problem, Decisions({(offer.id, site): 1}))
    assert [v.where for v in broken] == [f"offer {offer.id}"]
    assert "minimum order" in broken[0].message
    lot = problem.lots[0]
    far = next(d.site for d in problem.demands if d.drug == lot.drug and d.site != lot.site and not any(
        a.from_site == lot.site and a.to_site == d.site for a in problem.arcs))
    broken = check_decisions(problem, Decisions({}, {(lot.id, far): 1.0}))
    assert "does not allow transfers" in broken[0].message
    with pytest.raises(PlanningError) as refused:
        evaluate(problem, Decisions({(offer.id, site): 1}, {(lot.id, far): 1.0}))
    assert len(refused.value.violations) == 2


def test_moving_more_than_the_receiving_site_can_use_before_expiry_is_refused() -> None:
    from optimizer import Arc, Demand, Lot, Problem

    problem = Problem(30, (Demand("A", "d", 300, 10.0), Demand("B", "d", 300, 10.0)), (),
                      (Lot("l", "A", "d", 500, 5, 1.0),), (Arc("A", "B", 0.1),))
    broken = check_decisions(problem, Decisions({}, {("l", "B"): 80.0}))
    assert broken and "can use only 50 units" in broken[0].message
    assert evaluate(problem, Decisions({}, {("l", "B"): 50.0})).costs.transfer == pytest.approx(5.0)


def test_stock_moves_in_whole_units() -> None:
    from optimizer import Arc, Demand, Lot, Problem

    # B uses 7.5 units a day: in the 5 days before the lot expires, 37 whole units (not 37.5)
    problem = Problem(30, (Demand("A", "d", 30, 1.0), Demand("B", "d", 300, 7.5)), (),
                      (Lot("l", "A", "d", 500, 5, 1.0),), (Arc("A", "B", 0.1),))
    broken = check_decisions(problem, Decisions({}, {("l", "B"): 37.5}))
    assert [str(v) for v in broken] == ["transfer of lot l to B: 37.5 units: a transfer moves a whole, positive "
                                        "number of units"]
    assert "can use only 37 units" in check_decisions(problem, Decisions({}, {("l", "B"): 38.0}))[0].message
    plan = solve(problem, workers=1, baseline=False)
    assert [(t.to_site, t.units) for t in plan.transfers] == [("B", 37.0)]
    assert [w.units for w in plan.waste] == [500 - 5 - 37]  # A uses one a day until day 5


def test_frozen_inputs_reproduce_the_same_plan(problem, plan) -> None:  # type: ignore[no-untyped-def]
    frozen = json.loads(json.dumps(problem_to_dict(problem)))
    thawed = problem_from_dict(frozen)
    assert thawed == replace(problem)
    again = solve(thawed, gap=1e-7, workers=1)
    assert again.costs.total == pytest.approx(plan.costs.total, rel=1e-9)
    assert [(p.offer, p.site, p.packs) for p in again.purchases] == [(p.offer, p.site, p.packs) for p in plan.purchases]
    stored = plan_from_dict(json.loads(json.dumps(plan_to_dict(plan))))
    assert stored.costs == plan.costs and stored.purchases == plan.purchases
