"""The engine against the rules: its plans cost what the reference formulation (``reference.py``, written from the
rules with none of the engine's groupings or bounds) finds optimal, on generated consortia and on the scenarios."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from optimizer import Arc, Demand, DrugPolicy, Lot, Offer, Problem, Tier, scenarios, solve
from tests.unit.optimizer.checks import assert_feasible
from tests.unit.optimizer.reference import reference_costs, reference_unavoidable


@st.composite
def consortia(draw: st.DrawFn) -> Problem:
    """Two to four sites, one or two drugs sharing suppliers, arcs with unit and trip costs, lots on hand, on order
    and expired, offers with tiers, minimum orders, capacities, lead times, delivery lists and order costs."""
    horizon = draw(st.sampled_from([10, 30]))
    sites = ["A", "B", "C", "D"][:draw(st.integers(2, 4))]
    drugs = ["D1", "D2"][:draw(st.integers(1, 2))]
    arcs = [Arc(a, b, draw(st.sampled_from([0.05, 0.1, 0.3, 2.0])), draw(st.sampled_from([0.0, 0.0, 0.0, 1.5])))
            for a in sites for b in sites if a != b and draw(st.booleans())]
    demands, lots, offers, policies = [], [], [], []
    for drug in drugs:
        for site in sites:
            if draw(st.integers(0, 9)) < 7:
                units = draw(st.integers(1, 40))
                share = draw(st.sampled_from([0.5, 0.87, 1.0, 1.0]))
                demands.append(Demand(site, drug, units, round(units * share / horizon, 3)))
        for n in range(draw(st.integers(0, 3))):
            lots.append(Lot(f"{drug}-L{n}", draw(st.sampled_from(sites)), drug, draw(st.integers(1, 40)),
                            draw(st.sampled_from([-1, 3, horizon // 2, horizon, horizon + 1, 200])),
                            draw(st.sampled_from([0.5, 1.0, 2.0])),
                            draw(st.sampled_from([0, 0, 0, 2, horizon // 2]))))
        for n in range(draw(st.integers(1, 2))):
            pack = draw(st.sampled_from([1, 5, 10, 25]))
            price = round(pack * draw(st.sampled_from([0.3, 0.8, 2.0])), 2)
            tiers = [Tier(draw(st.sampled_from([0, 0, 2])), price)]
            if draw(st.booleans()):
                tiers.append(Tier(tiers[0].min_packs + draw(st.integers(1, 4)), round(price * 0.9, 2)))
            delivery = {} if draw(st.booleans()) else {
                s: draw(st.sampled_from([0.0, 0.5, 2.0])) for s in sites if draw(st.integers(0, 3)) > 0}
            if delivery == {}:
                delivery = {}
            offers.append(Offer(f"{drug}-O{n}", draw(st.sampled_from(["S1", "S2"])), drug, pack, tuple(tiers),
                                draw(st.sampled_from([0, 0, 2, 5])), draw(st.sampled_from([None, None, 3])),
                                delivery, draw(st.sampled_from([0.0, 0.0, 4.0, 10.0]))))
        policies.append(DrugPolicy(drug, draw(st.sampled_from([1.0, 3.0, 8.0]))))
    return Problem(horizon, tuple(demands), tuple(offers), tuple(lots), tuple(arcs), tuple(policies))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=consortia())
def test_plans_cost_what_the_rules_make_optimal(problem: Problem) -> None:
    note(repr(problem))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.status == "optimal"
    assert_feasible(problem, plan)
    unavoidable = reference_unavoidable(problem)
    assert plan.costs.unavoidable_waste == pytest.approx(unavoidable, abs=1e-6)
    assert plan.costs.total + unavoidable == pytest.approx(reference_costs(problem), rel=1e-6, abs=1e-6)
    assert plan.baseline is not None
    alone = reference_costs(problem, pooled=False, moves=False)
    assert plan.baseline.total + unavoidable == pytest.approx(alone, rel=1e-6, abs=1e-6)
    assert plan.costs.total <= plan.baseline.total + 1e-6


# Found by generation: a pooled tier's packs are continuous in the engine, so its cost is read within the solver's
# feasibility tolerance of the whole packs' (75.299999 for 75.30), a millionth under the optimum.
SOLVER_NOISE = Problem(
    30, (Demand("A", "D1", 17, 0.283), Demand("C", "D1", 39, 1.3), Demand("A", "D2", 30, 1.0),
         Demand("B", "D2", 34, 1.133)),
    (Offer("D1-O0", "S2", "D1", 5, (Tier(2, 4.0), Tier(5, 3.6)), 2, None, {}, 0.0),
     Offer("D2-O0", "S1", "D2", 1, (Tier(0, 2.0), Tier(4, 1.8)), 0, None, {}, 0.0),
     Offer("D2-O1", "S1", "D2", 1, (Tier(0, 0.3),), 5, None, {}, 10.0)),
    (Lot("D1-L0", "B", "D1", 34, -1, 2.0, 0),),
    (Arc("A", "B", 2.0, 0.0), Arc("A", "C", 2.0, 1.5), Arc("C", "A", 0.05, 0.0)),
    (DrugPolicy("D1", 8.0), DrugPolicy("D2", 8.0)))


def _costs_close(a: float, b: float) -> float:
    """What two costs may differ by and be the same plan's: the solver's tolerance, relative to their size."""
    return 1e-6 * max(1.0, abs(a), abs(b))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=consortia())
@example(problem=SOLVER_NOISE)
def test_drug_by_drug_the_plan_is_feasible_and_its_gap_is_true(problem: Problem) -> None:
    # The shared charges priced drug by drug: the plan may cost more than the optimum, but never less, and the
    # bound it reports is a bound of the whole problem's.
    note(repr(problem))
    plan = solve(problem, workers=1, gap=1e-9, baseline=False, monolithic_budget_drugs=0)
    assert_feasible(problem, plan)
    optimum = reference_costs(problem) - reference_unavoidable(problem)
    close = _costs_close(plan.costs.total, optimum)
    assert plan.costs.total >= optimum - close
    assert plan.best_bound is not None and plan.best_bound <= optimum + close
    assert plan.gap is not None and plan.gap >= (plan.costs.total - optimum - close) / max(plan.costs.total, 1e-9)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scenario_plans_cost_what_the_rules_make_optimal(seed: int) -> None:
    problem = scenarios.consortium(hospitals=1, grassroots=3, drugs=2, seed=seed, district_size=2)
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.status == "optimal"
    assert_feasible(problem, plan)
    assert plan.costs.total + plan.costs.unavoidable_waste == pytest.approx(reference_costs(problem), rel=1e-6)
    assert plan.baseline is not None
    assert plan.baseline.total + plan.costs.unavoidable_waste == pytest.approx(
        reference_costs(problem, pooled=False, moves=False), rel=1e-6)
