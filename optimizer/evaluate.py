"""The rules a plan's purchases and transfers must keep, checked one by one so that an edited plan is told
exactly what it breaks and where (the model could only answer "infeasible")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from optimizer.problem import Decisions, Problem

TOLERANCE = 1e-6


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``where`` names the line (offer and site, or lot and site)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def check_decisions(problem: Problem, decisions: Decisions) -> list[Violation]:
    """Every rule the decisions break: whole packs, deliveries, minimum orders, capacity, allowed transfers of
    whole units, stock on hand, and stock moved no faster than its new site can use it before it expires."""
    offers = {o.id: o for o in problem.offers}
    lots = {lot.id: lot for lot in problem.lots}
    demands = {(d.site, d.drug): d for d in problem.demands if d.units > 0}
    arcs = {(a.from_site, a.to_site) for a in problem.arcs}
    broken: list[Violation] = []
    pooled: dict[str, int] = defaultdict(int)
    for (offer_id, site), packs in sorted(decisions.purchases.items()):
        where = f"purchase of offer {offer_id} for {site}"
        offer = offers.get(offer_id)
        if offer is None:
            broken.append(Violation(where, "no such offer in this plan's inputs"))
            continue
        if packs != int(packs) or packs < 0:
            broken.append(Violation(where, f"{packs} is not a whole, non-negative number of packs"))
            continue
        if packs == 0:
            continue
        if (site, offer.drug) not in demands:
            broken.append(Violation(where, f"{site} has no demand for {offer.drug} in this plan"))
        if offer.delivery_cost_per_pack and site not in offer.delivery_cost_per_pack:
            broken.append(Violation(where, f"supplier {offer.supplier} does not deliver to {site}"))
        pooled[offer_id] += int(packs)
    for offer_id, packs in sorted(pooled.items()):
        offer = offers[offer_id]
        if packs < offer.minimum_order_packs:
            broken.append(Violation(f"offer {offer_id}", f"{packs} packs in all is below its minimum order of "
                                                         f"{offer.minimum_order_packs} packs"))
        if offer.capacity_packs is not None and packs > offer.capacity_packs:
            broken.append(Violation(f"offer {offer_id}", f"{packs} packs in all exceed the supplier's capacity of "
                                                         f"{offer.capacity_packs} packs"))
    moved: dict[str, float] = defaultdict(float)
    for (lot_id, site), units in sorted(decisions.transfers.items()):
        where = f"transfer of lot {lot_id} to {site}"
        lot = lots.get(lot_id)
        if lot is None:
            broken.append(Violation(where, "no such lot in this plan's inputs"))
            continue
        if units <= 0 or units != int(units):
            broken.append(Violation(where, f"{units:g} units: a transfer moves a whole, positive number of units"))
            continue
        moved[lot_id] += units
        if lot.site == site:
            broken.append(Violation(where, "the lot is already there"))
            continue
        if (lot.site, site) not in arcs:
            broken.append(Violation(where, f"the consortium does not allow transfers from {lot.site} to {site}"))
            continue
        if lot.expires_in_days <= 0:
            broken.append(Violation(where, "the lot has expired"))
            continue
        need = demands.get((site, lot.drug))
        if need is None:
            broken.append(Violation(where, f"{site} has no demand for {lot.drug} in this plan"))
            continue
        can_use = min(need.units, need.units_within(min(lot.expires_in_days, problem.horizon_days)))
        if units > can_use + TOLERANCE:
            broken.append(Violation(where, f"{site} can use only {can_use:.0f} units of it before it expires in "
                                           f"{lot.expires_in_days} days, not {units:g}"))
    for lot_id, units in sorted(moved.items()):
        if units > lots[lot_id].quantity + TOLERANCE:
            broken.append(Violation(f"lot {lot_id}", f"{units:g} units moved but only {lots[lot_id].quantity} "
                                                     "on hand"))
    return broken
