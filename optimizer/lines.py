"""A solved drug model read back as plan lines, each explaining itself in the plan's own figures: which tier a
purchase reaches and why this supplier, which lot moves and why, why a site is left short and why stock expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulp

from optimizer.model import DrugModel
from optimizer.plan import Costs, PurchaseLine, ShortageLine, StockUseLine, TransferLine, WasteLine
from optimizer.problem import Arc, Lot, Offer, Problem, Tier

EPS = 1e-6


def value(v: pulp.LpVariable | None) -> float:
    """A variable's value in the solution (0 for none)."""
    return float(v.varValue or 0.0) if v is not None else 0.0


def is_whole(x: float) -> bool:
    """Whole, but for the solver's rounding noise."""
    return abs(x - round(x)) <= EPS


def whole_units(v: pulp.LpVariable) -> float:
    """A stock quantity, in the whole units it is (without the solver's rounding noise)."""
    x = value(v)
    return float(round(x)) if is_whole(x) else x


@dataclass
class Lines:
    """One drug's plan lines and their costs."""

    purchases: list[PurchaseLine]
    transfers: list[TransferLine]
    shortages: list[ShortageLine]
    waste: list[WasteLine]
    stock_use: list[StockUseLine]
    costs: Costs


def extract(model: DrugModel, problem: Problem, budgeted: bool = False) -> Lines:
    """The plan's lines for one drug; ``budgeted``: planned within a budget (in one model, or priced)."""
    purchases, transfers, shortages, wastes, uses = [], [], [], [], []
    # Which tier each offer (or each site's own order, in the baseline) reached.
    tiers: dict[tuple[str, str], int] = {}
    for (offer_id, scope, k), z in model.tier_on.items():
        if value(z) > 0.5:
            tiers[(offer_id, scope)] = k
    pooled_packs: dict[str, int] = {}
    for (offer_id, _site), x in model.buy.items():
        pooled_packs[offer_id] = pooled_packs.get(offer_id, 0) + round(value(x))
    for (offer_id, site), x in sorted(model.buy.items()):
        packs = round(value(x))
        if packs <= 0:
            continue
        offer = model.offers[offer_id]
        tier = _tier_reached(model, tiers, offer, site)
        delivery = offer.delivery_cost_per_pack.get(site, 0.0) * packs
        landed = (tier.price_per_pack + offer.delivery_cost_per_pack.get(site, 0.0)) / offer.pack_size
        others = [(o.tiers[0].price_per_pack + o.delivery_cost_per_pack.get(site, 0.0)) / o.pack_size
                  for o in model.offers.values() if o.id != offer_id]
        volume = f"the consortium's pooled {pooled_packs[offer_id]} packs" if model.pooled \
            else f"this site's own {packs} packs"
        why = (f"tier >= {tier.min_packs} packs at {tier.price_per_pack:.2f}/pack, reached by {volume}; "
               f"landed {landed:.3f}/unit at {site}")
        if others:
            why += f" (other offers from {min(others):.3f}/unit at their base tier)"
        purchases.append(PurchaseLine(model.drug, offer_id, offer.supplier, site, packs, packs * offer.pack_size,
                                      tier.min_packs, tier.price_per_pack, packs * tier.price_per_pack, delivery, why))
    arcs: dict[tuple[str, str], Arc] = {}
    for (lot_id, site), u in sorted(model.use.items()):
        lot = model.lots[lot_id]
        units = whole_units(u)
        if units <= EPS:
            continue
        if site == lot.site:
            uses.append(StockUseLine(model.drug, lot_id, site, units))
            continue
        arcs = arcs or {(a.from_site, a.to_site): a for a in problem.arcs}  # built once, if anything moves
        arc = arcs[(lot.site, site)]
        own = model.demands.get(lot.site)
        can_use = own.units_within(lot.expires_in_days) if own else 0
        why = (f"lot {lot_id} expires in {lot.expires_in_days} days; {lot.site} can use only "
               f"{can_use:.0f} of its {lot.quantity} before then" if can_use < lot.quantity
               else f"cheaper than buying for {site} ({arc.unit_cost:.2f}/unit to move)")
        transfers.append(TransferLine(model.drug, lot_id, lot.site, site, units, units * arc.unit_cost, why))
    penalty = problem.penalty(model.drug)
    for site, s in sorted(model.short.items()):
        units = whole_units(s)
        if units > EPS:
            shortages.append(ShortageLine(model.drug, site, units, units * penalty,
                                          _why_short(model, problem, site, units, tiers, pooled_packs, budgeted)))
    for lot_id, w in sorted(model.waste.items()):
        units = whole_units(w)
        lot = model.lots[lot_id]
        if units > EPS:
            wastes.append(WasteLine(model.drug, lot_id, lot.site, units, units * lot.unit_value,
                                    _why_wasted(model, problem, lot)))
    for lot in model.expired:
        wastes.append(WasteLine(model.drug, lot.id, lot.site, lot.quantity, lot.quantity * lot.unit_value,
                                "already expired"))
    costs = Costs(**{kind: float(pulp.value(expr) or 0.0) if expr.items() else float(expr.constant)
                     for kind, expr in model.costs.items()})
    return Lines(purchases, transfers, shortages, wastes, uses, costs)


def _tier_reached(model: DrugModel, tiers: Mapping[tuple[str, str], int], offer: Offer, site: str) -> Tier:
    """The tier the offer's volume reached: the consortium's pooled one, or in the baseline the site's own."""
    return offer.tiers[tiers.get((offer.id, "all" if model.pooled else site), 0)]


def _why_short(model: DrugModel, problem: Problem, site: str, units: float, tiers: Mapping[tuple[str, str], int],
               pooled_packs: Mapping[str, int], budgeted: bool) -> str:
    """Why a site is left short, in the plan's own figures: no offer delivers there, the units are needed before
    the fastest offer delivers, the budget, offers at capacity, or what one more pack would cost for the units it
    would meet (lead times permitting)."""
    demand, penalty = model.demands[site], problem.penalty(model.drug)
    offers = [model.offers[o] for o in model.offers_to.get(site, [])]
    if not offers:
        return f"no offer delivers to {site}, and no stock that may move there is left to use in time"
    stock = sum(whole_units(u) for u in model.uses_at.get(site, {}).values())
    packs = {o.id: round(value(model.buy[(o.id, site)])) for o in offers}

    def met(packs: Mapping[str, int]) -> float:
        """Units the packs can meet: what stock leaves, and for each lead time only the demand after it."""
        limit = min(demand.units - stock, sum(o.pack_size * packs[o.id] for o in offers))
        for lead in {o.lead_time_days for o in offers if o.lead_time_days > 0}:
            limit = min(limit, demand.units_after(lead) + sum(o.pack_size * packs[o.id] for o in offers
                                                               if o.lead_time_days < lead))
        return limit

    reasons = []
    fastest = min(o.lead_time_days for o in offers)
    early = min(units, max(0.0, demand.units - stock - demand.units_after(fastest)))
    if early > EPS:
        reasons.append(f"{_count(early, 'unit')} needed in the first {_count(fastest, 'day')}, before the fastest "
                       "offer delivers")
    if (rest := units - early) > EPS:
        if budgeted:
            reasons.append(f"{_count(rest, 'unit')} left short within the budget")
        gains = {o.id: met({**packs, o.id: packs[o.id] + 1}) - met(packs) for o in offers
                 if o.capacity_packs is None or pooled_packs.get(o.id, 0) < o.capacity_packs}

        def landed(o: Offer) -> float:
            return (_tier_reached(model, tiers, o, site).price_per_pack + o.delivery_cost_per_pack.get(site, 0.0)
                    + (0.0 if packs[o.id] else o.order_cost))

        useful = [o for o in offers if gains.get(o.id, 0.0) > EPS]
        if not gains:
            reasons.append("every offer that delivers here is at its capacity")
        elif not useful:
            reasons.append("the offers with capacity left deliver too late to meet them")
        else:
            best = min(useful, key=lambda o: landed(o) / gains[o.id])
            reasons.append(f"one more pack of {best.id} would meet {_count(gains[best.id], 'unit')} (lead time "
                           f"{_count(best.lead_time_days, 'day')}) for {landed(best):.2f} delivered; "
                           f"the {_count(rest, 'unit')} short cost {penalty:.2f} each")
    return "; ".join(reasons)


def _why_wasted(model: DrugModel, problem: Problem, lot: Lot) -> str:
    """Why part of a lot expires unused, in the plan's own figures: what its own site can use of it before then,
    where the rest moves, and whether the sites it may move to could take more of it in time."""
    own = model.demands.get(lot.site)
    reasons = [f"expires in {_count(lot.expires_in_days, 'day')}"]
    if own is None:
        reasons.append(f"{lot.site} has no demand for it")
    else:
        can = own.units_before_expiry(lot, problem.horizon_days)
        at_site = model.uses_at.get(lot.site, {})
        used = whole_units(at_site[lot.id]) if lot.id in at_site else 0.0
        # Lots that expire no later share the site's use in that time.
        others = sum(whole_units(u) for lot_id, u in at_site.items()
                     if lot_id != lot.id and model.lots[lot_id].expires_in_days <= lot.expires_in_days)
        reasons.append(f"{lot.site} can use {can:.0f} of its {lot.quantity} before then"
                       + (f" and uses {used:.0f}" if used < can - EPS else "")
                       + (f", with {others:.0f} from other stock expiring by then" if used < can - EPS and others
                          else ""))
    moves = {site: whole_units(u) for site, u in model.uses_of.get(lot.id, {}).items() if site != lot.site}
    moved = {site: units for site, units in moves.items() if units > EPS}
    if not moves:
        reasons.append("it may move to no site that can use it in time")
        return "; ".join(reasons)
    if moved:
        reasons.append(", ".join(f"{units:.0f} move to {site}" for site, units in sorted(moved.items())))
    # Each receiving site's variable is bounded by what it can use of the lot before it expires.
    room = sum(model.use[(lot.id, site)].upBound or 0.0 for site in moves) - sum(moved.values())
    reasons.append("the sites it may move to can use no more of it in time" if room <= EPS else
                   f"the {_count(len(moves), 'site')} it may move to could use up to {room:.0f} more before then, "
                   "and meet that need otherwise (their own stock, other lots or whole packs)")
    return "; ".join(reasons)


def _count(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}" + ("" if round(n) == 1 else "s")
