"""What the planner answers: a plan whose every line explains itself."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class Costs:
    purchase: float = 0.0
    delivery: float = 0.0
    order: float = 0.0
    transfer: float = 0.0
    shortage: float = 0.0
    waste: float = 0.0

    @property
    def total(self) -> float:
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
    drug: str
    lot: str
    from_site: str
    to_site: str
    units: float  # units are continuous in the model: lots are split by usage rates
    cost: float
    why: str


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

    @property
    def saving(self) -> float | None:
        """What the plan saves against each site buying alone (positive is better)."""
        return None if self.baseline is None else self.baseline.total - self.costs.total


class PlanningError(Exception):
    """The solver returned no usable plan, or an edited plan breaks a rule; the message says what was wrong
    where it can be found, and ``violations`` lists each broken rule when there are several."""

    def __init__(self, message: str, violations: Sequence[object] | None = None) -> None:
        super().__init__(message)
        self.violations = list(violations or [])
