"""The planning model of one drug (or several, tied by a budget or by charges they share), in PuLP.

The rules it plans by, per drug:

- **Demand in time.** A site using ``u`` a day needs its ``k``-th unit from day ``(k - 1) / u`` until day ``k / u``
  (the units beyond what it uses in the horizon, its safety stock, at the horizon's end). Stock expiring on day
  ``e`` meets only the units used up by then, ``floor(u e)`` of them (any unit, if it lasts beyond the horizon);
  stock arriving on day ``d`` (a purchase after its lead time, a lot on order or in transit) meets only the units
  needed from day ``d`` on, all but ``ceil(u d)``. So stock whose window is ``(d, e)`` meets the units numbered
  ``ceil(u d) + 1`` to ``floor(u e)``: an interval of the site's units.
- **Stock moves** along allowed arcs, as far as it saves money: any usable stock (lent, near expiry, just bought,
  or arriving), over as many arcs as it takes; each unit moved pays the arc's unit cost, and each trip between two
  sites its fixed cost, once whatever (and however many drugs) it carries.
- **Purchases** come in whole packs of an offer delivered to any site it delivers to, priced at the tier the
  consortium's pooled volume of the offer reaches (all-units; in the site-by-site baseline, each site's own),
  within the offer's minimum order and capacity. A supplier's delivery to a site costs its order cost once,
  whatever drugs it carries (the dearest order cost among the offers on it).
- What no unit meets is short (at the drug's penalty); stock expiring within the horizon that is not used is
  wasted (at its value). Stock already expired, or that no plan could use in time, is waste no decision can
  change: :func:`unavoidable_waste` is its value, reported apart (``Costs.unavoidable_waste``) and left out of
  the decision costs the model minimises.

Variables, per drug: stock is grouped into **classes**, stock whose units meet the same units of every site
(same window, same value if it expires within the horizon; bought packs of offers with the same lead time are one
class, lasting beyond the horizon). Each site's demand is cut into **groups**: the runs of units between the ends
of the windows of the classes that can reach it.

- ``buy[o,i]``  integer packs of offer o delivered to site i; ``tier[o,k]`` binary and ``tierpacks[o,k]`` the
  packs priced at tier k (one binary and one quantity per tier, no big-M); ``order[o,i]`` binary, when a delivery
  of the offer's supplier to i has an order cost
- ``flow[c,i,j]`` units of class c moved along arc (i, j); ``ship[i,j]`` binary, when the arc's trip has a cost
- ``use[c,j,m]`` units of class c meeting group m of site j's demand; ``short[j,m]`` units of it not met
- ``left[c,i]`` units of a class expiring within the horizon left unused at site i (wasted)

Rows: at each site, each class's stock (lots there, packs bought there, flows in) goes on (flows out), meets
demand or is left; each group of a site's demand is met or short. That is a network: every stock variable is an
arc between two of those rows. So once the packs, orders, tiers and trips are fixed the stock rows are totally
unimodular, every basic solution moves, uses, wastes and leaves short whole units, and no stock variable needs to
be integer. A demand group meets only classes whose window holds it: that is each site's "stock expiring by day
T meets at most its use by day T" for every T up to and including the horizon, and "stock arriving on day d meets
only the demand after d", each as the rules state them, for every lot however it is split.

Bounds that make the model smaller, each proved not to cost optimality:

- **Packs.** Some optimal plan buys, of offer o at site i, at most ``max(T, ceil(D / p))`` packs of ``p`` units,
  ``T`` being the offer's last tier minimum and ``D`` the demand of the sites i's stock can reach (its own included;
  in the baseline, its own): while the pooled volume is above ``T``, a pack none of whose units is used (unused
  units never need to move: not moving them costs no more) can be dropped at the same price per pack, its delivery
  and maybe an order saved; and once no site holds a whole pack unused, fewer than ``p`` of site i's units are
  unused, the rest meet distinct units of demand it can reach. Nor does an optimal plan spend more on a drug than
  buying nothing costs (every unit short, every lot at risk wasted). (Tests try to break both: a site buying for its
  neighbours, packs bought for the tier alone, a plan against the reference formulation.)
- **Where packs go.** An offer's packs go only to sites from which they can reach a site that can use them,
  unless the offer's volume earns something (a tier, or a minimum order): then to any site it delivers to, for the
  volume alone (a pack that no site can use earns nothing else, and costs at least nothing).
- **Arcs.** A class moves only along arcs that some stock of it can reach and from which a site it can meet is
  reachable (a unit moved anywhere else is never used: leaving it where it lies costs no more); and, when no trip
  has a fixed cost, only along arcs on a cheapest way from a site where some of it starts (any unit's way to
  where it is used can be replaced by a cheapest one, at no more cost).
- **Waste.** Stock expiring within the horizon is wasted only where it lies (moving it first and wasting it there
  costs no less); an edited plan's may be wasted wherever it was moved to.
- **Trips.** No optimal plan moves more units across an arc than the demand of the sites reachable beyond it:
  that bounds the trip's row.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pulp

from optimizer.problem import Arc, Decisions, Demand, Lot, Offer, Problem, Tier

Key = tuple[str, str]
Terms = list[tuple[pulp.LpVariable, float]]

DELIVERY, TRIP = "delivery", "trip"


@dataclass(frozen=True, order=True)
class Charge:
    """A fixed cost that every drug using it shares: a supplier's delivery to a site (``kind`` "delivery",
    ``origin`` the supplier; ``level`` one step of its order costs, see :func:`shared_charges`) or a trip along an
    arc (``kind`` "trip", from ``origin`` to ``site``)."""

    kind: str
    origin: str
    site: str
    level: float = 0.0


def shared_charges(problem: Problem, *, trips: bool = True) -> dict[Charge, float]:
    """Each fixed cost a plan pays once whatever drugs share it, and what it costs.

    A supplier's delivery to a site costs the dearest order cost among the offers it carries; with order costs
    ``v1 < v2 < ...`` among the supplier's offers, that is the sum of the steps ``v(k) - v(k-1)`` up to the dearest:
    a delivery step ``(supplier, site, v(k))`` is paid once if any offer of order cost ``v(k)`` or more is on the
    delivery. A trip along an arc with a fixed cost is paid once if anything moves along it.
    """
    charges: dict[Charge, float] = {}
    levels: dict[str, list[float]] = defaultdict(list)
    for offer in problem.offers:
        if offer.order_cost > 0:
            levels[offer.supplier].append(offer.order_cost)
    steps = {supplier: _steps(costs) for supplier, costs in levels.items()}
    for offer in problem.offers:
        for site in problem.delivery_sites(offer) if offer.order_cost > 0 else ():
            for level, step in steps[offer.supplier]:
                if level <= offer.order_cost + 1e-12:
                    charges[Charge(DELIVERY, offer.supplier, site, level)] = step
    for arc in problem.arcs if trips else ():
        if arc.fixed_cost > 0 and arc.from_site != arc.to_site:
            key = Charge(TRIP, arc.from_site, arc.to_site)
            charges[key] = min(charges.get(key, math.inf), arc.fixed_cost)
    return charges


def _steps(costs: Iterable[float]) -> list[tuple[float, float]]:
    """The distinct ``costs``, ascending, each with its step above the one before."""
    distinct = sorted(set(costs))
    return [(v, v - (distinct[n - 1] if n else 0.0)) for n, v in enumerate(distinct)]


def first_needed(demand: Demand, day: float, horizon: int) -> int:
    """How many of the site's units are needed before day ``day``: stock arriving then meets the others."""
    if day <= 0:
        return 0
    if day > horizon:
        return demand.units
    return min(demand.units, math.ceil(demand.daily_usage * day - 1e-9))


def used_by(demand: Demand, day: int | None, horizon: int) -> int:
    """How many of the site's units are used up by day ``day`` (None: after the horizon, all of them)."""
    if day is None or day > horizon:
        return demand.units
    return max(0, min(demand.units, math.floor(demand.daily_usage * day + 1e-9)))


@dataclass(frozen=True)
class StockClass:
    """Stock whose units meet the same units of every site: ``window`` is, for each site it may meet, the units
    it meets (those numbered ``low + 1`` to ``high``); ``value`` what a unit wasted costs (0 for stock lasting beyond
    the horizon, which is never wasted)."""

    window: tuple[tuple[str, int, int], ...]
    perishable: bool
    value: float

    @cached_property
    def meets(self) -> dict[str, tuple[int, int]]:
        return {site: (low, high) for site, low, high in self.window}


def _window(demands: Mapping[str, Demand], arrives: int, expires: int | None, horizon: int
            ) -> tuple[tuple[str, int, int], ...]:
    window = []
    for site, demand in sorted(demands.items()):
        low, high = first_needed(demand, arrives, horizon), used_by(demand, expires, horizon)
        if high > low:
            window.append((site, low, high))
    return tuple(window)


def lot_day(lot: Lot) -> int:
    """The day a lot can be used from (0: on hand)."""
    return max(0, lot.arrives_in_days)


def is_sunk(lot: Lot, horizon: int) -> bool:
    """A lot wasted whatever the plan does: expired already, or expiring within the horizon before it arrives."""
    return lot.quantity > 0 and lot.expires_in_days <= horizon and lot.expires_in_days <= lot_day(lot)


def is_usable(lot: Lot, horizon: int) -> bool:
    """A lot the plan can use: on hand or arriving within the horizon, not expired by then."""
    return lot.quantity > 0 and not is_sunk(lot, horizon) and lot_day(lot) <= horizon


@dataclass
class DrugModel:
    """One drug's variables and cost expressions inside a PuLP problem."""

    drug: str
    pooled: bool
    offers: dict[str, Offer]
    lots: dict[str, Lot]  # the usable lots
    demands: dict[str, Demand]
    horizon: int
    classes: list[StockClass] = field(default_factory=list)
    class_of_lot: dict[str, int] = field(default_factory=dict)
    class_of_offer: dict[str, int] = field(default_factory=dict)
    groups: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # site -> [(low, high)] of its units
    buy: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    tier_on: dict[tuple[str, str, int], pulp.LpVariable] = field(default_factory=dict)  # (offer, scope, k)
    tier_packs: dict[tuple[str, str, int], pulp.LpVariable] = field(default_factory=dict)
    order: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    flow: dict[tuple[int, str, str], pulp.LpVariable] = field(default_factory=dict)  # (class, from, to)
    use: dict[tuple[int, str, int], pulp.LpVariable] = field(default_factory=dict)  # (class, site, group)
    left: dict[tuple[int, str], pulp.LpVariable] = field(default_factory=dict)  # (class, site): wasted there
    short: dict[tuple[str, int], pulp.LpVariable] = field(default_factory=dict)  # (site, group)
    ship: dict[Key, pulp.LpVariable] = field(default_factory=dict)
    ship_rows: dict[Key, str] = field(default_factory=dict)
    arcs: dict[Key, Arc] = field(default_factory=dict)  # the arcs stock of this drug may move along
    indicators: dict[Charge, list[pulp.LpVariable]] = field(default_factory=dict)  # binaries that incur a charge
    triggers: dict[Charge, list[pulp.LpVariable]] = field(default_factory=dict)  # quantities that incur it
    costs: dict[str, pulp.LpAffineExpression] = field(default_factory=dict)
    priced: dict[str, pulp.LpAffineExpression] = field(default_factory=dict)  # shared charges at their price
    sunk: list[Lot] = field(default_factory=list)  # wasted whatever the plan: already expired
    unavoidable: float = 0.0  # the value of stock no plan can use in time, the sunk lots included

    @cached_property
    def offers_to(self) -> dict[str, list[str]]:
        """The offers that may deliver to each site, by id."""
        offers: dict[str, list[str]] = defaultdict(list)
        for offer_id, site in sorted(self.buy):
            offers[site].append(offer_id)
        return offers

    def short_at(self, site: str) -> list[tuple[int, pulp.LpVariable]]:
        return [(m, v) for (s, m), v in sorted(self.short.items()) if s == site]

    @property
    def spending(self) -> pulp.LpAffineExpression:
        return self.costs["purchase"] + self.costs["delivery"] + self.costs["order"]

    @property
    def total(self) -> pulp.LpAffineExpression:
        return pulp.lpSum(self.costs.values())


def _expr(terms: Terms, constant: float = 0.0) -> pulp.LpAffineExpression:
    # Built in one go from (variable, coefficient) pairs: chaining + on PuLP expressions is quadratic. A variable
    # may come twice (one order, two steps of a delivery's cost): its coefficients add up.
    summed: dict[pulp.LpVariable, float] = {}
    for v, c in terms:
        summed[v] = summed.get(v, 0.0) + c
    return pulp.LpAffineExpression(list(summed.items()), constant=constant)


def _add(prob: pulp.LpProblem, terms: Terms, sense: int, rhs: float, name: str) -> None:
    prob.addConstraint(pulp.LpConstraint(_expr(terms), sense=sense, rhs=rhs), name=name)


def _affordable(cap: float, offer: Offer, site: str | None = None) -> int:
    """The most packs of ``offer`` (delivered to ``site``) that spending ``cap`` could pay for."""
    cheapest = min(t.price_per_pack for t in offer.tiers) + (offer.delivery_cost_per_pack.get(site, 0.0) if site else
                                                             min(offer.delivery_cost_per_pack.values(), default=0.0))
    return math.floor(cap / cheapest * (1 + 1e-9)) if cheapest > 0 else sys.maxsize


def value_at_risk(lots: Iterable[Lot], horizon: int) -> float:
    """What the usable ``lots`` that may expire within the horizon are worth: wasted if nothing uses them."""
    return sum(lot.quantity * lot.unit_value for lot in lots if is_usable(lot, horizon) and
               lot.expires_in_days <= horizon)


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


def _reach(starts: Iterable[str], neighbours: Mapping[str, Iterable[str]]) -> set[str]:
    seen = set(starts)
    todo = deque(seen)
    while todo:
        for nxt in neighbours.get(todo.popleft(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


class _ShortestWays:
    """The arcs that lie on a cheapest way from a site, by unit cost (Dijkstra), for each site asked."""

    def __init__(self, arcs: Mapping[Key, Arc]) -> None:
        self.out: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for (origin, site), arc in sorted(arcs.items()):
            self.out[origin].append((site, arc.unit_cost))
        self.tight: dict[str, frozenset[Key]] = {}

    def from_site(self, start: str) -> frozenset[Key]:
        if start not in self.tight:
            dist = {start: 0.0}
            heap = [(0.0, start)]
            while heap:
                d, node = heapq.heappop(heap)
                if d > dist[node]:
                    continue
                for nxt, cost in self.out.get(node, []):
                    if d + cost < dist.get(nxt, math.inf) - 1e-12:
                        dist[nxt] = d + cost
                        heapq.heappush(heap, (d + cost, nxt))
            self.tight[start] = frozenset((node, nxt) for node in dist for nxt, cost in self.out.get(node, [])
                                          if nxt in dist and dist[node] + cost <= dist[nxt] + 1e-12)
        return self.tight[start]

    def paths_from(self, starts: Iterable[str]) -> set[Key]:
        return set().union(*(self.from_site(s) for s in starts))


def allowed_arcs(problem: Problem) -> dict[Key, Arc]:
    """The arcs stock may move along (the cheapest, if two join the same sites)."""
    arcs: dict[Key, Arc] = {}
    for arc in problem.arcs:
        key = (arc.from_site, arc.to_site)
        if arc.from_site != arc.to_site and (key not in arcs or arc.unit_cost < arcs[key].unit_cost):
            arcs[key] = arc
    return arcs


def _classes(demands: Mapping[str, Demand], lots: Sequence[Lot], offers: Sequence[Offer], horizon: int
             ) -> tuple[list[StockClass], dict[str, int], dict[str, int]]:
    """The stock classes of one drug, and the class of each lot and each offer's packs."""
    index: dict[StockClass, int] = {}
    classes: list[StockClass] = []

    def class_of(arrives: int, expires: int | None, value: float) -> int:
        perishable = expires is not None and expires <= horizon
        cls = StockClass(_window(demands, arrives, expires if perishable else None, horizon), perishable,
                         value if perishable else 0.0)
        if cls not in index:
            index[cls] = len(classes)
            classes.append(cls)
        return index[cls]

    of_lot = {lot.id: class_of(lot_day(lot), lot.expires_in_days, lot.unit_value)
              for lot in sorted(lots, key=lambda lot: lot.id)}
    of_offer = {o.id: class_of(o.lead_time_days, None, 0.0) for o in sorted(offers, key=lambda o: o.id)}
    return classes, of_lot, of_offer


def unavoidable_waste(problem: Problem, drug: str) -> float:
    """The value of ``drug``'s stock that no plan can use in time: lots expired already, and of the lots expiring
    within the horizon what even the plan wasting least must waste (each moved wherever the arcs allow, however
    dear, to the sites that can use it before it expires). A transportation problem, solved exactly with HiGHS
    (its matrix is a network's, so its optimum is in whole units)."""
    horizon = problem.horizon_days
    lots = [lot for lot in problem.lots if lot.drug == drug and lot.quantity > 0]
    sunk = sum(lot.quantity * lot.unit_value for lot in lots if is_sunk(lot, horizon))
    perishable = [lot for lot in lots if is_usable(lot, horizon) and lot.expires_in_days <= horizon
                  and lot.unit_value > 0]
    if not perishable:
        return sunk
    demands = {d.site: d for d in problem.demands if d.drug == drug and d.units > 0}
    neighbours: dict[str, list[str]] = defaultdict(list)
    for origin, site in allowed_arcs(problem):
        neighbours[origin].append(site)
    # Columns: units of each lot meeting each run of a site's units it can meet (runs cut at every window's ends).
    windows = [_window({s: demands[s] for s in _reach([lot.site], neighbours) if s in demands}, lot_day(lot),
                       lot.expires_in_days, horizon) for lot in perishable]
    cuts: dict[str, set[int]] = defaultdict(set)
    for window in windows:
        for site, low, high in window:
            cuts[site] |= {low, high}
    runs = {site: sorted(points) for site, points in cuts.items()}
    run_row: dict[tuple[str, int], tuple[int, int]] = {}
    for site, points in sorted(runs.items()):
        for low, high in itertools.pairwise(points):
            run_row[(site, low)] = (len(perishable) + len(run_row), high - low)
    cols: list[int] = []
    rows: list[tuple[int, int]] = []
    values: list[float] = []
    for n, (lot, window) in enumerate(zip(perishable, windows, strict=True)):
        for site, low, high in window:
            points = runs[site]
            for start in points[points.index(low):points.index(high)]:
                cols.append(len(values))
                rows.append((n, run_row[(site, start)][0]))
                values.append(lot.unit_value)
    if not values:
        return sunk + sum(lot.quantity * lot.unit_value for lot in perishable)
    import highspy

    highs = highspy.Highs()
    for option, setting in (("output_flag", False), ("threads", 1), ("presolve", "off")):
        highs.setOptionValue(option, setting)  # one thread, as every solve of the planner's (see make_solver)
    count = len(values)
    highs.addVars(count, np.zeros(count), np.full(count, highspy.kHighsInf))
    highs.changeColsCost(count, np.arange(count, dtype=np.int32), -np.array(values))
    starts: list[int] = []
    index: list[int] = []
    by_row: dict[int, list[int]] = defaultdict(list)
    for col, (lot_row, site_row) in zip(cols, rows, strict=True):
        by_row[lot_row].append(col)
        by_row[site_row].append(col)
    bounds = [float(lot.quantity) for lot in perishable] + [0.0] * len(run_row)
    for size_row, size in run_row.values():
        bounds[size_row] = float(size)
    for r in range(len(bounds)):
        starts.append(len(index))
        index += by_row.get(r, [])
    highs.addRows(len(bounds), np.full(len(bounds), -highspy.kHighsInf), np.array(bounds), len(index),
                  np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32), np.ones(len(index)))
    highs.run()
    saved = -float(highs.getInfo().objective_function_value)
    return sunk + max(0.0, sum(lot.quantity * lot.unit_value for lot in perishable) - saved)


def add_drug(prob: pulp.LpProblem, problem: Problem, drug: str, tag: str, *, pooled: bool = True,
             transfers: bool = True, fixed: Decisions | None = None,
             charges: Mapping[Charge, float] | None = None) -> DrugModel:
    """Add one drug's variables and constraints to ``prob`` (names carry ``tag``); return their handles.

    ``charges`` are the shared charges this drug may incur, each at the price the drug pays for it in this model
    (its share, when drugs are planned one by one; the caller may instead tie the drugs' ``indicators`` to the
    charge): the model gets a binary for each, and its priced cost in ``priced``.

    With ``fixed`` the purchases and moves are given (an edited plan) and only the rest is chosen: the tier each
    offer's volume reaches, which stock meets which demand, shortages and waste. That is how an edited plan is
    re-costed with exactly the accounting of a planned one. (Check it first with
    :func:`optimizer.evaluate.check_decisions`.)
    """
    horizon = problem.horizon_days
    charges = charges or {}
    demands = {d.site: d for d in problem.demands if d.drug == drug and d.units > 0}
    offers = {o.id: o for o in problem.offers if o.drug == drug}
    all_lots = [lot for lot in problem.lots if lot.drug == drug and lot.quantity > 0]
    usable = {lot.id: lot for lot in all_lots if is_usable(lot, horizon)}
    model = DrugModel(drug, pooled, offers, usable, demands, horizon,
                      sunk=[lot for lot in all_lots if is_sunk(lot, horizon)])
    model.unavoidable = unavoidable_waste(problem, drug)
    sites = sorted(set(problem.sites_for(drug)) | {s for o in offers.values() for s in problem.delivery_sites(o)})
    site_index = {s: n for n, s in enumerate(sites)}
    cost_terms: dict[str, Terms] = defaultdict(list)
    penalty = problem.penalty(drug)

    # Where stock can go: the arcs, and the sites each site's stock can reach. ---------------------------------
    moves = fixed.all_moves(usable) if fixed is not None else {}
    arcs = allowed_arcs(problem) if transfers else {}
    if fixed is not None:
        arcs = {key: arc for key, arc in arcs.items() if any(m[1:] == key for m in moves)}
    model.arcs = arcs
    forward: dict[str, list[str]] = defaultdict(list)
    backward: dict[str, list[str]] = defaultdict(list)
    for origin, site in sorted(arcs):
        forward[origin].append(site)
        backward[site].append(origin)
    reaches = {site: _reach([site], forward) for site in sites}
    # Without a fixed cost on any trip, a unit moves along a shortest way from where it starts: only the arcs on
    # one carry stock (see the module's note).
    trips_charged = any(key.kind == TRIP for key in charges) or any(a.fixed_cost > 0 for a in arcs.values())
    shortest = _ShortestWays(arcs)
    reachable_demand = {site: sum(demands[s].units for s in reaches[site] if s in demands) for site in sites}

    # Purchases, tiers, orders --------------------------------------------------------------------------------
    # Buying nothing costs at most every unit short and every lot at risk wasted: no optimal plan spends more on
    # the drug (a site alone, on its own purchases). See the module's note for the bound on packs.
    own_lots: dict[str, list[Lot]] = defaultdict(list)
    for lot in usable.values():
        own_lots[lot.site].append(lot)
    site_cap = {s: spending_cap(demands[s], own_lots[s], penalty, horizon) for s in demands}
    pooled_cap = sum(site_cap.values()) + value_at_risk((lot for lot in usable.values() if lot.site not in demands),
                                                        horizon)
    supply: dict[tuple[int, str], Terms] = defaultdict(list)  # (class, site) -> packs bought there, in units
    on_hand: dict[tuple[int, str], float] = defaultdict(float)  # (class, site) -> units of lots there
    classes, model.class_of_lot, model.class_of_offer = _classes(demands, list(usable.values()),
                                                                 list(offers.values()), horizon)
    model.classes = classes
    for o_n, offer in enumerate(sorted(offers.values(), key=lambda o: o.id)):
        useful_at = {s for s, _, _ in classes[model.class_of_offer[offer.id]].window}
        if fixed is not None:
            reach = sorted(s for (o, s), packs in fixed.purchases.items() if o == offer.id and packs > 0)
        else:
            reach = [s for s in problem.delivery_sites(offer) if reaches.get(s, {s}) & useful_at]
            if pooled and offer.tiers[-1].min_packs > 0:  # packs bought for the tier alone: any site it delivers to
                reach = list(problem.delivery_sites(offer))
            if not transfers:
                reach = [s for s in reach if s in demands]
        site_ub: dict[str, int] = {}
        for site in reach:
            need = reachable_demand.get(site, 0) if pooled else (demands[site].units if site in demands else 0)
            wanted = max(offer.tiers[-1].min_packs, math.ceil(need / offer.pack_size))
            ub = packs_limit(offer, site, wanted, pooled_cap if pooled else site_cap.get(site, 0.0))
            lb = 0
            if fixed is not None:
                lb = ub = int(fixed.purchases.get((offer.id, site), 0))
            if ub <= 0:
                continue
            site_ub[site] = ub
            i = site_index[site]
            x = prob.add_variable(f"{tag}_buy_{o_n}_{i}", lb, ub, cat=pulp.LpInteger)
            model.buy[(offer.id, site)] = x
            delivery = offer.delivery_cost_per_pack.get(site, 0.0)
            if delivery:
                cost_terms["delivery"].append((x, delivery))
            supply[(model.class_of_offer[offer.id], site)].append((x, float(offer.pack_size)))
            steps = [key for key in charges if key.kind == DELIVERY and key.origin == offer.supplier
                     and key.site == site and key.level <= offer.order_cost + 1e-12]
            if steps and fixed is None:
                if ub == 1:
                    y = x  # at most one pack: the pack is the order (no binary, no row)
                else:
                    y = prob.add_variable(f"{tag}_order_{o_n}_{i}", 0, 1, cat=pulp.LpBinary)
                    model.order[(offer.id, site)] = y
                    _add(prob, [(x, 1.0), (y, -float(ub))], pulp.LpConstraintLE, 0, f"{tag}_order_needed_{o_n}_{i}")
                for key in steps:
                    model.indicators.setdefault(key, []).append(y)
                    model.triggers.setdefault(key, []).append(x)
        if not site_ub:
            continue
        scopes = [("all", list(site_ub))] if pooled else [(s, [s]) for s in site_ub]
        for scope, members in scopes:
            scope_ub = sum(site_ub[s] for s in members)
            if offer.capacity_packs is not None:
                scope_ub = min(scope_ub, offer.capacity_packs)
            if fixed is None:
                scope_ub = min(scope_ub, _affordable(pooled_cap if pooled else site_cap.get(scope, 0.0), offer))
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
            if len(members) > 1:
                # The packs bought in the scope, whole: redundant (a sum of whole packs), but it lets the solver
                # branch on and round the volume itself (half the time over the first 20 city drugs).
                volume = prob.add_variable(f"{tag}_volume_{o_n}_{scope_tag}", 0, scope_ub, cat=pulp.LpInteger)
                _add(prob, [(volume, 1.0)] + [(model.buy[(offer.id, s)], -1.0) for s in members],
                     pulp.LpConstraintEQ, 0, f"{tag}_volume_is_whole_packs_{o_n}_{scope_tag}")
            _add(prob, packs_terms + [(model.buy[(offer.id, s)], -1.0) for s in members], pulp.LpConstraintEQ, 0,
                 f"{tag}_tier_prices_every_pack_{o_n}_{scope_tag}")
        if offer.capacity_packs is not None and not pooled:
            _add(prob, [(model.buy[(offer.id, s)], 1.0) for s in site_ub], pulp.LpConstraintLE,
                 offer.capacity_packs, f"{tag}_capacity_{o_n}")

    # Stock: lots where they lie, moves along arcs ------------------------------------------------------------
    for lot in usable.values():
        on_hand[(model.class_of_lot[lot.id], lot.site)] += lot.quantity
    fixed_flow: dict[tuple[int, str, str], float] = defaultdict(float)
    for (stock, origin, site), units in moves.items():
        moved = model.class_of_lot.get(stock, model.class_of_offer.get(stock))
        if moved is not None:
            fixed_flow[(moved, origin, site)] += units
    nodes: dict[int, set[str]] = {}
    for c, cls in enumerate(classes):
        origins = {site for (k, site) in (*supply, *on_hand) if k == c}
        useful = {site for site, _, _ in cls.window}
        if fixed is not None:
            carried = {(o, s) for (k, o, s) in fixed_flow if k == c}
        else:
            ahead = _reach(origins, forward)
            behind = _reach(useful, backward)
            carried = {(o, s) for (o, s) in arcs if o in ahead and s in behind}
            if not trips_charged:
                carried &= shortest.paths_from(origins)

        nodes[c] = origins | {s for pair in carried for s in pair}
        for origin, site in sorted(carried):
            arc = arcs[(origin, site)]
            amount = fixed_flow.get((c, origin, site), 0.0)
            f = prob.add_variable(f"{tag}_flow_{c}_{site_index[origin]}_{site_index[site]}",
                                  amount if fixed is not None else 0.0, amount if fixed is not None else None)
            model.flow[(c, origin, site)] = f
            if arc.unit_cost:
                cost_terms["transfer"].append((f, arc.unit_cost))
    along: dict[Key, list[pulp.LpVariable]] = defaultdict(list)
    for (_, origin, site), f in model.flow.items():
        along[(origin, site)].append(f)
    for (origin, site), carried_on in sorted(along.items()):
        key = Charge(TRIP, origin, site)
        if key not in charges:
            continue
        if fixed is None:
            i, j = site_index[origin], site_index[site]
            ship = prob.add_variable(f"{tag}_ship_{i}_{j}", 0, 1, cat=pulp.LpBinary)
            model.ship[(origin, site)] = ship
            name = f"{tag}_shipment_needed_{i}_{j}"
            model.ship_rows[(origin, site)] = name
            _add(prob, [(f, 1.0) for f in carried_on] + [(ship, -float(max(1, reachable_demand.get(site, 0))))],
                 pulp.LpConstraintLE, 0, name)
            model.indicators.setdefault(key, []).append(ship)
        model.triggers.setdefault(key, []).extend(carried_on)

    # Demand, cut into groups by the windows of the classes that can reach each site -------------------------
    for site, demand in sorted(demands.items()):
        points = {0, demand.units}
        for c, cls in enumerate(classes):
            if site in nodes[c] and site in cls.meets:
                points |= set(cls.meets[site])
        model.groups[site] = list(itertools.pairwise(sorted(points)))
    outflow: dict[tuple[int, str], Terms] = defaultdict(list)
    for (c, origin, site), f in model.flow.items():
        outflow[(c, origin)].append((f, -1.0))
        outflow[(c, site)].append((f, 1.0))
    met: dict[tuple[str, int], Terms] = defaultdict(list)
    for c, cls in enumerate(classes):
        for site in sorted(nodes[c]):
            i = site_index[site]
            terms = list(outflow[(c, site)]) + supply.get((c, site), [])
            constant = on_hand.get((c, site), 0.0)
            if site in cls.meets and site in demands:
                low, high = cls.meets[site]
                for m, (start, end) in enumerate(model.groups[site]):
                    if low <= start and end <= high:
                        u = prob.add_variable(f"{tag}_use_{c}_{i}_{m}", 0, end - start)
                        model.use[(c, site, m)] = u
                        terms.append((u, -1.0))
                        met[(site, m)].append((u, 1.0))
            # Stock is left to expire where it lies (moved elsewhere first it would cost more), or in an edited plan
            # wherever it was moved to.
            if cls.perishable and (fixed is not None or on_hand.get((c, site))):
                waste = prob.add_variable(f"{tag}_left_{c}_{i}", 0)
                model.left[(c, site)] = waste
                terms.append((waste, -1.0))
                if cls.value:
                    cost_terms["waste"].append((waste, cls.value))
            if terms:
                # Stock lasting beyond the horizon may stay over unused: what is put there need not all go on.
                sense = pulp.LpConstraintEQ if cls.perishable else pulp.LpConstraintGE
                _add(prob, terms, sense, -constant, f"{tag}_stock_balance_{c}_{i}")
    for site in sorted(demands):
        i = site_index[site]
        for m, (start, end) in enumerate(model.groups[site]):
            short = prob.add_variable(f"{tag}_short_{i}_{m}", 0, end - start)
            model.short[(site, m)] = short
            cost_terms["shortage"].append((short, penalty))
            _add(prob, [*met[(site, m)], (short, 1.0)], pulp.LpConstraintEQ, end - start,
                 f"{tag}_demand_met_{i}_{m}")

    # The waste the plan decides is what it wastes beyond what no plan could avoid.
    avoidable_offset = model.unavoidable - sum(lot.quantity * lot.unit_value for lot in model.sunk)
    for kind in ("purchase", "delivery", "order", "transfer", "shortage", "waste"):
        model.costs[kind] = _expr(cost_terms[kind], -avoidable_offset if kind == "waste" else 0.0)
    for kind in (DELIVERY, TRIP):
        terms = []
        for key, binaries in model.indicators.items():
            if key.kind == kind and charges.get(key, 0.0):
                terms.append((_indicator(prob, model, key, binaries, f"{tag}_{kind}_{len(terms)}"), charges[key]))
        model.priced[kind] = _expr(terms)
    return model


def _indicator(prob: pulp.LpProblem, model: DrugModel, key: Charge, binaries: list[pulp.LpVariable],
               name: str) -> pulp.LpVariable:
    """One binary that is 1 when any of ``binaries`` is (the drug's offers of one supplier at one site share a
    delivery)."""
    if len(binaries) == 1:
        return binaries[0]
    z = prob.add_variable(f"{name}_on", 0, 1)
    for n, b in enumerate(binaries):
        _add(prob, [(z, 1.0), (b, -1.0)], pulp.LpConstraintGE, 0, f"{name}_charged_if_used_{n}")
    return z


def build_model(problem: Problem, *, pooled: bool = True, transfers: bool = True,
                price_of_spending: float = 0.0, fixed: Decisions | None = None,
                charges: Mapping[Charge, float] | None = None) -> tuple[pulp.LpProblem, list[DrugModel]]:
    """One PuLP problem for every drug of ``problem`` (tied by its budget, if it has one).

    Without ``charges`` the shared charges (:func:`shared_charges`) are exact: each is paid once, by a binary that
    every drug's use of it turns on. With ``charges`` each drug pays the price given for each charge it uses (a
    drug planned on its own: its share, see :mod:`optimizer.planner`). An edited plan (``fixed``) pays none: they
    follow from its decisions. ``price_of_spending`` adds a Lagrange multiplier on supplier spending to the
    objective, which is how the decomposed solver prices a budget without tying the drugs into one model.
    """
    prob = pulp.LpProblem("purchase_plan", pulp.LpMinimize)
    table = shared_charges(problem, trips=transfers) if fixed is None else {}
    exact = charges is None
    prices = ({key: 0.0 for key in table} if exact else dict(charges or {})) if fixed is None else {}
    models = [add_drug(prob, problem, drug, f"d{n}", pooled=pooled, transfers=transfers, fixed=fixed,
                       charges=prices) for n, drug in enumerate(problem.drugs)]
    weight = 1.0 + price_of_spending
    objective: dict[pulp.LpVariable, float] = defaultdict(float)  # a pack pays its delivery and maybe its order
    constant = 0.0
    spending: Terms = []
    for model in models:
        for kind, expression in model.costs.items():
            w = weight if kind in ("purchase", "delivery", "order") else 1.0
            for v, c in expression.items():
                objective[v] += c * w
            constant += expression.constant * w
        for kind, expression in model.priced.items():
            for v, c in expression.items():
                objective[v] += c * (weight if kind == DELIVERY else 1.0)
        spending += [(v, c) for v, c in model.spending.items()]
    if exact:
        for n, (key, cost) in enumerate(sorted(table.items())):
            binaries = [b for model in models for b in model.indicators.get(key, [])]
            if not binaries:
                continue
            if len({id(m) for m in models if key in m.indicators}) == 1 and len(binaries) == 1:
                y = binaries[0]  # one drug alone uses it: it pays it in full
            else:
                y = prob.add_variable(f"charge_{n}", 0, 1, cat=pulp.LpBinary)
                for k, b in enumerate(binaries):
                    _add(prob, [(y, 1.0), (b, -1.0)], pulp.LpConstraintGE, 0, f"charge_{n}_paid_if_used_{k}")
            objective[y] += cost * (weight if key.kind == DELIVERY else 1.0)
            if key.kind == DELIVERY:
                spending.append((y, cost))
    prob.setObjective(_expr(list(objective.items()), constant))
    if problem.budget is not None:
        _add(prob, spending, pulp.LpConstraintLE, problem.budget, "budget")
    return prob, models


def charges_used(models: Iterable[DrugModel]) -> frozenset[Charge]:
    """The shared charges the solved ``models`` incur: a delivery carrying packs, a trip carrying units."""
    used = set()
    for model in models:
        for key, quantities in model.triggers.items():
            if sum(float(v.varValue or 0.0) for v in quantities) > 0.5:
                used.add(key)
    return frozenset(used)


def charges_of(decisions: Decisions, problem: Problem) -> frozenset[Charge]:
    """The shared charges a plan's purchases and moves incur."""
    table = shared_charges(problem)
    offers = {o.id: o for o in problem.offers}
    used = set()
    for (offer_id, site), packs in decisions.purchases.items():
        offer = offers.get(offer_id)
        if offer is not None and packs > 0:
            used |= {k for k in table if k.kind == DELIVERY and k.origin == offer.supplier and k.site == site
                     and k.level <= offer.order_cost + 1e-12}
    lots = {lot.id: lot for lot in problem.lots}
    for (_, origin, site), units in decisions.all_moves(lots).items():
        if units > 0 and Charge(TRIP, origin, site) in table:
            used.add(Charge(TRIP, origin, site))
    return frozenset(used)
