"""The consortium's rules, each in a case small enough to solve by hand (the hand calculation is in the
docstring). None of these cases is a shortcut of the engine: each is a plan the rules allow and that costs less,
or a cost the rules charge and the engine must not leave out.

Units: a site using ``u`` a day over a horizon of 30 days needs its ``k``-th unit from day ``(k - 1) / u`` to day
``k / u``; stock expiring on day ``e`` meets at most the units used up by then (``floor(u * e)``) and stock expiring
after the horizon meets any unit; stock arriving on day ``d`` (a purchase after its lead time, a receipt on order or
in transit) meets only the units needed from day ``d`` on (all but ``ceil(u * d)``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from optimizer import Arc, Demand, DrugPolicy, Lot, Offer, Problem, Tier, solve


def offer(oid: str, drug: str = "D", pack: int = 10, tiers: tuple[tuple[int, float], ...] = ((0, 20.5),),
          supplier: str | None = None, **kw) -> Offer:
    return Offer(oid, supplier or f"supplier-{oid}", drug, pack, tuple(Tier(m, p) for m, p in tiers), **kw)


def both_ways(problem: Problem, **kw):  # type: ignore[no-untyped-def]
    """The plan in one model (few drugs), and drug by drug with the shared charges priced: the same plan."""
    one = solve(problem, workers=1, gap=1e-9, **kw)
    each = solve(problem, workers=1, gap=1e-9, monolithic_budget_drugs=0, **kw)
    assert one.status == "optimal"
    assert each.costs.total == pytest.approx(one.costs.total, abs=1e-6)
    assert each.best_bound is not None and each.best_bound <= one.costs.total + 1e-6
    return one


def test_two_lots_that_each_fit_at_home_but_not_together_go_to_the_neighbour_who_is_short():
    """X uses 5 a day and holds lot A (30, expiring day 6) and lot B (60, day 12): each alone fits X's use
    before it expires (30 <= 5 x 6, 60 <= 5 x 12), but by day 12 X uses only 60 of the 90. Y uses 2 a day, needs 20
    and no supplier delivers to it; it can use 12 by day 6 and 20 by day 12. So 20 of A and B move to Y (0.25 a unit:
    5.00), 10 expire whatever anyone does (X and Y use at most 80 of them in time: 20.00 of unavoidable waste), and X
    buys its other 90 units (9 packs at 20.50: 184.50). Decision costs 189.50.

    Judged lot by lot, neither lot is surplus at X: nothing moves, 30 expire and Y is 20 short (6.00 a unit): 364.50.
    """
    problem = Problem(30, demands=(Demand("X", "D", 150, 5.0), Demand("Y", "D", 20, 2.0)),
                      offers=(offer("O", delivery_cost_per_pack={"X": 0.0}),),
                      lots=(Lot("A", "X", "D", 30, 6, 2.0), Lot("B", "X", "D", 60, 12, 2.0)),
                      arcs=(Arc("X", "Y", 0.25),), policies=(DrugPolicy("D", 6.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(189.50)
    assert plan.costs.unavoidable_waste == pytest.approx(20.0)
    assert plan.shortages == ()
    assert sum(t.units for t in plan.transfers if t.to_site == "Y") == 20
    assert sum(w.units for w in plan.waste) == 10
    assert not any("no site that can use it in time" in w.why for w in plan.waste)


def test_a_lot_lasting_beyond_the_horizon_meets_the_whole_need_however_large():
    """X uses 10 a day and needs 345 (300 and 45 of safety stock). One lot of 400 expiring on day 400 meets all of
    it: nothing is bought. (Capped at 10 x 30 = 300 as one lot, it left 45 units to buy: 5 packs at 20.50, 102.50;
    the same stock as two lots of 200 cost nothing.)"""
    problem = Problem(30, demands=(Demand("X", "D", 345, 10.0),), offers=(offer("O"),),
                      lots=(Lot("L", "X", "D", 400, 400, 2.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.purchases == () and plan.costs.total == pytest.approx(0.0)


def test_every_expiry_up_to_and_including_the_horizon_limits_the_stock_used_by_then():
    """X uses 10 a day and needs 345. Lots of 200 (expiring day 20) and 300 (day 30), 2.00 a unit: by day 30 X uses
    at most 300 of them, so 200 expire (400.00, unavoidable: no other site, no arc) and the 45 units of safety stock
    are bought (5 packs at 20.50: 102.50). Total 502.50, of which 102.50 are the plan's decisions.

    Without a joint limit at day 30 the two lots met 345 and only 155 expired: 310.00."""
    problem = Problem(30, demands=(Demand("X", "D", 345, 10.0),), offers=(offer("O"),),
                      lots=(Lot("L20", "X", "D", 200, 20, 2.0), Lot("L30", "X", "D", 300, 30, 2.0)))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(102.50)
    assert plan.costs.unavoidable_waste == pytest.approx(400.0)
    assert plan.costs.total + plan.costs.unavoidable_waste == pytest.approx(502.50)
    assert [(p.offer, p.packs) for p in plan.purchases] == [("O", 5)]


def test_any_site_may_top_up_to_a_better_tier():
    """A needs 90 (9 packs of 10), B needs 30 and holds a lot of 30 lasting beyond the horizon. Tiers 10.00 a pack,
    8.00 from 10 packs; order cost 10; delivery 0.50 a pack to A, 0.20 to B. A buys 10 packs: 80 + 5.00 + 10 = 95.00,
    which is also what A pays alone (the baseline). If only the cheapest-delivery site (B) may top up, B must place
    an order of its own for one pack (80 + 4.50 + 0.20 + 20 = 104.70) or nobody tops up (90 + 4.50 + 10 = 104.50):
    a plan dearer than its own baseline."""
    problem = Problem(30, demands=(Demand("A", "D", 90, 3.0), Demand("B", "D", 30, 1.0)),
                      offers=(offer("O", tiers=((0, 10.0), (10, 8.0)), order_cost=10.0,
                                    delivery_cost_per_pack={"A": 0.5, "B": 0.2}),),
                      lots=(Lot("OWN", "B", "D", 30, 400, 1.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(95.0)
    assert [(p.site, p.packs, p.price_per_pack) for p in plan.purchases] == [("A", 10, 8.0)]
    assert plan.baseline is not None and plan.baseline.total == pytest.approx(95.0)
    assert plan.saving == pytest.approx(0.0)


def test_two_drugs_on_one_trip_pay_its_fixed_cost_once():
    """X holds 30 units of each of two drugs (lasting beyond the horizon) and needs neither; Y needs 30 of each. A pack
    of 30 costs 7.00 delivered to Y; moving 30 units costs 0.10 each (3.00) plus 5.00 for the trip. One drug alone
    would rather buy (7.00 < 8.00); together they share the trip: 6.00 + 5.00 = 11.00 against 14.00 for buying both.
    (Charged once per drug, the trip cost each 5.00 and both drugs were bought: 14.00.)"""
    drugs = ("D1", "D2")
    problem = Problem(30, demands=tuple(Demand("Y", d, 30, 1.0) for d in drugs),
                      offers=tuple(offer(f"O{d}", drug=d, pack=30, tiers=((0, 7.0),), delivery_cost_per_pack={"Y": 0.0})
                                   for d in drugs),
                      lots=tuple(Lot(f"L{d}", "X", d, 30, 400, 0.2) for d in drugs),
                      arcs=(Arc("X", "Y", 0.1, fixed_cost=5.0),))
    plan = both_ways(problem)
    assert plan.purchases == ()
    assert plan.costs.transfer == pytest.approx(11.0) and plan.costs.total == pytest.approx(11.0)


def test_an_order_cost_is_paid_once_per_supplier_delivery_to_a_site_whatever_drugs_it_carries():
    """One supplier delivers both drugs to A; its order cost is 10 on D1 and 4 on D2. One delivery carries both: A
    pays 10 once (the dearer of the two), on top of 1 pack of each at 20.50 (41.00): 51.00, and so does A alone.
    (Charged per drug, 14 were paid: 55.00.)"""
    problem = Problem(30, demands=(Demand("A", "D1", 10, 1.0), Demand("A", "D2", 10, 1.0)),
                      offers=(offer("O1", drug="D1", supplier="S", order_cost=10.0),
                              offer("O2", drug="D2", supplier="S", order_cost=4.0)))
    plan = both_ways(problem)
    assert plan.costs.order == pytest.approx(10.0) and plan.costs.total == pytest.approx(51.0)
    assert plan.baseline is not None and plan.baseline.order == pytest.approx(10.0)


def test_the_baseline_shares_a_suppliers_capacity_among_the_sites_buying_alone():
    """A and B each need 60 (6 packs of 10 at 20.50); the supplier can deliver 8 packs in all; a unit short costs 6.
    Pooled or alone, 8 packs are bought (164.00) and 40 units are short (240.00): 404.00 both ways, no saving. (Given
    the supplier's whole capacity each, the sites alone bought 12 packs, 246.00, which no supplier could deliver.)"""
    problem = Problem(30, demands=(Demand("A", "D", 60, 2.0), Demand("B", "D", 60, 2.0)),
                      offers=(offer("O", capacity_packs=8),), policies=(DrugPolicy("D", 6.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(404.0)
    assert plan.baseline is not None and plan.baseline.total == pytest.approx(404.0)
    assert plan.saving == pytest.approx(0.0)


def test_a_site_lends_stock_to_a_neighbour_who_runs_short_before_its_delivery():
    """X and Y each use 2 a day and need 60; X holds 60 (lasting beyond the horizon); packs of 10 at 10.00 arrive
    after 10 days; a unit short costs 5. Y's first 20 units are needed before any delivery: X lends them (0.10 a unit,
    2.00) and keeps 40 for its own first 20 days; the rest is bought, 2 packs for X and 4 for Y (60.00): 62.00.
    (Only surplus moving, X keeps all 60 and Y is 20 short: 100 + 40 = 140.00.)"""
    problem = Problem(30, demands=(Demand("X", "D", 60, 2.0), Demand("Y", "D", 60, 2.0)),
                      offers=(offer("O", tiers=((0, 10.0),), lead_time_days=10),),
                      lots=(Lot("OWN", "X", "D", 60, 400, 1.0),), arcs=(Arc("X", "Y", 0.1),),
                      policies=(DrugPolicy("D", 5.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(62.0)
    assert [(t.lot, t.to_site, t.units) for t in plan.transfers] == [("OWN", "Y", 20)]
    assert {p.site: p.packs for p in plan.purchases} == {"X": 2, "Y": 4}
    assert plan.shortages == ()


def test_units_of_a_pack_bought_for_one_site_move_on_to_a_neighbour():
    """Packs of 100 at 100.00. X needs 55 and buys one pack; Y needs 15: a pack of its own costs 100.00, 15 units
    short 75.00, and 15 of X's 45 spare units moved cost 1.50. Plan: 101.50. (Bought packs never moving, Y was
    left short: 175.00.)"""
    problem = Problem(30, demands=(Demand("X", "D", 55, 55 / 30), Demand("Y", "D", 15, 0.5)),
                      offers=(offer("O", pack=100, tiers=((0, 100.0),)),), arcs=(Arc("X", "Y", 0.1),),
                      policies=(DrugPolicy("D", 5.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(101.5)
    assert [(p.site, p.packs) for p in plan.purchases] == [("X", 1)]
    assert plan.transfers == ()  # no lot moves: units of the pack bought for X do
    [moved] = plan.purchase_moves
    assert (moved.offer, moved.lot, moved.from_site, moved.to_site, moved.units) == ("O", "", "X", "Y", 15)


def test_stock_moves_on_through_a_site_when_there_is_no_direct_arc():
    """X holds 50 units expiring on day 10 (2.00 each) and needs none; Y uses 3 a day and can use 30 by then; the
    consortium allows X to Z and Z to Y (0.10 a unit each), not X to Y. 30 go X-Z-Y (6.00) instead of 3 packs at 30.00
    (90.00); the other 20 expire whatever the plan (40.00 unavoidable). (One hop only: all 9 packs, 270.00, and all
    50 wasted.)"""
    problem = Problem(30, demands=(Demand("Y", "D", 90, 3.0),),
                      offers=(offer("O", tiers=((0, 30.0),)),), lots=(Lot("NEAR", "X", "D", 50, 10, 2.0),),
                      arcs=(Arc("X", "Z", 0.1), Arc("Z", "Y", 0.1)))
    plan = solve(problem, workers=1, gap=1e-9)
    assert sorted((t.lot, t.from_site, t.to_site, t.units) for t in plan.transfers) == [
        ("NEAR", "X", "Z", 30), ("NEAR", "Z", "Y", 30)]
    assert plan.costs.transfer == pytest.approx(6.0)
    assert plan.costs.unavoidable_waste == pytest.approx(40.0)
    assert plan.costs.total == pytest.approx(6.0 + 6 * 30.0)  # the rest of Y's 90: 6 packs


@pytest.mark.parametrize(("arrives", "lead", "bought", "short", "cost"), [
    (10, 5, 0, 0, 0.0),  # 100 on hand meet days 0-10, the 200 arriving on day 10 the rest: nothing to buy
    (15, 5, 5, 0, 50.0),  # the 50 units of days 10-15 are bought (arriving day 5); 50 of the receipt stay over
    (15, 12, 3, 20, 130.0),  # a delivery on day 12 meets only days 12-15 (30 units); days 10-12 are short
])
def test_stock_on_order_or_in_transit_is_used_from_its_day_and_never_bought_again(arrives, lead, bought, short,
                                                                                    cost):
    """X uses 10 a day and needs 300; it holds 100 (lasting beyond the horizon) and 200 more arrive on day
    ``arrives``. Packs of 10 at 10.00 arrive after ``lead`` days; a unit short costs 5. What is bought covers only the
    gap between the stock on hand and the receipt, from the day the purchase can arrive."""
    problem = Problem(30, demands=(Demand("X", "D", 300, 10.0),),
                      offers=(offer("O", tiers=((0, 10.0),), lead_time_days=lead),),
                      lots=(Lot("ON_HAND", "X", "D", 100, 400, 1.0),
                            Lot("ON_ORDER", "X", "D", 200, 400, 1.0, arrives_in_days=arrives)),
                      policies=(DrugPolicy("D", 5.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert sum(p.packs for p in plan.purchases) == bought
    assert sum(s.units for s in plan.shortages) == short
    assert plan.costs.total == pytest.approx(cost)


def test_a_receipt_may_move_on_once_it_has_arrived():
    """200 units arrive at X on day 5 (X needs none); Y uses 4 a day and needs 120, of which 100 from day 5 on. The
    receipt meets those 100 (0.10 a unit: 10.00); Y's first 20 units are bought (2 packs at 10.00): 30.00."""
    problem = Problem(30, demands=(Demand("Y", "D", 120, 4.0),),
                      offers=(offer("O", tiers=((0, 10.0),)),),
                      lots=(Lot("COMING", "X", "D", 200, 400, 1.0, arrives_in_days=5),), arcs=(Arc("X", "Y", 0.1),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.total == pytest.approx(30.0)
    assert [(t.lot, t.units) for t in plan.transfers] == [("COMING", 100)]
    assert sum(p.packs for p in plan.purchases) == 2


def test_waste_no_decision_could_avoid_is_reported_apart_and_the_saving_compares_decisions_only():
    """Unavoidable: EXPIRED (10 units, 1.00 each) and IDLE at Z, which has no demand and no arc (5 units expiring
    day 10, 1.00): 15.00. Avoidable: FAR at X (20 units expiring day 10, 0.50 each), which could move to Y at 2.00 a
    unit; Y rather buys (1.00 a unit) and FAR expires: 10.00 of waste the plan chose. Y needs 30: 30.00 bought.
    Decision costs 40.00, the same alone (the baseline): the saving is 0, not inflated or deflated by sunk stock."""
    problem = Problem(30, demands=(Demand("Y", "D", 30, 3.0),),
                      offers=(offer("O", pack=1, tiers=((0, 1.0),)),),
                      lots=(Lot("EXPIRED", "Y", "D", 10, -1, 1.0), Lot("IDLE", "Z", "D", 5, 10, 1.0),
                            Lot("FAR", "X", "D", 20, 10, 0.5)),
                      arcs=(Arc("X", "Y", 2.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert plan.costs.unavoidable_waste == pytest.approx(15.0)
    assert plan.costs.waste == pytest.approx(10.0)
    assert plan.costs.total == pytest.approx(40.0)
    assert plan.baseline is not None and plan.baseline.total == pytest.approx(40.0)
    assert plan.baseline.unavoidable_waste == pytest.approx(15.0)
    assert plan.saving == pytest.approx(0.0)


# The bounds the model keeps to be smaller, each tried where it would cost money if it were wrong.

def test_a_site_without_demand_buys_for_its_neighbours_where_delivery_is_cheapest():
    """H needs nothing but takes deliveries free; A and B need 15 each and pay 10.00 a pack delivered; packs of 10
    at 10.00; moving costs 0.01 a unit. H buys 3 packs (30.00) and sends 15 to each (0.30): 30.30, against 80.00
    with A and B buying 2 packs each, or 60.15 with A buying 3 and moving 15 on to B. H's 3 packs are all the
    demand it reaches (ceil(30 / 10)): the most packs a site is given room for."""
    problem = Problem(30, demands=(Demand("A", "D", 15, 0.5), Demand("B", "D", 15, 0.5)),
                      offers=(offer("O", tiers=((0, 10.0),), delivery_cost_per_pack={"A": 10.0, "B": 10.0, "H": 0.0}),),
                      arcs=(Arc("H", "A", 0.01), Arc("H", "B", 0.01)))
    plan = solve(problem, workers=1, gap=1e-9)
    assert [(p.site, p.packs) for p in plan.purchases] == [("H", 3)]
    assert plan.costs.total == pytest.approx(30.30)


def test_packs_bought_only_to_reach_a_tier_go_where_they_cost_least_to_deliver():
    """A needs 9 packs; 10.00 a pack, 5.00 from 10 packs; delivery 2.00 a pack to A, nothing to H, which needs none
    and can send nowhere. A tenth pack to A: 50 + 20 = 70.00; to H: 50 + 18 = 68.00 (nine at 10.00: 108.00)."""
    problem = Problem(30, demands=(Demand("A", "D", 90, 3.0),),
                      offers=(offer("O", tiers=((0, 10.0), (10, 5.0)), delivery_cost_per_pack={"A": 2.0, "H": 0.0}),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert {p.site: p.packs for p in plan.purchases} == {"A": 9, "H": 1}
    assert plan.costs.total == pytest.approx(68.0)


@pytest.mark.parametrize(("units", "route", "cost"), [
    (10, [("X", "Z"), ("Z", "Y")], 7.0),  # 10 units through Z: 2.00 and the trip X-Z 5.00, against 10.00 direct
    (3, [("X", "Y")], 3.0),  # 3 units direct, 3.00, against 0.60 and the trip
])
def test_stock_takes_the_cheapest_way_a_trips_fixed_cost_included(units, route, cost):
    """X holds ``units`` (lasting beyond the horizon) that Y needs, packs dear (100.00). X to Y costs 1.00 a unit;
    X to Z and Z to Y 0.10 each, and the trip X to Z 5.00. With a trip cost the cheapest way depends on the load."""
    problem = Problem(30, demands=(Demand("Y", "D", units, units / 30),),
                      offers=(offer("O", tiers=((0, 100.0),)),), lots=(Lot("L", "X", "D", units, 400, 1.0),),
                      arcs=(Arc("X", "Y", 1.0), Arc("X", "Z", 0.1, fixed_cost=5.0), Arc("Z", "Y", 0.1)))
    plan = solve(problem, workers=1, gap=1e-9)
    assert sorted((t.from_site, t.to_site) for t in plan.transfers) == route
    assert plan.costs.total == pytest.approx(cost)
    # Without the trip's cost, the way through Z is cheapest whatever the load (the only arcs kept).
    free = solve(replace(problem, arcs=(Arc("X", "Y", 1.0), Arc("X", "Z", 0.1), Arc("Z", "Y", 0.1))), workers=1)
    assert sorted((t.from_site, t.to_site) for t in free.transfers) == [("X", "Z"), ("Z", "Y")]
    assert free.costs.total == pytest.approx(0.2 * units)


def test_stock_moved_on_a_trip_paid_for_is_planned_in_whole_units():
    """A trip with a fixed cost carrying two classes of stock (a lot and units of a pack just bought): once the trip
    is paid its row must not split units. X holds 7 units (expiring day 11) and buys packs of 25 (delivered free to
    X only); Y and Z need 24 and 33 over 10 days, reached through X to Y (trip 1.50) and Y to Z."""
    problem = Problem(10, demands=(Demand("Y", "D", 24, 2.4), Demand("Z", "D", 33, 3.3)),
                      offers=(offer("O", pack=25, tiers=((0, 50.0),), delivery_cost_per_pack={"X": 0.0}),),
                      lots=(Lot("L", "X", "D", 7, 11, 0.5),),
                      arcs=(Arc("X", "Y", 0.05, fixed_cost=1.5), Arc("Y", "Z", 0.05)),
                      policies=(DrugPolicy("D", 3.0),))
    plan = solve(problem, workers=1, gap=1e-9)
    assert all(t.units == int(t.units) for t in (*plan.transfers, *plan.purchase_moves))
    assert sum(p.packs for p in plan.purchases) == 2 and plan.shortages == ()
    # 2 packs (100.00), 57 units to Y (2.85) of which 33 on to Z (1.65), the trip once (1.50)
    assert plan.costs.total == pytest.approx(100.0 + 2.85 + 1.65 + 1.5)
