"""Generated scenarios: every plan is feasible, in whole units, and its decisions never cost more than the
site-by-site baseline's; a budget is never exceeded."""

from __future__ import annotations

import pulp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import build_model, scenarios, solve
from optimizer.planner import _make_stock_whole, _stock_is_whole, make_solver
from tests.unit.optimizer.checks import assert_feasible


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hospitals=st.integers(0, 1), grassroots=st.integers(1, 5),
       drugs=st.integers(1, 3))
def test_plans_are_feasible_and_never_cost_more_than_the_baseline(seed, hospitals, grassroots, drugs):
    problem = scenarios.consortium(hospitals=hospitals, grassroots=grassroots, drugs=drugs, seed=seed,
                                   district_size=3)
    plan = solve(problem, workers=1, gap=1e-7)
    assert plan.status == "optimal"
    assert_feasible(problem, plan)
    assert plan.baseline is not None
    assert plan.costs.total <= plan.baseline.total * (1 + 1e-6) + 1e-6
    assert abs(plan.costs.total - plan.objective) <= 1e-6 * max(1.0, abs(plan.objective))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), share=st.floats(0.1, 0.9), priced=st.booleans())
def test_a_budget_is_never_exceeded(seed, share, priced):
    # In one model, or priced drug by drug (each delivery paid once however the drugs were priced).
    problem = scenarios.consortium(hospitals=1, grassroots=2, drugs=3, seed=seed, district_size=2,
                                   budget_share=share)
    plan = solve(problem, workers=1, baseline=False, gap=1e-4, monolithic_budget_drugs=0 if priced else 25)
    assert problem.budget is not None and plan.costs.spending <= problem.budget + 1e-6
    assert_feasible(problem, plan)


@pytest.mark.parametrize("solver", ["highs", "cbc"])
def test_with_the_purchases_fixed_the_stock_is_planned_in_whole_units_at_the_same_cost(solver):
    # The stock variables are continuous: whole units come from the limits being whole and the stock rows being a
    # network's (totally unimodular), so the linear program left once purchases, orders, tiers and trips are fixed
    # has whole basic solutions, and re-solving it (what the planner does if a solver ends off a basic point) costs
    # the same.
    problem = scenarios.consortium(hospitals=1, grassroots=8, drugs=6, seed=4, district_size=4)
    moved = 0.0
    for part in problem.split_by_drug():
        prob, models = build_model(part)
        prob.solve(make_solver(solver, 60, 1e-9))
        found = pulp.value(prob.objective)
        assert _make_stock_whole(prob, models, solver, 60, part.drugs[0]) == pytest.approx(found, rel=1e-7, abs=1e-7)
        assert _stock_is_whole(models)
        moved += sum(v.varValue for v in models[0].flow.values())
    assert moved > 0  # stock moved between sites, under limits that are whole parts of usage times days
