"""Generated instances: every plan is feasible and never costs more than the site-by-site baseline."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer import scenarios, solve
from tests.unit.optimizer.checks import assert_feasible


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), hospitals=st.integers(0, 2), grassroots=st.integers(1, 6),
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
@given(seed=st.integers(0, 10_000), share=st.floats(0.1, 0.9))
def test_a_budget_is_never_exceeded(seed, share):
    problem = scenarios.consortium(hospitals=1, grassroots=3, drugs=3, seed=seed, district_size=2,
                                   budget_share=share)
    plan = solve(problem, workers=1, baseline=False, gap=1e-7)
    assert problem.budget is not None and plan.costs.spending <= problem.budget + 1e-6
    assert_feasible(problem, plan)
