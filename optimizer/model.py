"""The planning model of one drug (or several, tied by a budget), in PuLP.

Per drug, with sites i, offers o, tiers k, usable lots l:

- ``buy[o,i]``     integer packs of offer o delivered to site i
- ``tier[o,k]``    binary: the pooled order of o is priced at tier k (at most one tier)
- ``tierpacks[o,k]`` packs priced at tier k, within tier k's range when it is on (a strong formulation of
                   all-units discounts: no big-M, one binary and one quantity per tier)
- ``order[o,i]``   binary, when the offer has a fixed cost per order and the site may take more than one pack
- ``bought_used[i]`` units of site i's purchases used against its demand (the rest stays as fresh stock)
- ``use[l,j]``     units of lot l used at site j (j = the lot's own site, or a site an allowed arc reaches)
- ``waste[l]``     units of a lot that expires within the horizon and is not used
- ``short[i]``     units of demand not met

Near-expiry stock counts only where it can be used before it expires: for every site j and every expiry
T < horizon, the units j uses from lots expiring within T days are at most j's daily usage times T.
Purchases arrive after their lead time: units bought from offers with lead time >= L cover at most the
demand after day L, so the bought units a site uses exceed what its faster offers' packs hold by at most that
demand. (One used-units variable per site rather than one per offer and site: the model is smaller and the
solver's cuts find the site's packs straight in its rows; measured over 100 city drugs, 0.68 of the time.)

Units are whole, and so is every quantity of stock the plan uses, moves, wastes or leaves short, without an
integer variable for any of them: the limits above are rounded down to whole units (for whole units, "at most
the daily usage times T" means at most its whole part), and once the packs, orders and tiers are fixed, the
rows holding stock variables are two nested families, each lot's (all its uses, then the moved ones) and each
site's (its demand, then its uses by expiry, then its bought units), whose matrix is totally unimodular. So
every basic solution moves whole units.

In the site-by-site baseline the tiers apply to each site's own volume and no stock moves.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import pulp

from optimizer.problem import Decisions, Demand, Lot, Offer, Problem, Tier

Key = tuple[str, str]


@dataclass
class DrugModel:
    """One drug's variables and cost expressions inside a PuLP problem."""

    drug: str
    pooled: bool
    offers: dict[str, Offer]
    lots: dict[str, Lot]
    demands: dict[str, Demand]
    buy: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    tier_on: dict[tuple[str, str, int], pulp.LpVariable] = field(default_factory=dict)  # (offer, scope, k)
    tier_packs: dict[tuple[str, str, int], pulp.LpVariable] = field(default_factory=dict)
    order: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    use: dict[Key, pulp.LpVariable] = field(default_factory=dict)  # (lot, site)
    waste: dict[str, pulp.LpVariable] = field(default_factory=dict)
    short: dict[str, pulp.LpVariable] = field(default_factory=dict)
    ship: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    costs: dict[str, pulp.LpAffineExpression] = field(default_factory=dict)
    expired: list[Lot] = field(default_factory=list)  # wasted whatever the plan: counted as a constant

    # Indexes for reading the solved model back (built on first use, once the model is complete).
    @cached_property
    def offers_to(self) -> dict[str, list[str]]:
        """The offers that may deliver to each site, by id."""
        offers: dict[str, list[str]] = defaultdict(list)
        for offer_id, site in sorted(self.buy):
            offers[site].append(offer_id)
        return offers

    @cached_property
    def uses_at(self) -> dict[str, dict[str, pulp.LpVariable]]:
        """Each site's use of stock, by lot."""
        return _grouped((site, lot_id, u) for (lot_id, site), u in self.use.items())

    @cached_property
    def uses_of(self) -> dict[str, dict[str, pulp.LpVariable]]:
        """Each lot's use, by the site that uses it."""
        return _grouped((lot_id, site, u) for (lot_id, site), u in self.use.items())

    @property
    def spending(self) -> pulp.LpAffineExpression:
        return self.costs["purchase"] + self.costs["delivery"] + self.costs["order"]

    @property
    def total(self) -> pulp.LpAffineExpression:
        return pulp.lpSum(self.costs.values())


def _grouped(entries: Iterable[tuple[str, str, pulp.LpVariable]]) -> dict[str, dict[str, pulp.LpVariable]]:
    """``(group, key, variable)`` entries as a dict of groups, each a dict by key (empty for a group without any)."""
    groups: dict[str, dict[str, pulp.LpVariable]] = defaultdict(dict)
    for group, key, variable in entries:
        groups[group][key] = variable
    return groups


def _expr(terms: list[tuple[pulp.LpVariable, float]], constant: float = 0.0) -> pulp.LpAffineExpression:
    # Built in one go from (variable, coefficient) pairs: chaining + on PuLP expressions is quadratic.
    return pulp.LpAffineExpression(terms, constant=constant)


def _add(prob: pulp.LpProblem, terms: list[tuple[pulp.LpVariable, float]], sense: int, rhs: float, name: str) -> None:
    prob.addConstraint(pulp.LpConstraint(_expr(terms), sense=sense, rhs=rhs), name=name)


def _affordable(cap: float, offer: Offer, site: str | None = None) -> int:
    """The most packs of ``offer`` (delivered to ``site``) that spending ``cap`` could pay for."""
    cheapest = min(t.price_per_pack for t in offer.tiers) + (offer.delivery_cost_per_pack.get(site, 0.0) if site else
                                                             min(offer.delivery_cost_per_pack.values(), default=0.0))
    return math.floor(cap / cheapest * (1 + 1e-9)) if cheapest > 0 else sys.maxsize


def value_at_risk(lots: Iterable[Lot], horizon: int) -> float:
    """What the usable ``lots`` that may expire within the horizon are worth: wasted if nothing uses them."""
    return sum(lot.quantity * lot.unit_value for lot in lots if 0 < lot.expires_in_days <= horizon)


def spending_cap(demand: Demand, own_lots: Iterable[Lot], penalty: float, horizon: int) -> float:
    """What buying nothing could cost a site at most: every unit short and every lot of its own that may expire
    within the horizon wasted. No optimal plan spends more than that on the site's purchases."""
    return penalty * demand.units + value_at_risk(own_lots, horizon)


def reachable_tiers(offer: Offer, most: int) -> Iterator[tuple[int, Tier, int]]:
    """Each tier of ``offer`` that a volume of at most ``most`` packs can reach: its index, the tier, and the
    most packs priced at it (all-units: up to the next tier's minimum)."""
    for k, tier in enumerate(offer.tiers):
        high = min(offer.tiers[k + 1].min_packs - 1 if k + 1 < len(offer.tiers) else most, most)
        if high >= max(tier.min_packs, 1):
            yield k, tier, high


def packs_limit(offer: Offer, site: str, wanted: int, cap: float) -> int:
    """The most packs of ``offer`` a site may take: ``wanted``, within the offer's capacity and what spending
    ``cap`` could pay for."""
    limit = wanted if offer.capacity_packs is None else min(wanted, offer.capacity_packs)
    return min(limit, _affordable(cap, offer, site))


def add_drug(prob: pulp.LpProblem, problem: Problem, drug: str, tag: str, *, pooled: bool = True,
             transfers: bool = True, fixed: Decisions | None = None) -> DrugModel:
    """Add one drug's variables and constraints to ``prob`` (names carry ``tag``); return their handles.

    With ``fixed`` the purchases and transfers are given (an edited plan) and only the rest is chosen: the
    tier each offer's volume reaches, which stock is used where, shortages and waste. That is how an edited
    plan is re-costed with exactly the accounting of a planned one. (Check it first with
    :func:`optimizer.evaluate.check_decisions`: this model can only say "infeasible".)
    """
    horizon = problem.horizon_days
    demands = {d.site: d for d in problem.demands if d.drug == drug and d.units > 0}
    offers = {o.id: o for o in problem.offers if o.drug == drug}
    all_lots = [lot for lot in problem.lots if lot.drug == drug and lot.quantity > 0]
    usable = {lot.id: lot for lot in all_lots if lot.expires_in_days > 0}
    model = DrugModel(drug, pooled, offers, usable, demands, expired=[lot for lot in all_lots
                                                                       if lot.expires_in_days <= 0])
    sites = sorted(demands)
    site_index = {s: n for n, s in enumerate(sites)}
    cost_terms: dict[str, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)
    supply_terms: dict[str, list[tuple[pulp.LpVariable, float]]] = defaultdict(list)  # site -> units meeting demand

    # Purchases, tiers, orders --------------------------------------------------------------------
    # Buying nothing costs at most every unit short and every lot that may expire wasted, and no optimal plan
    # spends more than that on purchases: no site (in the baseline) or consortium (pooled) buys more packs than
    # that would pay for. Without it a baseline site could top up to the consortium's top tier, thousands of
    # packs, and its bounds and order constraints would be too weak to solve fast.
    penalty = problem.penalty(drug)
    lots_at: dict[str, list[Lot]] = defaultdict(list)
    for lot in usable.values():
        lots_at[lot.site].append(lot)
    site_cap = {site: spending_cap(demands[site], lots_at[site], penalty, horizon) for site in sites}
    pooled_cap = sum(site_cap.values()) + value_at_risk((lot for lot in usable.values() if lot.site not in demands),
                                                        horizon)
    bought_terms: dict[str, list[tuple[pulp.LpVariable, int, float]]] = defaultdict(list)  # (packs, lead, pack size)
    for o_n, offer in enumerate(sorted(offers.values(), key=lambda o: o.id)):
        reach = [s for s in sites if not offer.delivery_cost_per_pack or s in offer.delivery_cost_per_pack]
        # Buying beyond need pays only to reach a better tier, and then it is cheapest at the site with the
        # cheapest delivery: only that site (each site, in the baseline) may top up. Tight bounds, fast solves.
        hubs = set(reach) if not pooled else {min(reach, key=lambda s: (offer.delivery_cost_per_pack.get(s, 0.0), s))} \
            if reach else set()
        need_packs = {site: math.ceil(demands[site].units / offer.pack_size) for site in reach}
        # ...and only as far as the last tier's minimum: beyond it no price gets better. Tight bounds are what
        # keep the tier formulation strong (the top tier's upper bound is the pooled volume's).
        pooled_need = sum(need_packs.values())
        site_ub: dict[str, int] = {}
        for site in reach:
            top_up = offer.tiers[-1].min_packs - (pooled_need if pooled else need_packs[site])
            ub = packs_limit(offer, site, need_packs[site] + (max(0, top_up) if site in hubs else 0),
                             pooled_cap if pooled else site_cap[site])
            lb = 0
            if fixed is not None:
                lb = ub = fixed.purchases.get((offer.id, site), 0)
            if ub <= 0:
                continue
            site_ub[site] = ub
            i = site_index[site]
            x = prob.add_variable(f"{tag}_buy_{o_n}_{i}", lb, ub, cat=pulp.LpInteger)
            model.buy[(offer.id, site)] = x
            delivery = offer.delivery_cost_per_pack.get(site, 0.0)
            if delivery:
                cost_terms["delivery"].append((x, delivery))
            if offer.order_cost > 0 and ub == 1:
                # At most one pack: the order is the pack, and its cost goes on the pack (no binary, no row;
                # 0.93-0.96 of the time over 200 city drugs, two seeds).
                cost_terms["order"].append((x, offer.order_cost))
            elif offer.order_cost > 0:
                y = prob.add_variable(f"{tag}_order_{o_n}_{i}", 0, 1, cat=pulp.LpBinary)
                model.order[(offer.id, site)] = y
                cost_terms["order"].append((y, offer.order_cost))
                _add(prob, [(x, 1.0), (y, -float(ub))], pulp.LpConstraintLE, 0, f"{tag}_order_needed_{o_n}_{i}")
            bought_terms[site].append((x, offer.lead_time_days, float(offer.pack_size)))
        if not site_ub:
            continue
        scopes = [("all", list(site_ub))] if pooled else [(s, [s]) for s in site_ub]
        for scope, members in scopes:
            scope_ub = sum(site_ub[s] for s in members)
            if offer.capacity_packs is not None:
                scope_ub = min(scope_ub, offer.capacity_packs)
            if fixed is None:
                scope_ub = min(scope_ub, _affordable(pooled_cap if pooled else site_cap[scope], offer))
            scope_tag = "all" if scope == "all" else str(site_index[scope])
            on_terms, packs_terms = [], []
            for k, tier, high in reachable_tiers(offer, scope_ub):
                z = prob.add_variable(f"{tag}_tier_{o_n}_{scope_tag}_{k}", 0, 1, cat=pulp.LpBinary)
                w = prob.add_variable(f"{tag}_tierpacks_{o_n}_{scope_tag}_{k}", 0, high)
                model.tier_on[(offer.id, scope, k)] = z
                model.tier_packs[(offer.id, scope, k)] = w
                _add(prob, [(w, 1.0), (z, -float(max(tier.min_packs, 0)))], pulp.LpConstraintGE, 0,
                     f"{tag}_tier_minimum_{o_n}_{scope_tag}_{k}")
                _add(prob, [(w, 1.0), (z, -float(high))], pulp.LpConstraintLE, 0,
                     f"{tag}_tier_maximum_{o_n}_{scope_tag}_{k}")
                cost_terms["purchase"].append((w, tier.price_per_pack))
                on_terms.append((z, 1.0))
                packs_terms.append((w, 1.0))
            _add(prob, on_terms, pulp.LpConstraintLE, 1, f"{tag}_one_tier_{o_n}_{scope_tag}")
            _add(prob, packs_terms + [(model.buy[(offer.id, s)], -1.0) for s in members], pulp.LpConstraintEQ, 0,
                 f"{tag}_tier_prices_every_pack_{o_n}_{scope_tag}")
        if offer.capacity_packs is not None and not pooled:
            _add(prob, [(model.buy[(offer.id, s)], 1.0) for s in site_ub], pulp.LpConstraintLE,
                 offer.capacity_packs, f"{tag}_capacity_{o_n}")
    for site, bought in sorted(bought_terms.items()):
        # One variable per site for the bought units that meet its demand, at most what its packs hold (the
        # rest stays as fresh stock). Units from offers at least L days slow meet only the demand after day L:
        # the used units beyond what faster offers hold are at most that demand.
        i = site_index[site]
        used = prob.add_variable(f"{tag}_bought_used_{i}", 0, demands[site].units)
        supply_terms[site].append((used, 1.0))
        _add(prob, [(used, 1.0), *((x, -pack) for x, _, pack in bought)], pulp.LpConstraintLE, 0,
             f"{tag}_bought_units_cover_use_{i}")
        for lead in sorted({lt for _, lt, _ in bought if lt > 0}):
            faster = [(x, -pack) for x, lt, pack in bought if lt < lead]
            after = demands[site].units_after(lead)
            _add(prob, [(used, 1.0), *faster], pulp.LpConstraintLE, after, f"{tag}_lead_time_{i}_{lead}")

    # Stock on hand and transfers -----------------------------------------------------------------
    arcs = defaultdict(list)
    if transfers:
        for arc in problem.arcs:
            if arc.to_site in demands and arc.from_site != arc.to_site:
                arcs[arc.from_site].append(arc)
    all_sites = sorted({lot.site for lot in usable.values()} | set(sites))
    any_index = {s: n for n, s in enumerate(all_sites)}
    expiries: dict[str, list[tuple[int, pulp.LpVariable]]] = defaultdict(list)
    shipped: dict[Key, list[pulp.LpVariable]] = defaultdict(list)
    for l_n, lot in enumerate(sorted(usable.values(), key=lambda lot: lot.id)):
        own = demands.get(lot.site)
        # Only surplus moves: what the lot's own site cannot use before it expires (or within the horizon).
        # Shuffling stock a site needs would only trade one site's rounding of packs for another's.
        surplus = lot.quantity - (own.units_before_expiry(lot, horizon) if own else 0)
        if fixed is not None:  # an edited plan moves what it says, whether or not the site could spare it
            surplus = lot.quantity
        targets = ([(lot.site, 0.0)] if own else []) + \
                  ([(arc.to_site, arc.unit_cost) for arc in arcs.get(lot.site, [])
                    if fixed is None or (lot.id, arc.to_site) in fixed.transfers] if surplus > 0 else [])
        lot_terms: list[tuple[pulp.LpVariable, float]] = []
        moved_terms: list[tuple[pulp.LpVariable, float]] = []
        for site, unit_cost in targets:
            need = demands[site]
            # A site cannot use more of this lot than it consumes before the lot expires.
            use_ub: float = need.units_before_expiry(lot, horizon)
            if use_ub <= 0:
                continue
            use_lb = 0.0
            if fixed is not None and site != lot.site:
                use_lb = use_ub = fixed.transfers[(lot.id, site)]
            u = prob.add_variable(f"{tag}_use_{l_n}_{any_index[site]}", use_lb, use_ub)
            model.use[(lot.id, site)] = u
            lot_terms.append((u, 1.0))
            supply_terms[site].append((u, 1.0))
            if lot.expires_in_days < horizon:
                expiries[site].append((lot.expires_in_days, u))
            if site != lot.site:
                moved_terms.append((u, 1.0))
                if unit_cost:
                    cost_terms["transfer"].append((u, unit_cost))
                shipped[(lot.site, site)].append(u)
        if len(moved_terms) > 1 or (moved_terms and surplus < lot.quantity):
            _add(prob, moved_terms, pulp.LpConstraintLE, surplus, f"{tag}_only_surplus_moves_{l_n}")
        if lot.expires_in_days <= horizon:
            waste = prob.add_variable(f"{tag}_waste_{l_n}", 0, lot.quantity)
            model.waste[lot.id] = waste
            cost_terms["waste"].append((waste, lot.unit_value))
            _add(prob, [*lot_terms, (waste, 1.0)], pulp.LpConstraintEQ, lot.quantity, f"{tag}_lot_balance_{l_n}")
        elif lot_terms:
            _add(prob, lot_terms, pulp.LpConstraintLE, lot.quantity, f"{tag}_lot_balance_{l_n}")
    for (origin, site), used in shipped.items():
        arc = next(a for a in arcs[origin] if a.to_site == site)
        if arc.fixed_cost > 0:
            s = prob.add_variable(f"{tag}_ship_{any_index[origin]}_{any_index[site]}", 0, 1, cat=pulp.LpBinary)
            model.ship[(origin, site)] = s
            cost_terms["transfer"].append((s, arc.fixed_cost))
            big = min(sum(usable[lid].quantity for lid, st in model.use if st == site and usable[lid].site == origin),
                      demands[site].units)
            _add(prob, [(u, 1.0) for u in used] + [(s, -float(big))], pulp.LpConstraintLE, 0,
                 f"{tag}_shipment_needed_{any_index[origin]}_{any_index[site]}")
    for site, entries in expiries.items():
        for limit in sorted({days for days, _ in entries}):
            terms = [(u, 1.0) for days, u in entries if days <= limit]
            if len(terms) > 1:  # one lot alone is already bounded by its variable's upper bound
                _add(prob, terms, pulp.LpConstraintLE, demands[site].units_within(limit),
                     f"{tag}_absorb_before_expiry_{any_index[site]}_{limit}")

    # Demand ----------------------------------------------------------------------------------------
    for site in sites:
        i = site_index[site]
        short = prob.add_variable(f"{tag}_short_{i}", 0, demands[site].units)
        model.short[site] = short
        cost_terms["shortage"].append((short, penalty))
        _add(prob, [*supply_terms[site], (short, 1.0)], pulp.LpConstraintEQ, demands[site].units,
             f"{tag}_demand_met_{i}")

    expired_value = sum(lot.quantity * lot.unit_value for lot in model.expired)
    for kind in ("purchase", "delivery", "order", "transfer", "shortage", "waste"):
        model.costs[kind] = _expr(cost_terms[kind], expired_value if kind == "waste" else 0.0)
    return model


def build_model(problem: Problem, *, pooled: bool = True, transfers: bool = True,
                price_of_spending: float = 0.0, fixed: Decisions | None = None,
                ) -> tuple[pulp.LpProblem, list[DrugModel]]:
    """One PuLP problem for every drug of ``problem`` (tied by its budget, if it has one).

    ``price_of_spending`` adds a Lagrange multiplier on supplier spending to the objective, which is how
    the decomposed solver prices a budget without tying the drugs into one model.
    """
    prob = pulp.LpProblem("purchase_plan", pulp.LpMinimize)
    models = [add_drug(prob, problem, drug, f"d{n}", pooled=pooled, transfers=transfers, fixed=fixed)
              for n, drug in enumerate(problem.drugs)]
    objective: dict[pulp.LpVariable, float] = defaultdict(float)  # a pack pays its delivery and maybe its order
    constant = 0.0
    for model in models:
        for kind, expression in model.costs.items():
            weight = 1.0 + (price_of_spending if kind in ("purchase", "delivery", "order") else 0.0)
            for v, c in expression.items():
                objective[v] += c * weight
            constant += expression.constant * weight
    prob.setObjective(_expr(list(objective.items()), constant))
    if problem.budget is not None:
        spending = [(v, c) for model in models for v, c in model.spending.items()]
        _add(prob, spending, pulp.LpConstraintLE, problem.budget, "budget")
    return prob, models
