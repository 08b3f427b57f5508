"""Tiny instances solved by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from optimizer import Arc, Demand, DrugPolicy, Lot, Offer, PlanningError, Problem, Tier, solve


def offer(oid: str, drug: str = "D", pack: int = 10, tiers: tuple[tuple[int, float], ...] = ((0, 10.0),),
          **kw) -> Offer:
    return Offer(oid, f"supplier-{oid}", drug, pack, tuple(Tier(m, p) for m, p in tiers), **kw)


def test_the_tier_is_set_by_the_pooled_volume():
    problem = Problem(30, demands=(Demand("A", "D", 60, 2), Demand("B", "D", 60, 2)),
                      offers=(offer("O", tiers=((0, 10.0), (10, 8.0))),))
    plan = solve(problem, workers=1)
    assert plan.status == "optimal"
    assert sum(p.packs for p in plan.purchases) == 12 and {p.price_per_pack for p in plan.purchases} == {8.0}
    assert plan.costs.purchase == pytest.approx(96.0)
    assert plan.baseline is not None and plan.baseline.purchase == pytest.approx(120.0)  # 6 packs each at 10
    assert plan.saving == pytest.approx(24.0)
    assert "pooled 12 packs" in plan.purchases[0].why


def test_a_site_alone_buys_up_to_a_better_tier_when_it_pays():
    # 9 packs at 10 cost 90; 10 packs at 8 cost 80. Alone in the baseline, the site still tops up.
    problem = Problem(30, demands=(Demand("A", "D", 90, 3),), offers=(offer("O", tiers=((0, 10.0), (10, 8.0))),))
    plan = solve(problem, workers=1)
    assert [(p.packs, p.price_per_pack) for p in plan.purchases] == [(10, 8.0)]
    assert plan.baseline is not None and plan.baseline.purchase == pytest.approx(80.0)


def test_a_minimum_order_forces_a_cheap_supplier_off():
    problem = Problem(30, demands=(Demand("A", "D", 50, 2),),
                      offers=(offer("CHEAP", tiers=((20, 5.0),)), offer("SMALL", tiers=((0, 7.0),))))
    plan = solve(problem, workers=1)
    assert [(p.offer, p.packs) for p in plan.purchases] == [("SMALL", 5)]
    assert plan.costs.total == pytest.approx(35.0)


def test_a_transfer_cheaper_than_a_purchase_is_made():
    problem = Problem(30, demands=(Demand("X", "D", 20, 1), Demand("Y", "D", 50, 2)),
                      offers=(offer("O"),), lots=(Lot("L1", "X", "D", 100, 400, 1.0),),
                      arcs=(Arc("X", "Y", 0.1),))
    plan = solve(problem, workers=1)
    assert [(t.lot, t.from_site, t.to_site, round(t.units)) for t in plan.transfers] == [("L1", "X", "Y", 50)]
    assert plan.purchases == () and plan.costs.total == pytest.approx(5.0)


def test_near_expiry_stock_moves_to_the_site_that_can_use_it_in_time():
    # 100 units expire in 10 days. X uses 2 a day (20 in time), Y uses 8 a day (80 in time).
    problem = Problem(30, demands=(Demand("X", "D", 60, 2), Demand("Y", "D", 240, 8)),
                      offers=(offer("O", tiers=((0, 10.0),)),), lots=(Lot("NEAR", "X", "D", 100, 10, 1.5),),
                      arcs=(Arc("X", "Y", 0.1),))
    plan = solve(problem, workers=1)
    assert [(t.to_site, round(t.units)) for t in plan.transfers] == [("Y", 80)]
    assert "can use only 20" in plan.transfers[0].why
    assert plan.waste == ()
    assert plan.baseline is not None and plan.baseline.waste == pytest.approx(80 * 1.5)  # alone, X wastes 80


def test_absorption_limits_count_for_every_expiry():
    # Two lots expiring in 5 and 10 days at a site using 3 a day: at most 15 within 5 days, 30 within 10.
    problem = Problem(30, demands=(Demand("X", "D", 90, 3),), offers=(offer("O"),),
                      lots=(Lot("A", "X", "D", 20, 5, 1.0), Lot("B", "X", "D", 20, 10, 1.0)))
    plan = solve(problem, workers=1, baseline=False)
    wasted = {w.lot: w.units for w in plan.waste}
    assert sum(wasted.values()) == pytest.approx(10.0)  # 40 on hand, 30 usable in time


def test_a_budget_forces_the_cheapest_shortages():
    problem = Problem(30, demands=(Demand("A", "ESSENTIAL", 10, 1), Demand("A", "OTHER", 10, 1)),
                      offers=(offer("E", drug="ESSENTIAL", pack=1, tiers=((0, 2.0),)),
                              offer("F", drug="OTHER", pack=1, tiers=((0, 2.0),))),
                      policies=(DrugPolicy("ESSENTIAL", 100.0, essential=True), DrugPolicy("OTHER", 10.0)),
                      budget=20.0)
    plan = solve(problem, workers=1, baseline=False)
    assert plan.costs.spending <= 20.0 + 1e-6
    assert [(s.drug, s.units) for s in plan.shortages] == [("OTHER", pytest.approx(10.0))]


def test_capacity_and_lead_time_are_respected():
    # The fast supplier can deliver 3 packs only; the slow one arrives after 10 of 30 days,
    # so it can cover at most 20 days of a 2-a-day need.
    problem = Problem(30, demands=(Demand("A", "D", 60, 2),),
                      offers=(offer("FAST", tiers=((0, 15.0),), capacity_packs=3),
                              offer("SLOW", tiers=((0, 10.0),), lead_time_days=10)))
    plan = solve(problem, workers=1, baseline=False)
    bought = {p.offer: p.packs for p in plan.purchases}
    assert bought == {"SLOW": 4, "FAST": 2}


def test_each_lead_time_limits_the_slower_offers_together():
    # 2 a day for 30 days: what arrives after day 20 covers at most 20 units, after day 10 at most 40.
    problem = Problem(30, demands=(Demand("A", "D", 60, 2),),
                      offers=(offer("FAST", tiers=((0, 15.0),)), offer("MID", tiers=((0, 12.0),), lead_time_days=10),
                              offer("SLOW", tiers=((0, 10.0),), lead_time_days=20)))
    plan = solve(problem, workers=1, baseline=False)
    assert {p.offer: p.packs for p in plan.purchases} == {"SLOW": 2, "MID": 2, "FAST": 2}
    assert plan.costs.total == pytest.approx(74.0) and plan.shortages == ()


def test_cbc_finds_the_same_optimum():
    problem = Problem(30, demands=(Demand("A", "D", 60, 2), Demand("B", "D", 60, 2)),
                      offers=(offer("O", tiers=((0, 10.0), (10, 8.0))), offer("P", tiers=((5, 9.0),), order_cost=3)))
    highs = solve(problem, solver="highs", workers=1, baseline=False)
    cbc = solve(problem, solver="cbc", workers=1, baseline=False)
    assert cbc.status == "optimal" and cbc.objective == pytest.approx(highs.objective, rel=1e-6)


def test_an_unknown_solver_is_an_error():
    with pytest.raises(PlanningError, match="unknown solver"):
        solve(Problem(30, demands=(), offers=()), solver="gurobi")


def test_a_shortage_says_why_in_the_plans_own_figures():
    # 1 a day for 30 days. Nothing arrives before day 10 (10 units short), and a fourth pack of 6 would meet only
    # the last 2 units, for 6 against 2 a unit short (a pack of 100 costs 40).
    problem = Problem(30, demands=(Demand("A", "D", 30, 1),),
                      offers=(offer("SLOW", pack=6, tiers=((0, 6.0),), lead_time_days=10),
                              offer("BIG", pack=100, tiers=((0, 40.0),), lead_time_days=10)),
                      policies=(DrugPolicy("D", 2.0),))
    plan = solve(problem, workers=1, baseline=False)
    assert [(p.offer, p.packs) for p in plan.purchases] == [("SLOW", 3)]
    [short] = plan.shortages
    assert short.units == pytest.approx(12.0)
    assert short.why == ("10 units needed in the first 10 days, before the fastest offer delivers; one more pack "
                         "of SLOW would meet 2 units (lead time 10 days) for 6.00 delivered; the 2 units short cost "
                         "2.00 each")


@pytest.mark.parametrize(("offers", "budget", "why"), [
    ((offer("ELSEWHERE", delivery_cost_per_pack={"B": 1.0}),), None, "no offer delivers to A"),
    ((offer("CAPPED", pack=10, tiers=((0, 1.0),), capacity_packs=1),), None,
     "every offer that delivers here is at its capacity"),
    ((offer("O", pack=10, tiers=((0, 1.0),)),), 2.0, "units left short within the budget"),
])
def test_a_shortage_names_what_stops_the_plan_buying_more(offers, budget, why):
    problem = Problem(30, demands=(Demand("A", "D", 30, 1), Demand("B", "D", 30, 1)), offers=offers,
                      policies=(DrugPolicy("D", 5.0),), budget=budget)
    for priced in (False, True):  # a budget in one model, or priced drug by drug
        plan = solve(problem, workers=1, baseline=False, monolithic_budget_drugs=0 if priced else 25)
        assert any(why in s.why for s in plan.shortages)


def test_waste_says_who_could_use_the_lot_in_time_and_who_did():
    # 100 units expire in 10 days. X uses 2 a day (20 in time), Y 3 a day (30). Z has none of its own demand.
    near = Lot("NEAR", "X", "D", 100, 10, 1.0)
    demands = (Demand("X", "D", 60, 2), Demand("Y", "D", 90, 3))
    problem = Problem(30, demands=demands, offers=(offer("O", tiers=((0, 10.0),)),),
                      lots=(near, Lot("IDLE", "Z", "D", 7, 10, 1.0)), arcs=(Arc("X", "Y", 0.1),))
    plan = solve(problem, workers=1, baseline=False)
    why = {w.lot: w.why for w in plan.waste}
    assert why["NEAR"] == ("expires in 10 days; X can use 20 of its 100 before then; 30 move to Y; no plan could "
                           "waste less of this drug's stock")
    assert why["IDLE"] == "expires in 10 days; Z has no demand for it; it may move to no site that can use it in time"
    # With 30 of its own expiring as soon, Y takes none of X's lot: its use in that time is met already, and no
    # plan could use more of the two lots in time (50 of 130): their waste is no decision's.
    problem = replace(problem, lots=(near, Lot("MINE", "Y", "D", 30, 10, 1.0)))
    plan = solve(problem, workers=1, baseline=False)
    assert next(w.why for w in plan.waste if w.lot == "NEAR") == (
        "expires in 10 days; X can use 20 of its 100 before then; no plan could waste less of this drug's stock")
    assert plan.costs.waste == 0 and plan.costs.unavoidable_waste == pytest.approx(80.0)
    # When moving costs more than the waste it saves, the waste is the plan's decision, and said so.
    problem = replace(problem, lots=(near,), arcs=(Arc("X", "Y", 5.0),))
    plan = solve(problem, workers=1, baseline=False)
    assert next(w.why for w in plan.waste if w.lot == "NEAR") == (
        "expires in 10 days; X can use 20 of its 100 before then; the sites it may move to could use more of it in "
        "time, and meet that need otherwise (their own stock, other lots or whole packs)")
    assert plan.costs.waste == pytest.approx(30.0) and plan.costs.unavoidable_waste == pytest.approx(50.0)
