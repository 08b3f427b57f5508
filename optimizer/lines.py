"""A solved drug model read back as plan lines, each explaining itself in the plan's own figures: which tier a
purchase reaches and why this supplier, which stock moves where and why, why a site is left short and why stock
expires.

The model moves stock by class (see :mod:`optimizer.model`); the lines name lots. Each class's flows are split into
the lots and purchases they carry, site by site along the flows: units arriving at a site go on first, then the
site's own (any split is the same plan: the units of a class are interchangeable).
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulp

from optimizer.model import Charge, DrugModel, charges_used, first_needed, used_by
from optimizer.plan import Costs, PurchaseLine, Reason, ShortageLine, StockUseLine, TransferLine, WasteLine, said
from optimizer.problem import Lot, Offer, Problem, Tier

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
    """One drug's plan lines and their costs (the shared charges apart: ``charges`` are those it incurs)."""

    purchases: list[PurchaseLine]
    transfers: list[TransferLine]
    shortages: list[ShortageLine]
    waste: list[WasteLine]
    stock_use: list[StockUseLine]
    costs: Costs
    charges: frozenset[Charge] = field(default_factory=frozenset)


@dataclass
class _Moves:
    """The stock of one drug as the lines see it: what each lot (or purchase, by offer and site) moved where, used
    at its own site, and left to expire where."""

    moved: dict[tuple[str, str, str, str | None], float] = field(default_factory=lambda: defaultdict(float))
    used_home: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wasted: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))  # (lot, site)


def _split_flows(model: DrugModel) -> _Moves:
    """Each class's flows as moves of the lots and purchases they carry."""
    moves = _Moves()
    lots_of: dict[tuple[int, str], list[Lot]] = defaultdict(list)
    for lot in sorted(model.lots.values(), key=lambda lot: lot.id):
        lots_of[(model.class_of_lot[lot.id], lot.site)].append(lot)
    bought_of: dict[tuple[int, str], list[tuple[str, float]]] = defaultdict(list)
    for (offer_id, site), x in sorted(model.buy.items()):
        bought = round(value(x)) * model.offers[offer_id].pack_size
        if bought > 0:
            bought_of[(model.class_of_offer[offer_id], site)].append((offer_id, float(bought)))
    flows: dict[int, dict[tuple[str, str], float]] = defaultdict(dict)
    for (c, origin, site), f in model.flow.items():
        units = whole_units(f)
        if units > EPS:
            flows[c][(origin, site)] = units
    used: dict[tuple[int, str], float] = defaultdict(float)
    for (c, site, _), u in model.use.items():
        used[(c, site)] += whole_units(u)
    for c in range(len(model.classes)):
        arcs = _without_cycles(flows.get(c, {}))
        sites = {s for key in arcs for s in key} | {s for (k, s) in lots_of if k == c} | \
            {s for (k, s) in bought_of if k == c}
        into: dict[str, int] = dict.fromkeys(sites, 0)
        for _, site in arcs:
            into[site] += 1
        ready = deque(sorted(s for s, n in into.items() if n == 0))
        arriving: dict[str, list[tuple[str, str | None, float]]] = defaultdict(list)  # (stock, offer, units)
        while ready:
            site = ready.popleft()
            stock: deque[list[Any]] = deque([list(t) for t in arriving[site]])
            stock += [[lot.id, None, float(lot.quantity)] for lot in lots_of.get((c, site), [])]
            stock += [["", offer, units] for offer, units in bought_of.get((c, site), [])]
            for (origin, to), amount in sorted(arcs.items()):
                if origin != site:
                    continue
                for stock_id, by_offer, taken in _take(stock, amount):
                    moves.moved[(stock_id, site, to, by_offer)] += taken
                    arriving[to].append((stock_id, by_offer, taken))
                into[to] -= 1
                if into[to] == 0:
                    ready.append(to)
            for stock_id, by_offer, taken in _take(stock, used.get((c, site), 0.0)):
                if by_offer is None and model.lots[stock_id].site == site:
                    moves.used_home[stock_id] += taken
            left = model.left.get((c, site))
            for stock_id, by_offer, taken in _take(stock, whole_units(left) if left is not None else 0.0):
                if by_offer is None:
                    moves.wasted[(stock_id, site)] += taken
    return moves


def _take(stock: deque[list[Any]], units: float) -> list[tuple[str, str | None, float]]:
    """Take ``units`` from the front of ``stock`` (entries ``[stock id, offer, units]``)."""
    taken = []
    while units > EPS and stock:
        head = stock[0]
        amount = min(units, head[2])
        taken.append((head[0], head[1], amount))
        head[2] -= amount
        units -= amount
        if head[2] <= EPS:
            stock.popleft()
    return taken


def _without_cycles(arcs: Mapping[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """The flows with any cycle among them cancelled (a cycle moves stock back where it was: it changes nothing
    but cost, and an optimal plan has none but of arcs that cost nothing)."""
    flows = {k: v for k, v in arcs.items() if v > EPS}
    while True:
        out: dict[str, list[str]] = defaultdict(list)
        for origin, site in sorted(flows):
            out[origin].append(site)
        cycle = _find_cycle(out)
        if cycle is None:
            return flows
        least = min(flows[edge] for edge in cycle)
        for edge in cycle:
            flows[edge] -= least
            if flows[edge] <= EPS:
                del flows[edge]


def _find_cycle(out: Mapping[str, list[str]]) -> list[tuple[str, str]] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[tuple[str, str]] | None:
        state[node] = 1
        path.append(node)
        for nxt in out.get(node, []):
            if state.get(nxt) == 1:
                return list(itertools.pairwise([*path[path.index(nxt):], nxt]))
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(out):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


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
        reasons = [Reason("tier_reached", {"min_packs": tier.min_packs, "price": tier.price_per_pack,
                                           "pooled": model.pooled,
                                           "packs": pooled_packs[offer_id] if model.pooled else packs,
                                           "landed": landed, "site": site})]
        if others:
            reasons.append(Reason("other_offers", {"cheapest": min(others)}))
        purchases.append(PurchaseLine(model.drug, offer_id, offer.supplier, site, packs, packs * offer.pack_size,
                                      tier.min_packs, tier.price_per_pack, packs * tier.price_per_pack, delivery,
                                      said(reasons), tuple(reasons)))
    moves = _split_flows(model)
    for (stock_id, origin, site, by_offer), units in sorted(moves.moved.items(), key=lambda kv: (
            kv[0][0], kv[0][1], kv[0][2], kv[0][3] or "")):
        arc = model.arcs[(origin, site)]
        reasons = _why_moved(model, stock_id, by_offer, origin, site, arc.unit_cost)
        transfers.append(TransferLine(model.drug, stock_id, origin, site, units, units * arc.unit_cost,
                                      said(reasons), by_offer, tuple(reasons)))
    for lot_id, units in sorted(moves.used_home.items()):
        if units > EPS:
            uses.append(StockUseLine(model.drug, lot_id, model.lots[lot_id].site, units))
    penalty = problem.penalty(model.drug)
    for site in sorted(model.demands):
        units = sum(whole_units(s) for _, s in model.short_at(site))
        if units > EPS:
            reasons = _why_short(model, problem, site, units, tiers, pooled_packs, budgeted)
            shortages.append(ShortageLine(model.drug, site, units, units * penalty, said(reasons), tuple(reasons)))
    costs = Costs(**{kind: float(pulp.value(expr) or 0.0) if expr.items() else float(expr.constant)
                     for kind, expr in model.costs.items()}, unavoidable_waste=model.unavoidable)
    for (lot_id, site), units in sorted(moves.wasted.items()):
        lot = model.lots[lot_id]
        if units > EPS:
            reasons = _why_wasted(model, lot, site, moves, costs.waste)
            wastes.append(WasteLine(model.drug, lot_id, site, units, units * lot.unit_value, said(reasons),
                                    tuple(reasons)))
    for lot in model.sunk:
        reasons = [Reason("already_expired") if lot.expires_in_days <= 0 else
                   Reason("expires_before_arrives", {"days": lot.expires_in_days})]
        wastes.append(WasteLine(model.drug, lot.id, lot.site, lot.quantity, lot.quantity * lot.unit_value,
                                said(reasons), tuple(reasons)))
    return Lines(purchases, transfers, shortages, wastes, uses, costs, charges_used([model]))


def _why_moved(model: DrugModel, stock_id: str, offer_id: str | None, origin: str, site: str, unit_cost: float
               ) -> list[Reason]:
    if offer_id is not None:
        return [Reason("packs_moved_on", {"offer": offer_id, "origin": origin, "site": site, "unit_cost": unit_cost})]
    lot = model.lots[stock_id]
    if lot.site != origin:
        return [Reason("on_its_way", {"lot": stock_id, "lot_site": lot.site, "origin": origin,
                                      "unit_cost": unit_cost})]
    arrives = [Reason("arrives_in", {"days": lot.arrives_in_days})] if lot.arrives_in_days > 0 else []
    own = model.demands.get(lot.site)
    can_use = 0
    if own is not None:
        can_use = max(0, used_by(own, lot.expires_in_days, model.horizon) - first_needed(
            own, lot.arrives_in_days, model.horizon))
    if lot.expires_in_days <= model.horizon and can_use < lot.quantity:
        return [*arrives, Reason("expires_before_use", {"lot": stock_id, "days": lot.expires_in_days,
                                                        "lot_site": lot.site, "can_use": can_use,
                                                        "quantity": lot.quantity})]
    if own is None:
        return [*arrives, Reason("no_demand_cheaper", {"lot_site": lot.site, "site": site, "unit_cost": unit_cost})]
    return [*arrives, Reason("lent", {"site": site, "unit_cost": unit_cost})]


def _tier_reached(model: DrugModel, tiers: Mapping[tuple[str, str], int], offer: Offer, site: str) -> Tier:
    """The tier the offer's volume reached: the consortium's pooled one, or in the baseline the site's own."""
    return offer.tiers[tiers.get((offer.id, "all" if model.pooled else site), 0)]


def _why_short(model: DrugModel, problem: Problem, site: str, units: float, tiers: Mapping[tuple[str, str], int],
               pooled_packs: Mapping[str, int], budgeted: bool) -> list[Reason]:
    """Why a site is left short, in the plan's own figures: no offer delivers there, the units are needed before
    the fastest offer delivers, the budget, offers at capacity, or what one more pack would cost for the units it
    would meet (lead times permitting)."""
    demand, penalty = model.demands[site], problem.penalty(model.drug)
    offers = [model.offers[o] for o in model.offers_to.get(site, [])]
    if not offers:
        return [Reason("no_offer_delivers", {"site": site})]
    short = {m: whole_units(s) for m, s in model.short_at(site)}
    groups = model.groups[site]
    packs = {o.id: round(value(model.buy[(o.id, site)])) for o in offers}

    def short_from(day: int) -> float:
        """Units short among those needed from ``day`` on: what a pack arriving then could meet."""
        start = first_needed(demand, day, model.horizon)
        return sum(units for m, units in short.items() if groups[m][0] >= start)

    reasons: list[Reason] = []
    fastest = min(o.lead_time_days for o in offers)
    early = min(units, max(0.0, units - short_from(fastest)))
    if early > EPS:
        reasons.append(Reason("needed_before_fastest", {"units": early, "days": fastest}))
    if (rest := units - early) > EPS:
        if budgeted:
            reasons.append(Reason("short_within_budget", {"units": rest}))
        gains = {o.id: min(float(o.pack_size), short_from(o.lead_time_days)) for o in offers
                 if o.capacity_packs is None or pooled_packs.get(o.id, 0) < o.capacity_packs}

        def landed(o: Offer) -> float:
            return (_tier_reached(model, tiers, o, site).price_per_pack + o.delivery_cost_per_pack.get(site, 0.0)
                    + (0.0 if packs[o.id] else o.order_cost))

        useful = [o for o in offers if gains.get(o.id, 0.0) > EPS]
        if not gains:
            reasons.append(Reason("offers_at_capacity"))
        elif not useful:
            reasons.append(Reason("offers_too_late"))
        else:
            best = min(useful, key=lambda o: landed(o) / gains[o.id])
            reasons.append(Reason("one_more_pack", {"offer": best.id, "units": gains[best.id],
                                                    "lead_days": best.lead_time_days, "landed": landed(best),
                                                    "short": rest, "penalty": penalty}))
    return reasons


def _why_wasted(model: DrugModel, lot: Lot, where: str, moves: _Moves, avoidable: float) -> list[Reason]:
    """Why units of a lot expire unused, in the plan's own figures: what its own site can use of it before then,
    where the rest moves, and whether any plan could have used more of it in time."""
    reasons = [Reason("expires_in", {"days": lot.expires_in_days})]
    if lot.arrives_in_days > 0:
        reasons.insert(0, Reason("arrives_in", {"days": lot.arrives_in_days}))
    if where != lot.site:
        reasons.append(Reason("moved_not_used", {"site": where}))
    own = model.demands.get(lot.site)
    if own is None:
        reasons.append(Reason("no_demand", {"site": lot.site}))
    else:
        can = min(lot.quantity, max(0, used_by(own, lot.expires_in_days, model.horizon)
                                    - first_needed(own, lot.arrives_in_days, model.horizon)))
        used = moves.used_home.get(lot.id, 0.0)
        reasons.append(Reason("site_can_use", {"site": lot.site, "can": can, "quantity": lot.quantity,
                                               "used": used if used < can - EPS else None}))
    moved = {site: units for (stock, origin, site, offer), units in moves.moved.items()
             if stock == lot.id and offer is None and origin == lot.site}
    if moved:
        reasons.append(Reason("moves_to", {"moves": [[site, units] for site, units in sorted(moved.items())]}))
    c = model.class_of_lot[lot.id]
    can_move = any(k == c and origin == lot.site for (k, origin, _) in model.flow)
    if not can_move:
        reasons.append(Reason("may_move_nowhere"))
    elif avoidable <= EPS:
        reasons.append(Reason("no_plan_wastes_less"))
    else:
        reasons.append(Reason("neighbours_could_use_more"))
    return reasons
