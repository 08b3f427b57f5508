"""The plan's objective equals the optimum of a second, independent formulation (scipy ``milp``)."""

from __future__ import annotations

import pytest

from optimizer import scenarios, solve
from tests.unit.optimizer.reference import reference_optimum


@pytest.mark.parametrize("seed", [1, 2, 3, 5, 8, 13])
def test_objective_matches_an_independent_formulation(seed):
    problem = scenarios.consortium(hospitals=1, grassroots=4, drugs=2, seed=seed, district_size=3)
    plan = solve(problem, workers=1, baseline=False, gap=1e-9)
    assert plan.status == "optimal"
    assert plan.objective == pytest.approx(reference_optimum(problem), rel=1e-6)
