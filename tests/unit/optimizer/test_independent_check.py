"""The plan's objective equals the optimum of a second, independent formulation (scipy ``milp``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from optimizer import scenarios, solve
from optimizer.planner import baseline_costs
from tests.unit.optimizer.reference import reference_optimum


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8, 13])
def test_objective_matches_an_independent_formulation(seed):
    problem = scenarios.consortium(hospitals=1, grassroots=4, drugs=2, seed=seed, district_size=3)
    plan = solve(problem, workers=1, baseline=False, gap=1e-9)
    assert plan.status == "optimal"
    assert plan.objective == pytest.approx(reference_optimum(problem), rel=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_baseline_is_each_site_planned_alone(seed):
    # A site alone, with no arcs, is a consortium of one: its own volume sets its tier.
    problem = scenarios.consortium(hospitals=1, grassroots=4, drugs=3, seed=seed, district_size=3)
    sites = sorted({d.site for d in problem.demands} | {lot.site for lot in problem.lots})
    alone = [replace(problem, demands=tuple(d for d in problem.demands if d.site == site),
                     lots=tuple(lot for lot in problem.lots if lot.site == site), arcs=()) for site in sites]
    assert baseline_costs(problem, gap=1e-9).total == pytest.approx(sum(map(reference_optimum, alone)), rel=1e-6)
