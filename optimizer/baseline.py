"""The site-by-site baseline every plan is compared with: each site buys alone, at the tier its own volume
reaches, and no stock moves between sites.

A site alone is planned exactly here, without a solver, and with the model's rules and bounds (see
:mod:`optimizer.model`, planned with ``pooled=False, transfers=False``):

- **Stock.** Using a unit of its own stock never costs a site anything, so some optimal plan uses as much as
  the expiry limits allow, and of that, the units whose waste would cost the most. The limits (each lot's own,
  each expiry's "at most the daily usage times T", the demand) nest, so they form a polymatroid, on which
  taking lots greedily by the value of their waste maximises both the units used and the waste avoided.
- **Purchases.** What is left of the demand is met by packs of the site's offers, or left short. With the
  packs of every offer but one fixed, the units the purchases meet are ``min(a + P x, b)`` in the last offer's
  packs ``x`` (the demand, the lead-time rows and what the packs hold), and its cost is linear within each
  tier, so the best ``x`` is at a tier's ends or either side of the kink ``(b - a) / P``. The same holds for
  each offer given the others, and every kink lies within the packs that cover the site's whole demand: so
  some optimal plan has every offer at nothing, at a number of packs up to that, or at a tier's end, and only
  the other offers need be tried over those. That is a few thousand combinations for a site with three
  offers, evaluated together in NumPy.

A site whose offers would need more combinations than :data:`MAX_COMBINATIONS`, or that buys from two offers of
one supplier each with an order cost (one delivery would carry both), is left to the solver.

The sites alone keep the consortium's supplier limits: a supplier's capacity is shared among them. When the
sites' own best plans together ask an offer for more than its capacity, the drug is planned by the solver, every
site alone at its own tier but within the one capacity (:func:`sites_alone` says which drugs).

A supplier's delivery to a site carries whatever drugs the site buys from it, and its order cost is paid once:
when the drugs are planned one by one, each pays the price it is given for each delivery it uses (``charges``,
see :mod:`optimizer.planner`), and the plans are re-costed with each delivery paid once.

Within a budget, what a site alone may spend depends on the other sites. A price on spending moves neither the
kinks nor the tiers' ends, so the combinations tried hold the site's best plan at every price: the plans on
their lower convex hull of cost against spending (:func:`site_plans`) are what the sites share the budget over.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from optimizer.budget import lower_hull
from optimizer.lines import EPS
from optimizer.model import (
    DELIVERY,
    Charge,
    first_needed,
    is_sunk,
    is_usable,
    packs_limit,
    reachable_tiers,
    spending_cap,
    unavoidable_waste,
    used_by,
    value_at_risk,
)
from optimizer.plan import Costs
from optimizer.problem import Demand, Lot, Offer, Problem

MAX_COMBINATIONS = 200_000  # of the packs of a site's offers but one; beyond it the site goes to the solver


@dataclass(frozen=True)
class SitePlan:
    """One plan of a site alone for one drug: its costs (the shared deliveries apart), what it pays for those at
    the price it was given (``shares``), the deliveries it uses, and the packs of each offer it buys."""

    costs: Costs
    shares: Costs = field(default_factory=Costs)
    charges: frozenset[Charge] = frozenset()
    packs: tuple[tuple[str, int], ...] = ()

    @property
    def proxy(self) -> Costs:
        return self.costs + self.shares


@dataclass(frozen=True)
class _Choice:
    """One offer as a site alone sees it: the packs it may take and their cost."""

    offer: Offer
    limit: int  # the most packs
    tier_low: np.ndarray  # each reachable tier's packs, from...
    tier_high: np.ndarray  # ...to
    tier_price: np.ndarray
    delivery: float
    order_cost: float  # what an order costs the site: the offer's own, or its deliveries at their price
    charges: frozenset[Charge] = frozenset()  # the shared deliveries an order uses

    @property
    def pack(self) -> int:
        return self.offer.pack_size

    def price(self, packs: np.ndarray) -> np.ndarray:
        """Price per pack at each number of packs (all-units: the tier the site's own volume reaches)."""
        k = np.searchsorted(self.tier_low, packs, side="right") - 1
        return np.where(packs > 0, self.tier_price[np.clip(k, 0, None)], 0.0)

    def costs(self, packs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Purchase, delivery and order cost of each number of packs."""
        return (self.price(packs) * packs, self.delivery * packs, np.where(packs > 0, self.order_cost, 0.0))

    def candidates(self, needed: int) -> np.ndarray:
        """The packs worth trying when the other offers are chosen after this one: none, every number up to
        the packs the whole demand needs, and each tier's ends."""
        values = {0, *range(int(self.tier_low[0]), min(self.limit, needed) + 1),
                  *self.tier_low.tolist(), *self.tier_high.tolist()}
        return np.array(sorted(values), dtype=np.int64)


def _choice(offer: Offer, demand: Demand, cap: float, charges: Mapping[Charge, float] | None) -> _Choice | None:
    needed = math.ceil(demand.units / offer.pack_size)
    # Alone, a site may top up to the last tier's volume, as in the model's baseline.
    limit = packs_limit(offer, demand.site, max(needed, offer.tiers[-1].min_packs), cap)
    if limit <= 0:
        return None
    reachable = list(reachable_tiers(offer, limit))
    if not reachable:
        return None  # below its minimum order: the site cannot buy from it alone
    order_cost, used = offer.order_cost, frozenset[Charge]()
    if charges is not None:
        used = frozenset(k for k in charges if k.kind == DELIVERY and k.origin == offer.supplier
                         and k.site == demand.site and k.level <= offer.order_cost + 1e-12)
        order_cost = sum(charges[k] for k in used)
    return _Choice(offer, limit, np.array([max(tier.min_packs, 1) for _, tier, _ in reachable], dtype=np.int64),
                   np.array([high for _, _, high in reachable], dtype=np.int64),
                   np.array([tier.price_per_pack for _, tier, _ in reachable]),
                   offer.delivery_cost_per_pack.get(demand.site, 0.0), order_cost, used)


def _stock_used(demand: Demand, lots: Sequence[Lot], horizon: int) -> dict[str, int]:
    """Units of each of the site's own lots (on hand) it uses: the most it can, and of that the most valuable
    waste avoided (greedy on the nested limits: stock expiring by day T meets at most the use by day T, for every T
    up to the horizon; stock lasting beyond it, any unit)."""
    used: dict[str, int] = {}
    limits = sorted({lot.expires_in_days for lot in lots if lot.expires_in_days <= horizon})
    taken = dict.fromkeys(limits, 0)  # units taken from lots expiring within each limit
    total = 0
    at_stake = sorted(lots, key=lambda lot: (-(lot.unit_value if lot.expires_in_days <= horizon else 0.0), lot.id))
    for lot in at_stake:
        room = min(lot.quantity, demand.units - total)
        within = [t for t in limits if t >= lot.expires_in_days] if lot.expires_in_days <= horizon else []
        for t in within:
            room = min(room, used_by(demand, t, horizon) - taken[t])
        room = max(0, room)
        used[lot.id] = room
        total += room
        for t in within:
            taken[t] += room
    return used


def _purchases(demand: Demand, need: int, choices: list[_Choice], penalty: float, every_price: bool,
               horizon: int, priced: bool) -> list[SitePlan] | None:
    """The packs (or shortage) for ``need`` units of the site's demand left after its stock that some price of
    spending makes cheapest, from the plan spending least to the cheapest (see :func:`_frontier`); or, unless
    ``every_price``, only the cheapest. ``priced``: the orders' cost is the deliveries' price (``shares``)."""
    if not choices:
        return [SitePlan(Costs(shortage=penalty * need))]
    needed = {c.offer.id: math.ceil(demand.units / c.pack) for c in choices}
    grids = [c.candidates(needed[c.offer.id]) for c in choices]
    last = max(range(len(choices)), key=lambda n: len(grids[n]))  # solved in closed form, the rest tried
    others = [n for n in range(len(choices)) if n != last]
    if math.prod(len(grids[n]) for n in others) > MAX_COMBINATIONS:
        return None
    mesh = np.meshgrid(*(grids[n] for n in others), indexing="ij") if others else []
    packs = {n: m.ravel() for n, m in zip(others, mesh, strict=True)}
    rows = next(iter(packs.values())).size if packs else 1
    c = choices[last]

    # What the purchases can meet: the need, all they hold, and for each lead time L the demand after day L
    # plus what faster offers hold. ``a`` gathers the terms that hold the last offer's packs, ``b`` the rest.
    def holds(selected: list[int]) -> np.ndarray:
        return sum((packs[n] * choices[n].pack for n in selected), np.zeros(rows))

    a = holds(others)
    b = np.full(rows, float(need))
    for lead in sorted({ch.offer.lead_time_days for ch in choices if ch.offer.lead_time_days > 0}):
        after = demand.units - first_needed(demand, lead, horizon)
        term = after + holds([n for n in others if choices[n].offer.lead_time_days < lead])
        if c.offer.lead_time_days < lead:
            a = np.minimum(a, term)
        else:
            b = np.minimum(b, term)
    kink = (b - a) / c.pack
    tries = [np.zeros(rows)]
    for low, high in zip(c.tier_low.tolist(), c.tier_high.tolist(), strict=True):
        tries += [np.full(rows, float(low)), np.full(rows, float(high)),
                  np.clip(np.floor(kink), low, high), np.clip(np.ceil(kink), low, high)]
    x = np.stack(tries, axis=1).astype(np.int64)  # rows x tries
    met = np.minimum(a[:, None] + c.pack * x, b[:, None])
    purchase, delivery, order = c.costs(x)
    for n in others:
        p, d, o = choices[n].costs(packs[n])
        purchase, delivery, order = purchase + p[:, None], delivery + d[:, None], order + o[:, None]
    shortage = penalty * (need - met)
    kept = _frontier(purchase, delivery, order, shortage) if every_price else \
        [int(np.argmin((purchase + delivery + order + shortage).ravel()))]
    plans = []
    for cell in kept:
        row, column = divmod(cell, x.shape[1])
        bought = {choices[n].offer.id: int(packs[n][row]) for n in others} | {c.offer.id: int(x[row, column])}
        used = frozenset().union(*(ch.charges for ch in choices if bought[ch.offer.id] > 0))
        orders = float(order.flat[cell])
        plans.append(SitePlan(Costs(purchase=float(purchase.flat[cell]), delivery=float(delivery.flat[cell]),
                                    order=0.0 if priced else orders, shortage=float(shortage.flat[cell])),
                              Costs(order=orders) if priced else Costs(), used,
                              tuple(sorted((k, v) for k, v in bought.items() if v > 0))))
    return plans


def _frontier(purchase: np.ndarray, delivery: np.ndarray, order: np.ndarray, shortage: np.ndarray) -> list[int]:
    """Of the plans tried (one per cell), those on the lower convex hull of cost against spending (their cells).

    A price on spending changes neither where the units met bend nor where the tiers change, so the plans tried
    hold the best at any price: the cheapest at that price lies on this hull. Without a budget only the last,
    cheapest, plan counts; within one, the baseline chooses along each site's hull (see
    :func:`optimizer.planner.baseline_costs`).
    """
    spending = (purchase + delivery + order).ravel()
    total = spending + shortage.ravel()
    ranked = np.lexsort((total, spending))  # by spending, then cost
    cheapest_before = np.minimum.accumulate(total[ranked])
    # A plan is worth its spending only if it costs less than every plan spending less.
    keep = ranked[np.concatenate(([True], total[ranked][1:] < cheapest_before[:-1] - EPS))]
    cells = [(int(k), Costs(purchase=float(purchase.flat[k]), delivery=float(delivery.flat[k]),
                            order=float(order.flat[k]), shortage=float(shortage.flat[k]))) for k in keep]
    return [k for k, _ in lower_hull(cells, lambda cell: cell[1])]


def site_alone(problem: Problem, demand: Demand, lots: Sequence[Lot] | None = None) -> Costs | None:
    """What the site of ``demand`` spends on its drug planned alone (``problem`` holds that drug; ``lots``, if
    given, are the site's own), the waste of its own lots included; None if it is left to the solver (see the
    module's note)."""
    plans = site_plans(problem, demand, lots, every_price=False)
    return None if plans is None else plans[-1]


def site_plans(problem: Problem, demand: Demand, lots: Sequence[Lot] | None = None, *,
               every_price: bool = True) -> list[Costs] | None:
    """The plans of the site of ``demand`` alone that some price of spending makes cheapest, from the one
    spending least (nothing bought) to the cheapest, as :func:`site_alone` costs them (only the cheapest, unless
    ``every_price``: finding them all takes half as long again). Each order costs the offer's order cost."""
    plans = _site_plans(problem, demand, lots, every_price, None)
    return None if plans is None else [plan.proxy for plan in plans]


def _site_plans(problem: Problem, demand: Demand, lots: Sequence[Lot] | None, every_price: bool,
                charges: Mapping[Charge, float] | None) -> list[SitePlan] | None:
    horizon, site = problem.horizon_days, demand.site
    mine = [lot for lot in (problem.lots if lots is None else lots) if lot.site == site and is_usable(lot, horizon)]
    if any(lot.arrives_in_days > 0 for lot in mine):
        return None  # stock arriving later meets only later units: the solver plans it
    used = _stock_used(demand, mine, horizon)
    penalty = problem.penalty(demand.drug)
    cap = spending_cap(demand, mine, penalty, horizon)
    choices = [c for offer in sorted(problem.offers, key=lambda o: o.id)
               if site in problem.delivery_sites(offer)
               if (c := _choice(offer, demand, cap, charges)) is not None]
    ordering = [c.offer.supplier for c in choices if c.offer.order_cost > 0]
    if len(ordering) != len(set(ordering)):
        return None  # two offers of one supplier share a delivery: the solver plans it
    bought = _purchases(demand, demand.units - sum(used.values()), choices, penalty, every_price, horizon,
                        charges is not None)
    if bought is None:
        return None
    waste = Costs(waste=sum((lot.quantity - used[lot.id]) * lot.unit_value
                            for lot in mine if lot.expires_in_days <= horizon))
    return [replace(plan, costs=plan.costs + waste) for plan in bought]


def sites_alone(problem: Problem, every_price: bool = False, charges: Mapping[Charge, float] | None = None
                ) -> tuple[Costs, list[list[SitePlan]], list[Problem]]:
    """Every site of one drug planned alone: the waste of stock no site can use alone (at sites without demand
    for it, or already expired), each site's plans (see :func:`site_plans`; ``charges``: each delivery's price),
    and what is left to the solver, each as a problem of its own (no arcs): a site, or the whole drug when the
    sites' own plans together ask a supplier for more than its capacity."""
    lots: dict[str, list[Lot]] = {}
    for lot in problem.lots:
        lots.setdefault(lot.site, []).append(lot)
    plans, left = [], []
    for demand in problem.demands:
        if demand.units <= 0:
            continue
        mine = lots.get(demand.site, [])
        alone = _site_plans(problem, demand, mine, every_price, charges)
        if alone is None:
            left.append(replace(problem, demands=(demand,), arcs=(),
                                lots=tuple(lot for lot in mine if is_usable(lot, problem.horizon_days))))
        else:
            plans.append(alone)
    for offer in problem.offers:
        if offer.capacity_packs is None:
            continue
        asked = sum(max((dict(plan.packs).get(offer.id, 0) for plan in site), default=0) for site in plans)
        if asked > offer.capacity_packs or (left and (asked or len(left) > 1)):
            wanted = {d.site for d in problem.demands if d.units > 0}
            whole = replace(problem, arcs=(), lots=tuple(lot for lot in problem.lots if lot.site in wanted
                                                          and is_usable(lot, problem.horizon_days)))
            return unplanned_waste(problem), [], [whole]
    return unplanned_waste(problem), plans, left


def unplanned_waste(problem: Problem) -> Costs:
    """Waste no site can prevent alone: lots already expired (or expiring before they arrive), and lots at sites
    without demand for the drug that expire within the horizon. (All of it counted as waste here: what of it no
    plan could prevent at all is :func:`optimizer.model.unavoidable_waste`.)"""
    wanted = {(d.site, d.drug) for d in problem.demands if d.units > 0}
    sunk = sum(lot.quantity * lot.unit_value for lot in problem.lots if is_sunk(lot, problem.horizon_days))
    return Costs(waste=sunk + value_at_risk((lot for lot in problem.lots if (lot.site, lot.drug) not in wanted),
                                            problem.horizon_days))


def baseline_waste(problem: Problem) -> float:
    """The value of the stock of ``problem`` (one drug or many) that no plan can use in time."""
    return sum(unavoidable_waste(problem, drug) for drug in problem.drugs)
