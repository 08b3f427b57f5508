"""A second formulation of the planning problem, written as matrices and solved with scipy's ``milp``.

It shares no code with ``optimizer.model``: tiers are disaggregated by site (packs bought at tier k for
site i) instead of one quantity per tier, and stock comes in whole units because its variables are integer
(the model's are continuous, with whole limits), so agreement between the two is a real check.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix

from optimizer import Problem


class _Builder:
    def __init__(self) -> None:
        self.cost: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[int] = []
        self.rows: list[tuple[dict[int, float], float, float]] = []

    def var(self, cost: float, lower: float, upper: float, integer: bool = False) -> int:
        self.cost.append(cost)
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(1 if integer else 0)
        return len(self.cost) - 1

    def row(self, terms: dict[int, float], low: float, high: float) -> None:
        self.rows.append((terms, low, high))


def reference_optimum(problem: Problem) -> float:
    b = _Builder()
    constant = 0.0
    H = problem.horizon_days
    for drug in problem.drugs:
        demands = {d.site: d for d in problem.demands if d.drug == drug and d.units > 0}
        supply: dict[str, dict[int, float]] = defaultdict(dict)
        lead: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for offer in [o for o in problem.offers if o.drug == drug]:
            reach = [s for s in sorted(demands)
                     if not offer.delivery_cost_per_pack or s in offer.delivery_cost_per_pack]
            if not reach:
                continue
            hub = min(reach, key=lambda s: (offer.delivery_cost_per_pack.get(s, 0.0), s))
            ub = {}
            need = {s: math.ceil(demands[s].units / offer.pack_size) for s in reach}
            for s in reach:
                u = need[s] + (max(0, offer.tiers[-1].min_packs - sum(need.values())) if s == hub else 0)
                ub[s] = min(u, offer.capacity_packs) if offer.capacity_packs is not None else u
            total_ub = sum(ub.values()) if offer.capacity_packs is None else min(sum(ub.values()), offer.capacity_packs)
            packs_at: dict[str, dict[int, float]] = defaultdict(dict)
            one_tier: dict[int, float] = {}
            all_packs: dict[int, float] = {}
            for k, tier in enumerate(offer.tiers):
                hi = offer.tiers[k + 1].min_packs - 1 if k + 1 < len(offer.tiers) else total_ub
                hi = min(hi, total_ub)
                if hi < max(tier.min_packs, 1):
                    continue
                z = b.var(0.0, 0, 1, True)
                one_tier[z] = 1.0
                in_tier: dict[int, float] = {z: -float(max(tier.min_packs, 0))}
                in_tier_hi: dict[int, float] = {z: -float(hi)}
                for s in reach:
                    x = b.var(tier.price_per_pack + offer.delivery_cost_per_pack.get(s, 0.0), 0, ub[s], True)
                    packs_at[s][x] = 1.0
                    all_packs[x] = 1.0
                    in_tier[x] = 1.0
                    in_tier_hi[x] = 1.0
                b.row(in_tier, 0, np.inf)
                b.row(in_tier_hi, -np.inf, 0)
            if not one_tier:
                continue
            b.row(one_tier, -np.inf, 1)
            if offer.capacity_packs is not None:
                b.row(all_packs, -np.inf, offer.capacity_packs)
            for s in reach:
                if offer.order_cost > 0:
                    y = b.var(offer.order_cost, 0, 1, True)
                    b.row({**packs_at[s], y: -float(ub[s])}, -np.inf, 0)
                g = b.var(0.0, 0, demands[s].units, True)
                b.row({g: 1.0, **{x: -float(offer.pack_size) for x in packs_at[s]}}, -np.inf, 0)
                supply[s][g] = 1.0
                if offer.lead_time_days > 0:
                    lead[s].append((offer.lead_time_days, g))
        for s, entries in lead.items():
            for L in {days for days, _ in entries}:
                b.row({g: 1.0 for days, g in entries if days >= L}, -np.inf,
                      max(0.0, demands[s].units - demands[s].daily_usage * L))
        arcs = defaultdict(list)
        for a in problem.arcs:
            if a.to_site in demands and a.from_site != a.to_site:
                arcs[a.from_site].append(a)
        expiring: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for lot in [x for x in problem.lots if x.drug == drug and x.quantity > 0]:
            if lot.expires_in_days <= 0:
                constant += lot.quantity * lot.unit_value
                continue
            own = demands.get(lot.site)
            # What its own site cannot use: it uses whole units, the whole part of its usage until expiry.
            surplus = lot.quantity - (min(lot.quantity, own.units,
                                          math.floor(own.daily_usage * min(lot.expires_in_days, H) + 1e-9))
                                      if own else 0)
            targets = ([(lot.site, 0.0)] if own else []) + \
                ([(a.to_site, a.unit_cost) for a in arcs.get(lot.site, [])] if surplus > 0 else [])
            lot_row: dict[int, float] = {}
            moved: dict[int, float] = {}
            for site, unit_cost in targets:
                need = demands[site]
                cap = min(lot.quantity, need.units, need.daily_usage * min(lot.expires_in_days, H))
                if cap <= 0:
                    continue
                u = b.var(unit_cost, 0, cap, True)
                lot_row[u] = 1.0
                supply[site][u] = 1.0
                if site != lot.site:
                    moved[u] = 1.0
                if lot.expires_in_days < H:
                    expiring[site].append((lot.expires_in_days, u))
            if moved:
                b.row(moved, -np.inf, surplus)
            if lot.expires_in_days <= H:
                w = b.var(lot.unit_value, 0, lot.quantity, True)
                b.row({**lot_row, w: 1.0}, lot.quantity, lot.quantity)
            elif lot_row:
                b.row(lot_row, -np.inf, lot.quantity)
        for s, entries in expiring.items():
            for T in {days for days, _ in entries}:
                b.row({u: 1.0 for days, u in entries if days <= T}, -np.inf, demands[s].daily_usage * T)
        penalty = problem.penalty(drug)
        for s, need in demands.items():
            short = b.var(penalty, 0, need.units, True)
            b.row({**supply[s], short: 1.0}, need.units, need.units)
    if not b.cost:
        return constant
    matrix = lil_matrix((len(b.rows), len(b.cost)))
    low, high = [], []
    for r, (terms, lo, hi) in enumerate(b.rows):
        for col, coef in terms.items():
            matrix[r, col] = coef
        low.append(lo)
        high.append(hi)
    result = milp(np.array(b.cost), integrality=np.array(b.integer), bounds=Bounds(b.lower, b.upper),
                  constraints=[LinearConstraint(matrix.tocsr(), low, high)],
                  options={"mip_rel_gap": 1e-9, "time_limit": 120})
    assert result.status == 0, result.message
    return float(result.fun) + constant
