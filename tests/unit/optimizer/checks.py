"""An independent check that a plan keeps the rules, from the plan's lines alone (no model)."""

from __future__ import annotations

import math
from collections import defaultdict

from optimizer import Plan, Problem

TOL = 1e-5


def _met(units: int, usage: float, horizon: int, pieces: list[tuple[float, float | None, float]]) -> float:
    """The most units of a site's demand that stock pieces ``(arrives, expires or None, units)`` can meet, each
    unit k needed from day (k - 1) / usage (the safety stock at the horizon's end) until day k / usage: the greedy
    that meets each unit in turn from the eligible piece expiring first (a maximum matching on these intervals)."""
    met = 0.0
    left = [[a, e, q] for a, e, q in pieces]
    for k in range(1, units + 1):
        start = horizon if usage <= 0 or k - 1 >= usage * horizon - 1e-9 else (k - 1) / usage
        eligible = [p for p in left if p[2] > TOL and p[0] <= start + 1e-9
                    and (p[1] is None or p[1] > horizon or (usage > 0 and k <= usage * p[1] + 1e-9))]
        if not eligible:
            continue
        piece = min(eligible, key=lambda p: math.inf if p[1] is None or p[1] > horizon else p[1])
        piece[2] -= 1
        met += 1
    return met


def assert_feasible(problem: Problem, plan: Plan) -> None:
    offers = {o.id: o for o in problem.offers}
    lots = {lot.id: lot for lot in problem.lots}
    demands = {(d.site, d.drug): d for d in problem.demands if d.units > 0}
    arcs = {(a.from_site, a.to_site) for a in problem.arcs}
    pooled: dict[str, int] = defaultdict(int)
    held: dict[tuple[str, str], float] = defaultdict(float)  # (lot or offer, site) -> units there at first
    for p in plan.purchases:
        offer = offers[p.offer]
        assert p.units == p.packs * offer.pack_size, "purchases come in whole packs"
        assert not offer.delivery_cost_per_pack or p.site in offer.delivery_cost_per_pack, "the offer delivers there"
        pooled[p.offer] += p.packs
        held[(p.offer, p.site)] += p.units
    for offer_id, packs in pooled.items():
        offer = offers[offer_id]
        assert packs >= offer.minimum_order_packs, f"{offer_id}: minimum order"
        assert offer.capacity_packs is None or packs <= offer.capacity_packs, f"{offer_id}: capacity"
        reached = max((t for t in offer.tiers if t.min_packs <= packs), key=lambda t: t.min_packs)
        for p in plan.purchases:
            if p.offer == offer_id:
                assert p.price_per_pack == reached.price_per_pack, f"{offer_id}: the pooled volume sets the tier"
    for lot in lots.values():
        held[(lot.id, lot.site)] += lot.quantity
    for line in (*plan.transfers, *plan.purchase_moves, *plan.stock_use, *plan.waste, *plan.shortages):
        assert line.units == int(line.units), f"{line}: stock is used, moved, wasted and left short in whole units"
    # Stock moves along allowed arcs, and never more than is at a site.
    net: dict[tuple[str, str], float] = defaultdict(float)
    for (stock, site), units in held.items():
        net[(stock, site)] += units
    assert all(t.offer is None for t in plan.transfers) and all(t.offer for t in plan.purchase_moves)
    for t in (*plan.transfers, *plan.purchase_moves):
        assert (t.from_site, t.to_site) in arcs, "stock moves only along allowed arcs"
        stock = t.offer or t.lot
        assert stock in lots or stock in offers
        net[(stock, t.from_site)] -= t.units
        net[(stock, t.to_site)] += t.units
    for key, units in net.items():
        assert units >= -TOL, f"{key}: more moved out of a site than was there"
    for u in plan.stock_use:
        assert u.site == lots[u.lot].site, "a stock-use line is stock used where it lies"
        assert u.units <= net[(u.lot, u.site)] + TOL
    wasted: dict[str, float] = defaultdict(float)
    for w in plan.waste:
        wasted[w.lot] += w.units
    for lot_id, lot in lots.items():
        assert wasted.get(lot_id, 0.0) <= lot.quantity + TOL, f"lot {lot_id} wastes no more than it holds"
        if lot.expires_in_days <= 0:
            assert abs(wasted.get(lot_id, 0.0) - lot.quantity) <= TOL, "expired stock is wasted"
    # What each site meets of its demand, it can meet with the stock there in time.
    short = {(s.site, s.drug): s.units for s in plan.shortages}
    for (site, drug), need in demands.items():
        pieces: list[tuple[float, float | None, float]] = []
        for (stock, where), units in net.items():
            if where != site or units <= TOL:
                continue
            if stock in lots and lots[stock].drug == drug:
                lot = lots[stock]
                pieces.append((max(0, lot.arrives_in_days), lot.expires_in_days, units))
            elif stock in offers and offers[stock].drug == drug:
                pieces.append((offers[stock].lead_time_days, None, units))
        can = _met(need.units, need.daily_usage, problem.horizon_days, pieces)
        assert need.units - short.get((site, drug), 0.0) <= can + 1e-4, f"{site}/{drug}: what is met can be, in time"
