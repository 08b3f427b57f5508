"""Realistic consortia of any size, seeded and deterministic, for tests and benchmarks.

A lead hospital, some hospitals and many grassroots sites grouped in districts; transfers allowed within a
district and between a hospital and the grassroots sites under it; a few suppliers (distribution
companies) each offering part of the catalog with volume tiers, minimum orders and delivery costs; lots on
hand, some close to expiry.
"""

from __future__ import annotations

import math
import random

from optimizer.problem import Arc, Demand, DrugPolicy, Lot, Offer, Problem, Tier

HORIZON_DAYS = 30


def consortium(*, hospitals: int = 5, grassroots: int = 40, drugs: int = 1500, suppliers: int | None = None,
               seed: int = 1, budget_share: float | None = None, district_size: int = 8) -> Problem:
    """A consortium of 1 lead + ``hospitals`` + ``grassroots`` sites and ``drugs`` catalog drugs.

    ``budget_share`` caps spending at that share of what the plan would spend unconstrained (roughly:
    of the forecast demand at base prices); None means no budget.
    """
    rng = random.Random(seed)
    suppliers = suppliers if suppliers is not None else rng.randint(3, 6)
    lead = "L0"
    upper = [lead] + [f"H{n}" for n in range(1, hospitals + 1)]
    lower = [f"G{n}" for n in range(1, grassroots + 1)]
    parent = {g: upper[n % len(upper)] for n, g in enumerate(lower)}
    district = {g: f"D{n // district_size}" for n, g in enumerate(lower)}
    sites = upper + lower
    arcs: list[Arc] = []
    by_district: dict[str, list[str]] = {}
    for g in lower:
        by_district.setdefault(district[g], []).append(g)
    for members in by_district.values():
        for a in members:
            arcs.extend(Arc(a, b, round(rng.uniform(0.02, 0.08), 3), 0.0) for b in members if a != b)
    for g, p in parent.items():
        cost = round(rng.uniform(0.03, 0.12), 3)
        arcs += [Arc(p, g, cost), Arc(g, p, cost)]
    names = [f"S{n}" for n in range(1, suppliers + 1)]
    demands: list[Demand] = []
    offers: list[Offer] = []
    lots: list[Lot] = []
    policies: list[DrugPolicy] = []
    for d in range(drugs):
        drug = f"DR{d:05d}"
        essential = rng.random() < 0.4
        unit_price = math.exp(rng.gauss(0.0, 1.0))  # yuan per dispensing unit, median 1
        pack = rng.choice([7, 10, 12, 14, 24, 28, 30, 48, 100])
        total = 0
        for site in sites:
            carries = 0.85 if site in upper else (0.5 if essential else 0.15)
            if rng.random() > carries:
                continue
            usage = math.exp(rng.gauss(1.2 if site in upper else 0.0, 0.8))
            units = math.ceil(usage * HORIZON_DAYS * 1.15)  # forecast plus safety stock
            demands.append(Demand(site, drug, units, round(usage, 3)))
            total += units
            for n in range(rng.choice([0, 1, 1, 2])):
                expires = rng.choice([-3, 6, 12, 20, 45, 120, 400])
                quantity = math.ceil(usage * rng.uniform(3, 40))
                lots.append(Lot(f"{drug}-{site}-{n}", site, drug, quantity, expires, round(unit_price, 4)))
        if total == 0:
            continue
        policies.append(DrugPolicy(drug, round(unit_price * (6.0 if essential else 3.0), 4), essential))
        total_packs = math.ceil(total / pack)
        for supplier in rng.sample(names, k=min(len(names), rng.randint(2, 3))):
            base = unit_price * pack * rng.uniform(0.9, 1.2)
            first, second = max(2, round(total_packs * 0.3)), max(3, round(total_packs * 0.8))
            tiers = (Tier(rng.choice([0, 0, 2, 5]), round(base, 2)), Tier(max(first, 6), round(base * 0.95, 2)),
                     Tier(max(second, max(first, 6) + 1), round(base * 0.9, 2)))
            delivery = {s: round(rng.uniform(0.2, 1.5), 2) for s in sites}
            offers.append(Offer(f"{supplier}-{drug}", supplier, drug, pack, tiers, rng.randint(1, 7),
                                None if rng.random() < 0.7 else math.ceil(total_packs * 1.2), delivery,
                                rng.choice([0.0, 0.0, 5.0, 10.0])))
    budget = None
    if budget_share is not None:
        budget = budget_share * sum(d.units for d in demands) * 1.0
    return Problem(HORIZON_DAYS, tuple(demands), tuple(offers), tuple(lots), tuple(arcs), tuple(policies), budget)


def city(seed: int = 1, drugs: int = 1500) -> Problem:
    """A city "1+X" consortium: 1 lead, 5 hospitals, 40 grassroots sites, 1,500 drugs, 3-6 suppliers."""
    return consortium(hospitals=5, grassroots=40, drugs=drugs, seed=seed)


def province(seed: int = 1, drugs: int = 2000) -> Problem:
    """A province-wide platform: 1,000 sites, 2,000 drugs."""
    return consortium(hospitals=49, grassroots=950, drugs=drugs, seed=seed, district_size=12)
