"""What the planner is told: frozen dataclasses, no database, no Flask.

Quantities are in dispensing units unless a name says packs; money is in yuan; time in days from today.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property


@dataclass(frozen=True)
class Tier:
    """An all-units price: once the consortium's pooled order of an offer reaches ``min_packs``,
    every pack of it costs ``price_per_pack``."""

    min_packs: int
    price_per_pack: float


@dataclass(frozen=True)
class Offer:
    """A supplier's price list for one drug."""

    id: str
    supplier: str
    drug: str
    pack_size: int
    tiers: tuple[Tier, ...]  # ascending min_packs; the first tier's min_packs is the minimum order
    lead_time_days: int = 0
    capacity_packs: int | None = None
    delivery_cost_per_pack: Mapping[str, float] = field(default_factory=dict)  # site -> cost; absent = no delivery
    order_cost: float = 0.0  # fixed cost of each order (one per site the offer delivers to)

    def __post_init__(self) -> None:
        if not self.tiers or any(b.min_packs <= a.min_packs for a, b in zip(self.tiers, self.tiers[1:], strict=False)):
            raise ValueError(f"offer {self.id}: tiers must be given in ascending min_packs")
        if self.pack_size <= 0 or self.tiers[0].min_packs < 0:
            raise ValueError(f"offer {self.id}: pack size must be positive and minimum order non-negative")

    @property
    def minimum_order_packs(self) -> int:
        return self.tiers[0].min_packs


@dataclass(frozen=True)
class Lot:
    """Stock of one lot of one drug at one site: on hand, or arriving on a known day (a purchase order not yet
    received, or a transfer shipped and not yet received; it is usable from that day on, and may move on from
    there)."""

    id: str
    site: str
    drug: str
    quantity: int
    expires_in_days: int  # 0 or less: already expired
    unit_value: float  # what a wasted unit costs
    arrives_in_days: int = 0  # 0: on hand now


@dataclass(frozen=True)
class Demand:
    """A site's need for a drug over the horizon (forecast plus safety stock) and its daily usage."""

    site: str
    drug: str
    units: int
    daily_usage: float

    # Units are whole, so "at most the daily usage times T" is at most its whole part (the tolerance keeps
    # 0.29 x 100 = 28.999... from flooring to 28).
    def units_within(self, days: int) -> int:
        """Whole units the site uses in its first ``days`` days: the most it can take from a lot expiring then."""
        return math.floor(self.daily_usage * days + 1e-9)

    def units_before_expiry(self, lot: Lot, horizon: int) -> int:
        """The most units of ``lot`` the site can use: before it expires, within the horizon and its demand."""
        return min(lot.quantity, self.units, self.units_within(min(lot.expires_in_days, horizon)))

    def units_after(self, days: int) -> int:
        """Whole units of demand after day ``days``: the most that stock arriving then can meet."""
        return max(0, math.floor(self.units - self.daily_usage * days + 1e-9))


@dataclass(frozen=True)
class Arc:
    """A transfer the consortium allows (e.g. within a district or under a distance)."""

    from_site: str
    to_site: str
    unit_cost: float
    fixed_cost: float = 0.0


@dataclass(frozen=True)
class DrugPolicy:
    drug: str
    shortage_penalty: float  # per unit short; essential drugs higher
    essential: bool = False


@dataclass(frozen=True)
class Decisions:
    """What a plan decides, as an officer may edit it: packs of each offer for each site, and units of stock
    moved between sites. The rest (tiers reached, stock used, shortages, waste) follows from these.

    ``transfers`` moves units of a lot from the site where it lies (or arrives); ``moves`` is any other move:
    ``(stock, from site, to site)``, where ``stock`` is a lot id (stock moving on from a site it was moved to) or
    an offer id (units of packs of that offer bought in the plan, moving on from the site they were delivered to).
    """

    purchases: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (offer, site) -> packs
    transfers: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (lot, to site) -> units
    moves: Mapping[tuple[str, str, str], float] = field(default_factory=dict)  # (lot or offer, from, to) -> units

    def for_drug(self, offers: set[str], lots: set[str]) -> Decisions:
        return Decisions({k: v for k, v in self.purchases.items() if k[0] in offers},
                         {k: v for k, v in self.transfers.items() if k[0] in lots},
                         {k: v for k, v in self.moves.items() if k[0] in offers or k[0] in lots})

    def all_moves(self, lots: Mapping[str, Lot]) -> dict[tuple[str, str, str], float]:
        """Every move as ``(stock, from site, to site) -> units``, the transfers from their lots' sites included."""
        moves: dict[tuple[str, str, str], float] = defaultdict(float)
        for (lot_id, site), units in self.transfers.items():
            if lot_id in lots:
                moves[(lot_id, lots[lot_id].site, site)] += units
        for key, units in self.moves.items():
            moves[key] += units
        return dict(moves)


@dataclass(frozen=True)
class Problem:
    horizon_days: int
    demands: tuple[Demand, ...]
    offers: tuple[Offer, ...]
    lots: tuple[Lot, ...] = ()
    arcs: tuple[Arc, ...] = ()
    policies: tuple[DrugPolicy, ...] = ()
    budget: float | None = None  # caps purchase + delivery + order spending across all drugs
    default_shortage_penalty: float = 1000.0

    def sites_for(self, drug: str) -> tuple[str, ...]:
        """The sites where stock of ``drug`` can be: those needing it or holding it, and every site on an
        allowed arc. An offer without a delivery list delivers to all of them."""
        return tuple(sorted({d.site for d in self.demands if d.drug == drug}
                            | {lot.site for lot in self.lots if lot.drug == drug}
                            | {a.from_site for a in self.arcs} | {a.to_site for a in self.arcs}))

    def delivery_sites(self, offer: Offer) -> tuple[str, ...]:
        """The sites ``offer`` delivers to (see :meth:`sites_for` for an offer without a delivery list)."""
        if offer.delivery_cost_per_pack:
            return tuple(sorted(offer.delivery_cost_per_pack))
        return self.sites_for(offer.drug)

    @cached_property
    def drugs(self) -> tuple[str, ...]:
        names = {d.drug for d in self.demands} | {o.drug for o in self.offers} | {lot.drug for lot in self.lots}
        return tuple(sorted(names))

    def penalty(self, drug: str) -> float:
        return next((p.shortage_penalty for p in self.policies if p.drug == drug), self.default_shortage_penalty)

    def for_drug(self, drug: str) -> Problem:
        """The part of the problem about one drug (arcs are shared)."""
        return replace(self, demands=tuple(d for d in self.demands if d.drug == drug),
                       offers=tuple(o for o in self.offers if o.drug == drug),
                       lots=tuple(lot for lot in self.lots if lot.drug == drug),
                       policies=tuple(p for p in self.policies if p.drug == drug), budget=None)

    def split_by_drug(self) -> list[Problem]:
        """One sub-problem per drug, built in one pass (``for_drug`` per drug would be quadratic)."""
        demands: dict[str, list[Demand]] = {}
        offers: dict[str, list[Offer]] = {}
        lots: dict[str, list[Lot]] = {}
        for d in self.demands:
            demands.setdefault(d.drug, []).append(d)
        for o in self.offers:
            offers.setdefault(o.drug, []).append(o)
        for lot in self.lots:
            lots.setdefault(lot.drug, []).append(lot)
        policies = {p.drug: p for p in self.policies}
        return [replace(self, demands=tuple(demands.get(drug, ())), offers=tuple(offers.get(drug, ())),
                        lots=tuple(lots.get(drug, ())),
                        policies=(policies[drug],) if drug in policies else (), budget=None)
                for drug in self.drugs]
