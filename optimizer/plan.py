"""What the planner answers: a plan whose every line explains itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Costs:
    """What a plan's decisions cost, by kind, and apart from them the stock no decision could save.

    ``order`` is each supplier's delivery to a site, charged once whatever drugs it carries; ``transfer`` the units
    moved and each trip between two sites, charged once whatever it carries; ``waste`` the stock the plan lets expire
    that some plan could have used in time. ``unavoidable_waste`` is stock already expired or that no plan could use
    in time (sunk): reported, never in ``total``, so that plans and the baseline compare on what they decide.
    """

    purchase: float = 0.0
    delivery: float = 0.0
    order: float = 0.0
    transfer: float = 0.0
    shortage: float = 0.0
    waste: float = 0.0
    unavoidable_waste: float = 0.0

    @property
    def total(self) -> float:
        """The cost of the plan's decisions (the unavoidable waste left out)."""
        return self.purchase + self.delivery + self.order + self.transfer + self.shortage + self.waste

    @property
    def spending(self) -> float:
        """Money paid to suppliers: what a budget caps."""
        return self.purchase + self.delivery + self.order

    def __add__(self, other: Costs) -> Costs:
        return Costs(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Costs)))


def _n(n: float, noun: str) -> str:
    return f"{n:.0f} {noun}" + ("" if round(n) == 1 else "s")


# Each reason a line can give, in English, from its facts (sites, lots and offers by their ids). The service says
# them in its reader's language from the same codes and facts.
REASON_TEXTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "tier_reached": lambda f: (f"tier >= {f['min_packs']} packs at {f['price']:.2f}/pack, reached by "
                               + (f"the consortium's pooled {f['packs']} packs" if f["pooled"]
                                  else f"this site's own {f['packs']} packs")
                               + f"; landed {f['landed']:.3f}/unit at {f['site']}"),
    "other_offers": lambda f: f"other offers from {f['cheapest']:.3f}/unit at their base tier",
    "packs_moved_on": lambda f: (f"units of packs of {f['offer']} delivered to {f['origin']}, moved on: cheaper than "
                                 f"buying for {f['site']} ({f['unit_cost']:.2f}/unit to move)"),
    "on_its_way": lambda f: (f"lot {f['lot']} of {f['lot_site']} on its way through {f['origin']} "
                             f"({f['unit_cost']:.2f}/unit to move)"),
    "arrives_in": lambda f: f"arrives in {_n(f['days'], 'day')}",
    "expires_before_use": lambda f: (f"lot {f['lot']} expires in {f['days']} days; {f['lot_site']} can use only "
                                     f"{f['can_use']:.0f} of its {f['quantity']} before then"),
    "no_demand_cheaper": lambda f: (f"{f['lot_site']} has no demand for it; cheaper than buying for {f['site']} "
                                    f"({f['unit_cost']:.2f}/unit to move)"),
    "lent": lambda f: f"lent: cheaper than buying for {f['site']} ({f['unit_cost']:.2f}/unit to move)",
    "no_offer_delivers": lambda f: (f"no offer delivers to {f['site']}, and no stock that may move there is left to "
                                    "use in time"),
    "needed_before_fastest": lambda f: (f"{_n(f['units'], 'unit')} needed in the first {_n(f['days'], 'day')}, before "
                                        "the fastest offer delivers"),
    "short_within_budget": lambda f: f"{_n(f['units'], 'unit')} left short within the budget",
    "offers_at_capacity": lambda f: "every offer that delivers here is at its capacity",
    "offers_too_late": lambda f: "the offers with capacity left deliver too late to meet them",
    "one_more_pack": lambda f: (f"one more pack of {f['offer']} would meet {_n(f['units'], 'unit')} (lead time "
                                f"{_n(f['lead_days'], 'day')}) for {f['landed']:.2f} delivered; the "
                                f"{_n(f['short'], 'unit')} short cost {f['penalty']:.2f} each"),
    "expires_in": lambda f: f"expires in {_n(f['days'], 'day')}",
    "moved_not_used": lambda f: f"moved to {f['site']}, which does not use it all in time",
    "no_demand": lambda f: f"{f['site']} has no demand for it",
    "site_can_use": lambda f: (f"{f['site']} can use {f['can']:.0f} of its {f['quantity']} before then"
                               + (f" and uses {f['used']:.0f}" if f.get("used") is not None else "")),
    "moves_to": lambda f: ", ".join(f"{units:.0f} move to {site}" for site, units in f["moves"]),
    "may_move_nowhere": lambda f: "it may move to no site that can use it in time",
    "no_plan_wastes_less": lambda f: "no plan could waste less of this drug's stock",
    "neighbours_could_use_more": lambda f: ("the sites it may move to could use more of it in time, and meet that "
                                            "need otherwise (their own stock, other lots or whole packs)"),
    "already_expired": lambda f: "already expired",
    "expires_before_arrives": lambda f: f"expires in {_n(f['days'], 'day')}, before it arrives",
}


@dataclass(frozen=True)
class Reason:
    """One part of why a plan line is as it is: a code of :data:`REASON_TEXTS` and its facts (numbers, and sites,
    lots and offers by their ids)."""

    code: str
    facts: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        return REASON_TEXTS[self.code](self.facts)

    def __hash__(self) -> int:  # facts are a dict: hashed by what they say
        return hash((self.code, repr(sorted(self.facts.items()))))


def said(reasons: Sequence[Reason]) -> str:
    """Reasons in English, as a line's ``why``."""
    return "; ".join(r.text() for r in reasons)


@dataclass(frozen=True)
class PurchaseLine:
    drug: str
    offer: str
    supplier: str
    site: str
    packs: int
    units: int
    tier_min_packs: int
    price_per_pack: float
    cost: float
    delivery_cost: float
    why: str
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class TransferLine:
    """Units moved from one site to the next along an allowed arc: of a lot (``lot``), or of packs bought in the
    plan (``lot`` empty, ``offer`` the offer bought from, delivered to the first site of their way: these are a
    plan's ``purchase_moves``). Stock may go on from the site it reaches: the next line starts there."""

    drug: str
    lot: str
    from_site: str
    to_site: str
    units: float  # whole units
    cost: float  # the units' cost of moving; a trip's fixed cost is in the plan's costs, once per trip
    why: str
    offer: str | None = None
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class StockUseLine:
    """Units of a lot used where it lies (transfers say where the rest goes)."""

    drug: str
    lot: str
    site: str
    units: float


@dataclass(frozen=True)
class ShortageLine:
    drug: str
    site: str
    units: float
    penalty: float
    why: str
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class WasteLine:
    drug: str
    lot: str
    site: str
    units: float
    value: float
    why: str
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True)
class BudgetUse:
    """How a plan kept within its budget: planned in one model (``one_model``), by a budget that did not bind
    (``not_binding``), or by pricing spending (``priced``: at ``price`` per yuan, each drug's plan chosen
    among ``rounds`` rounds of the search)."""

    how: str
    price: float | None = None
    rounds: int | None = None

    def text(self) -> str:
        if self.how == "priced":
            return (f"budget priced at {self.price:.4f} per yuan spent; each drug's plan chosen among {self.rounds} "
                    "rounds")
        return "budget planned in one model" if self.how == "one_model" else "the budget does not bind"


@dataclass(frozen=True)
class DrugSolve:
    """What the solver proved for one drug: ``status`` is its model's (``optimal``: to the tolerance it was given;
    ``node_limit``: stopped at the first pass's node limit with a plan and a bound, which the plan's gap as a
    whole covers; ``feasible_time_limit``: stopped by the time limit), with its objective, bound and relative gap.
    Drugs planned together in one model share that model's figures (``together`` says how many)."""

    drug: str
    status: str
    objective: float
    bound: float | None
    gap: float | None
    seconds: float
    together: int = 1


@dataclass(frozen=True)
class Plan:
    purchases: tuple[PurchaseLine, ...]
    transfers: tuple[TransferLine, ...]
    shortages: tuple[ShortageLine, ...]
    waste: tuple[WasteLine, ...]
    costs: Costs
    status: str  # "optimal" | "feasible_time_limit"
    objective: float
    best_bound: float | None
    gap: float | None  # relative: (objective - bound) / |objective|
    build_seconds: float
    solve_seconds: float
    solver: str
    variables: int = 0
    constraints: int = 0
    baseline: Costs | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    stock_use: tuple[StockUseLine, ...] = ()
    budget_use: BudgetUse | None = None  # with a budget: how the plan kept within it (also among the notes)
    # Units of packs bought in the plan that move on from the site they are delivered to (``transfers`` are lots'):
    # a transfer to order once the purchase is received.
    purchase_moves: tuple[TransferLine, ...] = ()
    drugs: tuple[DrugSolve, ...] = ()  # each drug's own verdict beside the plan's as a whole

    @property
    def saving(self) -> float | None:
        """What the plan's decisions save against each site buying alone (positive is better)."""
        return None if self.baseline is None else self.baseline.total - self.costs.total

    def verdicts(self) -> list[tuple[str, int, float | None]]:
        """What the plan proved drug by drug, in short: for each status, how many drugs ended with it and the widest
        gap among them (None when one of them has no bound, so proved no gap)."""
        gaps: dict[str, list[float | None]] = {}
        for drug in self.drugs:
            gaps.setdefault(drug.status, []).append(drug.gap)
        return [(status, len(found), None if None in found else max(g for g in found if g is not None))
                for status, found in sorted(gaps.items())]

    @property
    def unavoidable_waste(self) -> float:
        """Stock already expired or that no plan could use in time: not a cost of the plan's decisions."""
        return self.costs.unavoidable_waste


class PlanningError(Exception):
    """The solver returned no usable plan, or an edited plan breaks a rule; the message says what was wrong
    where it can be found, and ``violations`` lists each broken rule when there are several."""

    def __init__(self, message: str, violations: Sequence[object] | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])
