"""The planning problem written again from the consortium's rules, as one integer program over every drug, and
solved with scipy's ``milp``. It shares nothing with ``optimizer.model`` but the input dataclasses, and builds in
none of its groupings or bounds:

- every unit of demand, every unit of stock and every pack is an integer; stock is followed lot by lot (and each
  offer's packs site by site) along every arc it takes, and each site's demand unit by unit;
- a unit of demand is met by a unit of stock only if the rules let it: unit ``k`` of a site using ``u`` a day is
  needed from day ``(k - 1) / u`` (the horizon's last day for its safety stock, or if it uses none) to day ``k / u``
  (or beyond the horizon); stock meets it if it is at the site by the first (arrives by then: a lot's arrival day,
  a purchase's lead time) and has not expired by the second (or lasts beyond the horizon);
- tiers are priced by the packs bought for each site at each tier (one binary per tier and scope), orders and
  trips are binaries, each supplier's delivery to a site pays the dearest order cost on it once, each trip its
  fixed cost once, whatever drugs they carry;
- pack bounds come from cost alone: no plan worth making spends more than doing nothing costs.

``reference_costs`` gives the optimum with every waste counted; ``reference_unavoidable`` the least waste of any
plan (what no decision could prevent); the plan's decision costs are the first less the second.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, OptimizeResult, milp
from scipy.sparse import coo_matrix

from optimizer import Offer, Problem

TOL = 1e-9  # rounding noise of usage times days: 0.29 x 100 is 29 units


@dataclass
class _Program:
    cost: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    integer: list[int] = field(default_factory=list)
    rows: list[tuple[dict[int, float], float, float]] = field(default_factory=list)
    constant: float = 0.0

    def var(self, cost: float = 0.0, upper: float = np.inf, lower: float = 0.0) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(1)
        return len(self.cost) - 1

    def row(self, terms: dict[int, float], low: float, high: float) -> None:
        self.rows.append((terms, low, high))

    def solve(self) -> float:
        if not self.cost:
            return self.constant
        r, c, v = [], [], []
        for n, (terms, _, _) in enumerate(self.rows):
            for col, coef in terms.items():
                r.append(n)
                c.append(col)
                v.append(coef)
        matrix = coo_matrix((v, (r, c)), shape=(max(1, len(self.rows)), len(self.cost))).tocsr()
        low = [lo for _, lo, _ in self.rows] or [-np.inf]
        high = [hi for _, _, hi in self.rows] or [np.inf]

        def solved(presolve: bool) -> OptimizeResult:
            return milp(np.array(self.cost), integrality=np.array(self.integer),
                        bounds=Bounds(self.lower, self.upper), constraints=[LinearConstraint(matrix, low, high)],
                        options={"mip_rel_gap": 1e-10, "time_limit": 120, "presolve": presolve})

        result = solved(presolve=True)
        if result.status == 2:
            # Never true: doing nothing (every unit short, every lot left where it is) keeps every row. HiGHS's
            # presolve has declared feasible programs infeasible (ERGO-Code/HiGHS#1164, #3090): solve without it.
            result = solved(presolve=False)
        assert result.status == 0, result.message
        return float(result.fun) + self.constant


def _needed_from(k: int, usage: float, horizon: int) -> float:
    """The day unit ``k`` (from 1) of a site's demand is first needed."""
    if usage <= 0 or k - 1 >= usage * horizon - TOL:
        return float(horizon)  # safety stock: needed at the end of the horizon
    return (k - 1) / usage


def _met_by(k: int, usage: float, horizon: int, arrives: float, expires: float | None) -> bool:
    """Whether stock at the site from day ``arrives``, expiring on day ``expires`` (None: beyond the horizon),
    can meet unit ``k``."""
    start = _needed_from(k, usage, horizon)
    if usage > 0 and k - 1 < usage * horizon - TOL:
        if usage * arrives > (k - 1) + TOL:
            return False  # not there yet when the unit is first needed
    elif arrives > start:
        return False
    if expires is None or expires > horizon:
        return True
    return usage > 0 and k <= usage * expires + TOL  # used up by the day it expires


def _delivers(offer: Offer, problem: Problem) -> list[str]:
    if offer.delivery_cost_per_pack:
        return sorted(offer.delivery_cost_per_pack)
    sites = {d.site for d in problem.demands if d.drug == offer.drug} | \
        {lot.site for lot in problem.lots if lot.drug == offer.drug} | \
        {a.from_site for a in problem.arcs} | {a.to_site for a in problem.arcs}
    return sorted(sites)


def _build(problem: Problem, *, pooled: bool = True, moves: bool = True, purchases: bool = True,
           waste_only: bool = False) -> _Program:
    """The rules as one program. ``pooled``: tiers by the consortium's volume (else each site's own); ``moves``:
    stock may move along the arcs; ``purchases``: packs may be bought; ``waste_only``: only waste costs anything."""
    p = _Program()
    H = problem.horizon_days
    arcs = sorted({(a.from_site, a.to_site): a for a in problem.arcs if a.from_site != a.to_site}.items()) \
        if moves else []
    delivery_charge: dict[tuple[str, str], int] = {}  # (supplier, site) -> what its delivery costs
    arc_load: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    spending: dict[int, float] = {}
    for drug in problem.drugs:
        demands = {d.site: d for d in problem.demands if d.drug == drug and d.units > 0}
        penalty = problem.penalty(drug)
        lots = [lot for lot in problem.lots if lot.drug == drug and lot.quantity > 0]
        offers = [o for o in problem.offers if o.drug == drug] if purchases else []
        # Doing nothing costs every unit short and every lot expiring in the horizon wasted: no plan worth making
        # spends more, which bounds the packs.
        nothing = sum(penalty * d.units for d in demands.values()) + sum(
            lot.quantity * lot.unit_value for lot in lots if lot.expires_in_days <= H)
        # Sources of stock: each lot, and each offer's packs at each site it delivers to.
        sources: list[dict] = []
        for lot in lots:
            arrives = max(0, lot.arrives_in_days)
            if lot.expires_in_days <= H and lot.expires_in_days <= arrives:
                p.constant += lot.quantity * lot.unit_value  # expired before it can be used
                continue
            if arrives > H:
                continue  # arrives after the horizon: nothing to plan
            sources.append({"site": lot.site, "units": {}, "constant": lot.quantity, "arrives": arrives,
                            "expires": lot.expires_in_days if lot.expires_in_days <= H else None,
                            "value": lot.unit_value})
        pack_vars: dict[tuple[str, str], int] = {}
        for offer in offers:
            cheapest = min(t.price_per_pack for t in offer.tiers) or 1e-3
            most = math.floor(nothing / cheapest) + 1
            if offer.capacity_packs is not None:
                most = min(most, offer.capacity_packs)
            sites = [s for s in _delivers(offer, problem) if (pooled and moves) or s in demands]
            scopes = [("all", sites)] if pooled else [(s, [s]) for s in sites]
            per_site: dict[str, dict[int, float]] = defaultdict(dict)
            for _scope, members in scopes:
                one_tier: dict[int, float] = {}
                for k, tier in enumerate(offer.tiers):
                    top = offer.tiers[k + 1].min_packs - 1 if k + 1 < len(offer.tiers) else most
                    top = min(top, most)
                    if top < max(tier.min_packs, 1):
                        continue
                    on = p.var(upper=1)
                    one_tier[on] = 1.0
                    low_row, high_row = {on: -float(max(tier.min_packs, 1))}, {on: -float(top)}
                    for s in members:
                        price = 0.0 if waste_only else tier.price_per_pack + offer.delivery_cost_per_pack.get(s, 0.0)
                        x = p.var(price, upper=top)
                        per_site[s][x] = 1.0
                        low_row[x] = high_row[x] = 1.0
                        if not waste_only:
                            spending[x] = spending.get(x, 0.0) + price
                    p.row(low_row, 0, np.inf)
                    p.row(high_row, -np.inf, 0)
                if one_tier:
                    p.row(one_tier, -np.inf, 1)
            if offer.capacity_packs is not None:
                p.row({x: 1.0 for s in per_site for x in per_site[s]}, -np.inf, offer.capacity_packs)
            for s, packs in per_site.items():
                total = p.var(upper=most)
                p.row({**packs, total: -1.0}, 0, 0)
                pack_vars[(offer.id, s)] = total
                if offer.order_cost > 0 and not waste_only:
                    ordered = p.var(upper=1)
                    p.row({total: 1.0, ordered: -float(most)}, -np.inf, 0)
                    key = (offer.supplier, s)
                    if key not in delivery_charge:
                        delivery_charge[key] = p.var(cost=1.0, upper=np.inf)
                        spending[delivery_charge[key]] = 1.0
                        p.integer[delivery_charge[key]] = 0  # a cost, as dear as the dearest order on it
                    p.row({delivery_charge[key]: 1.0, ordered: -offer.order_cost}, 0, np.inf)
                sources.append({"site": s, "units": {total: float(offer.pack_size)}, "constant": 0,
                                "arrives": offer.lead_time_days, "expires": None, "value": 0.0})
        stock_bound = sum(src["constant"] for src in sources) + sum(
            offer.pack_size * (offer.capacity_packs or math.floor(nothing / (min(t.price_per_pack for t in
                                                                                 offer.tiers) or 1e-3)) + 1)
            for offer in offers)
        # Each site's demand, unit by unit, merged into runs of units that the same sources may meet.
        runs: dict[str, list[tuple[int, frozenset[int]]]] = {}
        for site, d in sorted(demands.items()):
            found: list[tuple[int, frozenset[int]]] = []
            for k in range(1, d.units + 1):
                eligible = frozenset(n for n, src in enumerate(sources) if _met_by(
                    k, d.daily_usage, H, src["arrives"], src["expires"]))
                if found and found[-1][1] == eligible:
                    found[-1] = (found[-1][0] + 1, eligible)
                else:
                    found.append((1, eligible))
            runs[site] = found
        met: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
        for n, src in enumerate(sources):
            # Where source n's units are: it starts at its site, moves along arcs, is used or left.
            balance: dict[str, dict[int, float]] = defaultdict(dict)
            start: dict[str, float] = defaultdict(float)
            start[src["site"]] += src["constant"]
            for var, per in src["units"].items():
                balance[src["site"]][var] = balance[src["site"]].get(var, 0.0) + per
            for (origin, site), arc in arcs:
                f = p.var(0.0 if waste_only else arc.unit_cost, upper=stock_bound)
                balance[origin][f] = balance[origin].get(f, 0.0) - 1.0
                balance[site][f] = balance[site].get(f, 0.0) + 1.0
                arc_load[(origin, site)][f] = 1.0
            for site in {src["site"]} | {s for key, _ in arcs for s in key}:
                for r, (size, eligible) in enumerate(runs.get(site, [])):
                    if n in eligible:
                        x = p.var(upper=size)
                        balance[site][x] = balance[site].get(x, 0.0) - 1.0
                        met[(site, r)][x] = 1.0
                left = p.var(src["value"] if src["expires"] is not None else 0.0)
                balance[site][left] = balance[site].get(left, 0.0) - 1.0
                p.row(balance[site], -start[site], -start[site])
        for site, found in runs.items():
            for r, (size, _) in enumerate(found):
                short = p.var(0.0 if waste_only else penalty, upper=size)
                p.row({**met[(site, r)], short: 1.0}, size, size)
        if waste_only:
            continue
    for (origin, site), arc in arcs:
        if arc.fixed_cost > 0 and not waste_only and arc_load[(origin, site)]:
            trip = p.var(arc.fixed_cost, upper=1)
            big = sum(p.upper[f] for f in arc_load[(origin, site)])
            p.row({**arc_load[(origin, site)], trip: -big}, -np.inf, 0)
    if problem.budget is not None and not waste_only:
        p.row(spending, -np.inf, problem.budget)
    return p


def reference_costs(problem: Problem, *, pooled: bool = True, moves: bool = True) -> float:
    """The least cost of a plan under the rules, every waste counted (``pooled=False, moves=False``: each site
    buying alone at its own tier, the same suppliers' limits and deliveries, nothing moving)."""
    return _build(problem, pooled=pooled, moves=moves).solve()


def reference_unavoidable(problem: Problem) -> float:
    """The least waste of any plan under the rules: stock already expired, or that no plan can use in time."""
    return _build(problem, purchases=False, waste_only=True).solve()
