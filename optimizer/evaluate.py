"""The rules a plan's purchases and moves must keep, checked one by one so that an edited plan is told exactly
what it breaks and where (the model could only answer "infeasible")."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from optimizer.model import first_needed, is_sunk, used_by
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
    """Every rule the decisions break: whole packs, deliveries, minimum orders, capacity; moves of whole units
    along allowed arcs, of stock that is there to move (a lot where it lies or has been moved to, packs bought
    for the site they leave); and stock left at a site no faster than it can use it before it expires."""
    offers = {o.id: o for o in problem.offers}
    lots = {lot.id: lot for lot in problem.lots}
    demands = {(d.site, d.drug): d for d in problem.demands if d.units > 0}
    arcs = {(a.from_site, a.to_site) for a in problem.arcs}
    broken: list[Violation] = []
    pooled: dict[str, int] = defaultdict(int)
    held: dict[tuple[str, str], float] = defaultdict(float)  # (stock, site) -> units there before any move
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
        if site not in problem.delivery_sites(offer):
            broken.append(Violation(where, f"supplier {offer.supplier} does not deliver to {site}"))
        pooled[offer_id] += int(packs)
        held[(offer_id, site)] += int(packs) * offer.pack_size
    for offer_id, packs in sorted(pooled.items()):
        offer = offers[offer_id]
        if packs < offer.minimum_order_packs:
            broken.append(Violation(f"offer {offer_id}", f"{packs} packs in all is below its minimum order of "
                                                         f"{offer.minimum_order_packs} packs"))
        if offer.capacity_packs is not None and packs > offer.capacity_packs:
            broken.append(Violation(f"offer {offer_id}", f"{packs} packs in all exceed the supplier's capacity of "
                                                         f"{offer.capacity_packs} packs"))
    for each in lots.values():
        held[(each.id, each.site)] += each.quantity
    moved_in: dict[tuple[str, str], float] = defaultdict(float)
    moved_out: dict[tuple[str, str], float] = defaultdict(float)
    lines: list[tuple[tuple[str, str, str], float, str]] = []
    for (lot_id, site), units in sorted(decisions.transfers.items()):
        where = f"transfer of lot {lot_id} to {site}"
        if lot_id not in lots:
            broken.append(Violation(where, "no such lot in this plan's inputs"))
        else:
            lines.append(((lot_id, lots[lot_id].site, site), units, where))
    lines += [((stock, origin, site), units, f"move of {stock} from {origin} to {site}")
              for (stock, origin, site), units in sorted(decisions.moves.items())]
    for (stock, origin, site), units, where in lines:
        lot = lots.get(stock)
        if lot is None and stock not in offers:
            broken.append(Violation(where, "no such lot or offer in this plan's inputs"))
            continue
        if units <= 0 or units != int(units):
            broken.append(Violation(where, f"{units:g} units: a transfer moves a whole, positive number of units"))
            continue
        if origin == site:
            broken.append(Violation(where, "the lot is already there" if lot is not None else "it is already there"))
            continue
        if (origin, site) not in arcs:
            broken.append(Violation(where, f"the consortium does not allow transfers from {origin} to {site}"))
            continue
        if lot is not None and is_sunk(lot, problem.horizon_days):
            broken.append(Violation(where, "the lot has expired"))
            continue
        moved_out[(stock, origin)] += units
        moved_in[(stock, site)] += units
    for (stock, origin), units in sorted(moved_out.items()):
        there = held.get((stock, origin), 0.0) + moved_in.get((stock, origin), 0.0)
        if units > there + TOLERANCE:
            if stock in lots and origin == lots[stock].site and not moved_in.get((stock, origin)):
                broken.append(Violation(f"lot {stock}", f"{units:g} units moved but only {lots[stock].quantity} "
                                                        "on hand"))
            else:
                broken.append(Violation(f"{stock} at {origin}", f"{units:g} units moved on but only {there:g} there"))
    for (stock, site), units in sorted(moved_in.items()):
        moved = lots.get(stock)
        if moved is None:
            continue
        stays = units - moved_out.get((stock, site), 0.0)
        if stays <= TOLERANCE:
            continue
        where = f"transfer of lot {stock} to {site}"
        need = demands.get((site, moved.drug))
        if need is None:
            broken.append(Violation(where, f"{site} has no demand for {moved.drug} in this plan"))
            continue
        horizon = problem.horizon_days
        can_use = max(0, used_by(need, moved.expires_in_days, horizon) - first_needed(need, moved.arrives_in_days,
                                                                                      horizon))
        if stays > can_use + TOLERANCE:
            broken.append(Violation(where, f"{site} can use only {can_use:.0f} units of it before it expires in "
                                           f"{moved.expires_in_days} days, not {stays:g}"))
    return broken
