"""The site-by-site baseline, planned without a solver, costs what the solver finds for each site alone."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optimizer.baseline
from optimizer import Costs, Demand, DrugPolicy, Lot, Offer, Problem, Tier, baseline_costs, planner, scenarios, solve
from optimizer.baseline import baseline_waste, site_alone, site_plans, unplanned_waste
from optimizer.planner import solve_model


def solver_alone(problem: Problem, price_of_spending: float = 0.0) -> float:
    """The site (or sites, each alone) as the model plans it: no pooling, no transfers, proved optimal (with
    spending priced at ``price_of_spending`` per yuan on top of its cost)."""
    return solve_model(problem, gap=1e-9, pooled=False, transfers=False, price_of_spending=price_of_spending).objective


def site_alone_at_random(seed: int) -> Problem:
    """One site with 1-4 offers and 0-4 lots, drawn evenly: minimum orders above the need, capacities below it,
    lead times, order costs, shortages cheaper than packs, lots already expired, expiring on the horizon or at a
    site without demand."""
    rng = random.Random(seed)
    units = rng.choice([1, 5, 13, 40, 120, 400])
    demand = Demand("A", "X", units, round(units / 30 * rng.uniform(0.5, 1.5), 3))
    offers = []
    for n in range(rng.randint(1, 4)):
        pack = rng.choice([1, 3, 7, 12, 50, 100])
        minimums = [rng.choice([0, 0, 1, 2, 5, 20])]
        for _ in range(rng.randint(0, 3)):
            minimums.append(minimums[-1] + rng.randint(1, 30))
        base = rng.uniform(0.1, 3.0) * pack
        offers.append(Offer(f"O{n}", f"S{n}", "X", pack,
                            tuple(Tier(m, round(base * (1 - 0.04 * k), 2)) for k, m in enumerate(minimums)),
                            lead_time_days=rng.choice([0, 0, 1, 3, 7, 12]),
                            capacity_packs=rng.choice([None, None, 1, 2, 5, 30]),
                            delivery_cost_per_pack=rng.choice([{}, {"A": 0.0}, {"A": 0.7}, {"A": 1.9}, {"B": 1.0}]),
                            order_cost=rng.choice([0.0, 0.0, 5.0, 40.0])))
    lots = tuple(Lot(f"L{n}", rng.choice(["A", "A", "B"]), "X", rng.randint(0, 200),
                     rng.choice([-2, 0, 1, 5, 12, 29, 30, 31, 400]), round(rng.uniform(0.0, 3.0), 2))
                 for n in range(rng.randint(0, 4)))
    return Problem(30, (demand,), tuple(offers), lots, (),
                   (DrugPolicy("X", rng.choice([0.0, 0.5, 2.0, 10.0, 100.0])),))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9))
def test_a_site_alone_costs_what_the_solver_finds(seed):
    problem = site_alone_at_random(seed)
    planned = site_alone(problem, problem.demands[0])
    assert planned is not None
    # Waste no plan could prevent is not the plan's: the solver leaves it out, the site alone counts it all.
    alone = (planned + unplanned_waste(problem)).total - baseline_waste(problem)
    assert alone == pytest.approx(solver_alone(problem), rel=1e-6, abs=1e-6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), price=st.sampled_from([0.05, 0.3, 1.0, 4.0]))
def test_a_sites_plans_hold_its_cheapest_at_any_price_of_spending(seed, price):
    problem = site_alone_at_random(seed)
    plans = site_plans(problem, problem.demands[0])
    assert plans is not None and plans[-1] == site_alone(problem, problem.demands[0])
    assert [p.spending for p in plans] == sorted(p.spending for p in plans)
    assert [p.total for p in plans] == sorted((p.total for p in plans), reverse=True)
    priced = min(p.total + price * p.spending for p in plans) + unplanned_waste(problem).total - baseline_waste(problem)
    assert priced == pytest.approx(solver_alone(problem, price), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(("seed", "grassroots"), [(1, 12), (2, 12), (3, 3)])
def test_the_baseline_of_a_consortium_is_every_site_alone_sharing_its_deliveries(seed, grassroots):
    # A site alone still pays a supplier's delivery once whatever drugs it carries, so its drugs are planned
    # together: in one model (few drugs and sites: exactly), or drug by drug with the deliveries shared out.
    problem = scenarios.consortium(hospitals=2, grassroots=grassroots, drugs=12, seed=seed, district_size=4)
    exact = solve_model(problem, gap=1e-9, pooled=False, transfers=False)
    planned = baseline_costs(problem, gap=1e-9).total
    assert exact.objective - 1e-6 <= planned <= exact.objective * 1.001
    if len(problem.demands) <= planner.MONOLITHIC_SHARED_DEMANDS:
        assert planned == pytest.approx(exact.objective, rel=1e-9)
    shared_out = baseline_costs(problem, gap=1e-9, monolithic_drugs=0).total
    assert exact.objective - 1e-6 <= shared_out <= exact.objective * 1.001
    # Drug by drug with every delivery charged to each drug, the sites alone would pay more.
    unshared = replace(problem, offers=tuple(replace(o, order_cost=0.0) for o in problem.offers))
    assert baseline_costs(unshared, gap=1e-9).order == 0
    assert exact.charges and exact.objective > solve_model(unshared, gap=1e-9, pooled=False,
                                                           transfers=False).objective


def test_a_site_uses_the_stock_whose_waste_costs_most_first():
    # 2 a day: of a lot expiring in 5 days it can use 10 (40 wasted at 1.0); the long-dated lot meets the other
    # 50, and nothing is bought.
    problem = Problem(30, (Demand("A", "X", 60, 2.0),), (Offer("O", "S", "X", 10, (Tier(0, 5.0),)),),
                      (Lot("SHORT", "A", "X", 50, 5, 1.0), Lot("LONG", "A", "X", 100, 400, 1.0)))
    assert site_alone(problem, problem.demands[0]) == Costs(waste=40.0)


def test_purchases_with_a_lead_time_meet_only_the_demand_after_it():
    # 1 a day for 30 days; packs arriving after 10 days meet the last 20 units, the first 10 are short.
    problem = Problem(30, (Demand("A", "X", 30, 1.0),),
                      (Offer("SLOW", "S", "X", 1, (Tier(0, 1.0),), lead_time_days=10),),
                      policies=(DrugPolicy("X", 5.0),))
    assert site_alone(problem, problem.demands[0]) == Costs(purchase=20.0, shortage=50.0)


def test_a_site_tops_up_to_a_better_tier_and_mixes_offers_when_one_is_capped():
    # It needs 9 packs: 10 at 8 (80) beat 9 at 10 (90). The capped offer takes 4 of 12, the other 8.
    tiers = (Tier(0, 10.0), Tier(10, 8.0))
    problem = Problem(30, (Demand("A", "X", 90, 3.0),), (Offer("O", "S", "X", 10, tiers),))
    assert site_alone(problem, problem.demands[0]) == Costs(purchase=80.0)
    problem = Problem(30, (Demand("A", "X", 120, 4.0),),
                      (Offer("CAPPED", "S", "X", 10, (Tier(0, 6.0),), capacity_packs=4),
                       Offer("DEAR", "T", "X", 10, (Tier(0, 9.0),))))
    assert site_alone(problem, problem.demands[0]) == Costs(purchase=4 * 6.0 + 8 * 9.0)


def test_a_site_whose_offers_have_too_many_combinations_is_left_to_the_solver(monkeypatch):
    problem = scenarios.consortium(hospitals=1, grassroots=6, drugs=6, seed=3, district_size=3)
    exact = baseline_costs(problem, gap=1e-9)
    monkeypatch.setattr(optimizer.baseline, "MAX_COMBINATIONS", 0)
    assert site_alone(problem.split_by_drug()[0], problem.split_by_drug()[0].demands[0]) is None
    assert baseline_costs(problem, gap=1e-9).total == pytest.approx(exact.total, rel=1e-6)


def test_within_a_budget_the_sites_alone_share_it_where_a_yuan_saves_most():
    # Packs of one unit at 1.0; delivery 0 to A and 1.0 to B; a unit short costs 3. A yuan at A saves 3, at B 1.5.
    offer = Offer("O", "S", "X", 1, (Tier(0, 1.0),), delivery_cost_per_pack={"A": 0.0, "B": 1.0})
    free = Problem(30, (Demand("A", "X", 10, 1.0), Demand("B", "X", 10, 1.0)), (offer,),
                   policies=(DrugPolicy("X", 3.0),))
    assert baseline_costs(free) == Costs(purchase=20.0, delivery=10.0)
    assert baseline_costs(replace(free, budget=10.0)) == Costs(purchase=10.0, shortage=30.0)
    # The rest goes to B as far as B's plans step: its first pack (a tier's end) for 2, not the next nine for 18.
    assert baseline_costs(replace(free, budget=14.0)) == Costs(purchase=11.0, delivery=1.0, shortage=27.0)
    assert baseline_costs(replace(free, budget=0.0)) == Costs(shortage=60.0)


@pytest.mark.parametrize("share", [0.3, 0.8])
def test_the_baseline_keeps_within_the_plans_budget(share):
    problem = scenarios.consortium(hospitals=1, grassroots=8, drugs=12, seed=3, district_size=4,
                                   budget_share=share)
    assert problem.budget is not None
    free = baseline_costs(replace(problem, budget=None))
    assert free.spending > problem.budget  # the budget binds
    within = baseline_costs(problem)
    assert within.spending <= problem.budget + 1e-6
    assert within.total > free.total
    assert baseline_costs(replace(problem, budget=free.spending)).total == pytest.approx(free.total, rel=1e-9)
    # The pooled plan within the same budget saves against it.
    assert solve(problem, workers=1, baseline=False, gap=1e-3, monolithic_budget_drugs=0).costs.total < within.total


class _Stop(Exception):
    pass


@pytest.mark.parametrize("workers", [1, 2])
def test_the_baseline_reports_each_drug_and_stops_when_its_progress_raises(workers):
    problem = scenarios.consortium(hospitals=1, grassroots=4, drugs=6, seed=2, district_size=2)
    told: list[tuple[int, int]] = []
    assert baseline_costs(problem, workers=workers, monolithic_drugs=0,
                          progress=lambda done, total: told.append((done, total))).total > 0
    # Each round of sharing out the deliveries reports on every drug, as its task of drugs finishes (in worker
    # processes small drugs go out together).
    drugs = len(problem.drugs)
    ends = [n for n, (done, _) in enumerate(told) if done == drugs]
    assert ends and ends[-1] == len(told) - 1 and all(total == drugs for _, total in told)
    for start, end in zip([-1, *ends], ends, strict=False):
        steps = [done for done, _ in told[start + 1:end + 1]]
        assert steps == sorted(set(steps)) and steps[0] >= 1
        assert workers == 2 or steps == list(range(1, drugs + 1))

    def stop_at_two(done: int, total: int) -> None:
        if done >= 2:
            raise _Stop

    with pytest.raises(_Stop):
        baseline_costs(problem, workers=workers, progress=stop_at_two, monolithic_drugs=0)
