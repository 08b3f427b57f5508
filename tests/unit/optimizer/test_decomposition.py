"""Drug-by-drug solving in worker processes, and a budget priced over the per-drug models."""

from __future__ import annotations

import pytest

from optimizer import scenarios, solve
from tests.unit.optimizer.checks import assert_feasible


def test_worker_processes_give_the_same_plan_as_one_process():
    problem = scenarios.consortium(hospitals=1, grassroots=5, drugs=6, seed=4, district_size=3)
    alone = solve(problem, workers=1, baseline=False, gap=1e-9)
    pooled = solve(problem, workers=2, baseline=False, gap=1e-9)
    assert pooled.objective == pytest.approx(alone.objective, rel=1e-9)


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_a_priced_budget_stays_within_it_and_proves_its_gap(share):
    problem = scenarios.consortium(hospitals=1, grassroots=3, drugs=5, seed=11, district_size=2,
                                   budget_share=share)
    exact = solve(problem, workers=1, baseline=False, gap=1e-9)  # 5 drugs: one model with the budget row
    priced = solve(problem, workers=1, baseline=False, gap=1e-9, monolithic_budget_drugs=1)
    assert problem.budget is not None and priced.costs.spending <= problem.budget + 1e-6
    assert_feasible(problem, priced)
    assert priced.best_bound is not None and priced.best_bound <= exact.objective + 1e-6  # a valid lower bound
    assert priced.objective >= exact.objective - 1e-6  # and never better than the exact optimum
    assert priced.gap is not None and priced.gap >= (priced.objective - exact.objective) / priced.objective - 1e-9
