"""Drug-by-drug solving in worker processes, and a budget priced over the per-drug models."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from optimizer import Costs, Problem, planner, scenarios, solve
from optimizer.budget import cheapest_within
from optimizer.planner import (
    GAP_NOT_PROVED,
    LOOSEST_GAP,
    NODE_LIMIT,
    Outcome,
    _between,
    _gap_shares,
    _rough_cost,
    solve_model,
)
from optimizer.workers import Workers
from tests.unit.optimizer.checks import assert_feasible


def unshared(problem: Problem) -> Problem:
    """The problem without charges its drugs share (no order costs, no trip costs): drugs independent but for a
    budget, to test how each drug's own gap adds up to the plan's."""
    return replace(problem, offers=tuple(replace(o, order_cost=0.0) for o in problem.offers),
                   arcs=tuple(replace(a, fixed_cost=0.0) for a in problem.arcs))


def _started(folder: Path) -> None:  # a job that marks its start and its end (module level: picklable)
    mark = str(time.monotonic_ns())
    (folder / f"started-{mark}").touch()
    time.sleep(0.3)
    (folder / f"finished-{mark}").touch()


class Stop(Exception):
    pass


def test_a_progress_that_raises_drops_the_tasks_not_started_and_returns_at_once(tmp_path):
    # A cancelled run stops through its progress callback: the models not yet handed to a worker are never solved,
    # and the plan does not wait for those in hand.
    def stop(done: int, total: int) -> None:
        raise Stop

    started = time.monotonic()
    with pytest.raises(Stop), Workers.of(None, 2) as pool:
        pool.map(_started, [tmp_path] * 40, progress=stop)
    returned = time.monotonic() - started
    time.sleep(3.0)  # let the tasks in hand end
    marks = [path.name.split("-")[0] for path in tmp_path.iterdir()]
    # 40 jobs of equal weight over 2 workers go out in 14 tasks of 3 (the last of 1), four in hand at a time: the
    # first task that finished and the four in hand when it did (one handed out in its place) at most.
    assert 3 <= marks.count("started") <= 5 * 3 and marks.count("finished") == marks.count("started")
    assert returned < 40 * 0.3 / 2


def test_a_progress_callback_that_raises_stops_the_plan():
    problem = scenarios.consortium(hospitals=1, grassroots=5, drugs=8, seed=4, district_size=3)
    told: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        told.append((done, total))
        raise Stop

    with pytest.raises(Stop):
        solve(problem, workers=2, baseline=False, progress=progress, monolithic_budget_drugs=0)
    assert told == [(1, len(problem.drugs))]


def test_worker_processes_give_the_same_plan_as_one_process():
    problem = scenarios.consortium(hospitals=1, grassroots=5, drugs=6, seed=4, district_size=3)
    alone = solve(problem, workers=1, baseline=False, gap=1e-9, monolithic_budget_drugs=0)
    pooled = solve(problem, workers=2, baseline=False, gap=1e-9, monolithic_budget_drugs=0)
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


def test_a_priced_budget_mixes_the_rounds_drug_by_drug_and_stops_once_its_gap_is_proved():
    problem = unshared(scenarios.consortium(hospitals=1, grassroots=6, drugs=30, seed=5, budget_share=0.8))
    seen: list[tuple[int, int]] = []
    plan = solve(problem, workers=1, baseline=False, gap=0.01, monolithic_budget_drugs=1,
                 progress=lambda done, total: seen.append((done, total)))
    assert problem.budget is not None and plan.costs.spending <= problem.budget + 1e-6
    assert_feasible(problem, plan)
    assert plan.gap is not None and plan.gap <= 0.01
    # Pinning the price down to 1e-4 took 18 rounds here, for a plan 6% dearer that proved only 6.4%.
    rounds = re.search(r"chosen among (\d+) rounds", " ".join(plan.notes))
    assert rounds is not None and int(rounds.group(1)) < 10
    # Each round reports on every drug, those that keep their plan counted as done.
    assert seen.count((30, 30)) == int(rounds.group(1)) and all(done <= total == 30 for done, total in seen)


def plan_costing(spending: float, total: float) -> Outcome:
    return Outcome((), (), (), (), (), Costs(purchase=spending, shortage=total - spending), "optimal", total, total,
                   0.0, 0.0, 0, 0)


def costs(outcome: Outcome) -> Costs:
    return outcome.costs


def test_within_the_budget_each_drug_takes_the_plan_that_saves_most_per_yuan_spent():
    cheap, dear = plan_costing(0.0, 100.0), plan_costing(10.0, 50.0)  # 5 saved per yuan
    thrifty, lavish = plan_costing(0.0, 100.0), plan_costing(10.0, 80.0)  # 2 saved per yuan
    assert cheapest_within([[cheap, dear], [thrifty, lavish]], 10.0, costs) == [dear, thrifty]
    assert cheapest_within([[cheap, dear], [thrifty, lavish]], 25.0, costs) == [dear, lavish]
    assert cheapest_within([[dear], [lavish]], 15.0, costs) is None  # even the least spending overruns
    worse = plan_costing(5.0, 120.0)  # spends more than ``cheap`` and costs more: never chosen
    assert cheapest_within([[worse, cheap, dear]], 5.0, costs) == [cheap]


def test_small_drugs_get_looser_tolerances_whose_allowances_fit_the_plans_gap():
    problem = scenarios.consortium(hospitals=1, grassroots=6, drugs=30, seed=5)
    parts = problem.split_by_drug()
    shares = _gap_shares(parts, 0.005)
    costs = [_rough_cost(part) for part in parts]
    smallest, largest = costs.index(min(costs)), costs.index(max(costs))
    assert shares[smallest] > shares[largest]
    assert max(shares) <= LOOSEST_GAP
    # Each allowance is its drug's share of the gap; together they make at most twice the plan's gap, and the
    # factor 2 is taken back by tightening after the solve.
    assert sum(s * c for s, c in zip(shares, costs, strict=True)) <= 2 * 0.005 * sum(costs) + 1e-9


@pytest.mark.parametrize("target", [0.002, 0.02])
def test_the_plan_as_a_whole_proves_the_gap_asked_for(target):
    problem = unshared(scenarios.consortium(hospitals=1, grassroots=6, drugs=30, seed=5))
    plan = solve(problem, workers=1, baseline=False, gap=target)
    exact = solve(problem, workers=1, baseline=False, gap=1e-9)
    assert plan.gap is not None and plan.gap <= target
    assert plan.best_bound is not None and plan.best_bound <= exact.objective + 1e-6
    assert exact.objective <= plan.objective <= exact.objective * (1 + target) + 1e-6
    assert_feasible(problem, plan)


def test_drugs_left_too_loose_are_solved_again_until_the_plan_proves_its_gap(monkeypatch):
    problem = unshared(scenarios.consortium(hospitals=1, grassroots=6, drugs=30, seed=5))
    monkeypatch.setattr(planner, "_gap_shares", lambda parts, gap: [LOOSEST_GAP] * len(parts))
    seen: list[tuple[int, int]] = []
    plan = solve(problem, workers=1, baseline=False, gap=0.001, progress=lambda done, total: seen.append((done, total)))
    assert plan.gap is not None and plan.gap <= 0.001  # a first pass at 5% each proves only about 2% here
    assert seen[-1][0] == seen[-1][1] > len(problem.drugs)  # progress counted the drugs solved again


def test_with_cbc_too_the_plan_proves_its_gap_though_drugs_get_looser_tolerances():
    problem = unshared(scenarios.consortium(hospitals=1, grassroots=3, drugs=8, seed=5, district_size=3))
    plan = solve(problem, solver="cbc", workers=1, baseline=False, gap=0.002)
    exact = solve(problem, workers=1, baseline=False, gap=1e-9)
    assert plan.gap is not None and 0 < plan.gap <= 0.002  # CBC reports no bound: its tolerance stands for it
    assert plan.best_bound is not None and plan.best_bound <= exact.objective + 1e-6
    assert exact.objective - 1e-6 <= plan.objective <= exact.objective * 1.002 + 1e-6


def test_a_drug_stopped_at_its_node_limit_keeps_its_plan_and_bound_and_restarts_from_a_plan_it_is_given():
    part = scenarios.consortium(hospitals=2, grassroots=12, drugs=30, seed=5).split_by_drug()[18]
    exact = solve_model(part, gap=1e-9)
    stopped = solve_model(part, gap=1e-9, node_limit=1)  # the root alone: HiGHS's status PuLP 3.3 cannot read
    assert stopped.status == NODE_LIMIT and stopped.purchases
    assert stopped.bound is not None and stopped.bound <= exact.objective + 1e-6
    assert stopped.objective > exact.objective * 1.05  # the root's own plan is far from the optimum here...
    restarted = solve_model(part, gap=1e-9, node_limit=1, start=exact.discrete)
    assert restarted.objective == pytest.approx(exact.objective, rel=1e-9)  # ...and a plan handed in is kept


def test_drugs_stopped_at_the_node_limit_are_solved_again_until_the_plan_proves_its_gap(monkeypatch):
    problem = unshared(scenarios.consortium(hospitals=1, grassroots=6, drugs=30, seed=5))
    exact = solve(problem, workers=1, baseline=False, gap=1e-9)
    monkeypatch.setattr(planner, "FIRST_PASS_NODES", 1)
    plan = solve(problem, workers=2, baseline=False, gap=1e-9)
    assert plan.status == "optimal" and plan.objective == pytest.approx(exact.objective, rel=1e-9)
    assert plan.gap is not None and plan.gap <= 1e-9


def test_a_plan_says_per_drug_what_it_proved_a_drug_stopped_at_its_node_limit_as_such(monkeypatch):
    problem = unshared(scenarios.consortium(hospitals=2, grassroots=12, drugs=30, seed=5))
    monkeypatch.setattr(planner, "FIRST_PASS_NODES", 1)
    plan = solve(problem, workers=1, baseline=False, gap=0.05)
    assert plan.status == "optimal" and plan.gap is not None and plan.gap <= 0.05  # proved as a whole...
    assert sorted(d.drug for d in plan.drugs) == sorted(problem.drugs)
    stopped = [d for d in plan.drugs if d.status == NODE_LIMIT]
    assert stopped  # ...while the drugs stopped at the root say so, not "optimal"
    for drug in plan.drugs:
        assert drug.bound is not None and drug.gap == pytest.approx(
            max(0.0, drug.objective - drug.bound) / drug.objective if drug.objective else 0.0)
    # The plan's gap is the drugs' slack over their costs; one drug may stand further from its bound than that.
    slack = sum(d.objective - (d.bound or 0.0) for d in plan.drugs)
    assert plan.gap == pytest.approx(slack / sum(d.objective for d in plan.drugs), abs=1e-9)


def test_a_drug_whose_plans_spend_the_same_at_two_prices_keeps_its_plan_and_a_valid_bound_between_them():
    parts = scenarios.consortium(hospitals=1, grassroots=6, drugs=8, seed=7, district_size=3).split_by_drug()
    checked = 0
    for part in parts:
        low, high = (solve_model(part, gap=1e-9, price_of_spending=price) for price in (0.5, 1.5))
        if abs(low.costs.spending - high.costs.spending) > 1e-6:
            continue
        exact = solve_model(part, gap=1e-9, price_of_spending=1.0)
        between = _between(low, high, 0.5, 1.0)
        assert between.objective == pytest.approx(exact.objective, rel=1e-9)
        assert between.bound is not None and between.bound <= exact.objective + 1e-6
        checked += 1
    assert checked >= 3


def test_drugs_sharing_deliveries_planned_one_by_one_report_a_true_gap_to_a_bound_of_the_whole_problem():
    # Order costs make every drug of a supplier share its delivery to a site. Planned in one model the plan is
    # exact; drug by drug, each delivery shared out among the drugs using it, the plan costs no less than that,
    # its bound is no more, and a gap it cannot prove within the target is said, not hidden.
    problem = scenarios.consortium(hospitals=1, grassroots=5, drugs=8, seed=4, district_size=3)
    exact = solve(problem, workers=1, baseline=False, gap=1e-9)
    assert exact.status == "optimal" and exact.gap is not None and exact.gap <= 1e-9
    shared = solve(problem, workers=1, baseline=False, gap=1e-4, monolithic_budget_drugs=0)
    assert_feasible(problem, shared)
    assert shared.costs.total >= exact.costs.total - 1e-6
    assert shared.best_bound is not None and shared.best_bound <= exact.costs.total + 1e-6
    assert shared.gap == pytest.approx((shared.costs.total - shared.best_bound) / shared.costs.total)
    assert any("shared out among the drugs" in note for note in shared.notes)
    if shared.gap > 1e-4:
        assert shared.status == GAP_NOT_PROVED and any("not the 0.010% asked for" in n for n in shared.notes)
    # Each delivery is paid once: the plan's order costs are its deliveries', not its drugs'.
    deliveries = {(p.supplier, p.site) for p in shared.purchases if next(
        o for o in problem.offers if o.id == p.offer).order_cost > 0}
    assert shared.costs.order <= 10.0 * len(deliveries) + 1e-6
