"""What the planner answers: a plan whose every line explains itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields


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


@dataclass(frozen=True)
class WasteLine:
    drug: str
    lot: str
    site: str
    units: float
    value: float
    why: str


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
