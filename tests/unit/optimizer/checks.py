"""An independent check that a plan is feasible for its problem, from the plan's lines alone."""

from __future__ import annotations

from collections import defaultdict

from optimizer import Plan, Problem

TOL = 1e-5


def assert_feasible(problem: Problem, plan: Plan) -> None:
    offers = {o.id: o for o in problem.offers}
    lots = {lot.id: lot for lot in problem.lots}
    demands = {(d.site, d.drug): d for d in problem.demands}
    arcs = {(a.from_site, a.to_site) for a in problem.arcs}
    pooled: dict[str, int] = defaultdict(int)
    for p in plan.purchases:
        offer = offers[p.offer]
        assert p.units == p.packs * offer.pack_size, "purchases come in whole packs"
        assert not offer.delivery_cost_per_pack or p.site in offer.delivery_cost_per_pack, "the offer delivers there"
        pooled[p.offer] += p.packs
    for offer_id, packs in pooled.items():
        offer = offers[offer_id]
        assert packs >= offer.minimum_order_packs, f"{offer_id}: minimum order"
        assert offer.capacity_packs is None or packs <= offer.capacity_packs, f"{offer_id}: capacity"
        reached = max((t for t in offer.tiers if t.min_packs <= packs), key=lambda t: t.min_packs)
        for p in plan.purchases:
            if p.offer == offer_id:
                assert p.price_per_pack == reached.price_per_pack, f"{offer_id}: the pooled volume sets the tier"
    for line in (*plan.transfers, *plan.stock_use, *plan.waste, *plan.shortages):
        assert line.units == int(line.units), f"{line}: stock is used, moved, wasted and left short in whole units"
    used_of_lot: dict[str, float] = defaultdict(float)
    received: dict[tuple[str, str], float] = defaultdict(float)
    from_lots_by_expiry: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for t in plan.transfers:
        assert (t.from_site, t.to_site) in arcs, "stock moves only along allowed arcs"
        lot = lots[t.lot]
        used_of_lot[t.lot] += t.units
        received[(t.to_site, t.drug)] += t.units
        from_lots_by_expiry[(t.to_site, t.drug)].append((lot.expires_in_days, t.units))
    for u in plan.stock_use:
        lot = lots[u.lot]
        assert u.site == lot.site
        used_of_lot[u.lot] += u.units
        received[(u.site, u.drug)] += u.units
        from_lots_by_expiry[(u.site, u.drug)].append((lot.expires_in_days, u.units))
    wasted = {w.lot: w.units for w in plan.waste}
    for lot_id, lot in lots.items():
        used = used_of_lot.get(lot_id, 0.0)
        assert used + wasted.get(lot_id, 0.0) <= lot.quantity + TOL, f"lot {lot_id} gives no more than it holds"
        if 0 < lot.expires_in_days <= problem.horizon_days:
            assert abs(used + wasted.get(lot_id, 0.0) - lot.quantity) <= 1e-4, f"lot {lot_id}: used or wasted"
        if lot.expires_in_days <= 0:
            assert used == 0 and abs(wasted.get(lot_id, 0.0) - lot.quantity) <= TOL, "expired stock is wasted"
    for (site, drug), entries in from_lots_by_expiry.items():
        need = demands[(site, drug)]
        for limit in {days for days, _ in entries}:
            if limit < problem.horizon_days:
                within = sum(units for days, units in entries if days <= limit)
                assert within <= need.daily_usage * limit + 1e-4, f"{site}/{drug}: absorbs in time"
    bought: dict[tuple[str, str], int] = defaultdict(int)
    for p in plan.purchases:
        bought[(p.site, p.drug)] += p.units
    short = {(s.site, s.drug): s.units for s in plan.shortages}
    for key, need in demands.items():
        if need.units <= 0:
            continue
        covered = received.get(key, 0.0) + bought.get(key, 0) + short.get(key, 0.0)
        assert covered >= need.units - 1e-4, f"{key}: demand is met, bought or short"
        assert received.get(key, 0.0) <= need.units + 1e-4, f"{key}: stock is not used beyond need"
