"""Problems and plans as plain JSON-able data, so that a plan run's inputs can be frozen with it and the
same plan reproduced and explained later."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from optimizer.plan import (
    BudgetUse,
    Costs,
    DrugSolve,
    Plan,
    PurchaseLine,
    Reason,
    ShortageLine,
    StockUseLine,
    TransferLine,
    WasteLine,
)
from optimizer.problem import Arc, Decisions, Demand, DrugPolicy, Lot, Offer, Problem, Tier


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    return {
        "horizon_days": problem.horizon_days,
        "budget": problem.budget,
        "default_shortage_penalty": problem.default_shortage_penalty,
        "demands": [asdict(d) for d in problem.demands],
        "offers": [{**asdict(o), "tiers": [asdict(t) for t in o.tiers],
                    "delivery_cost_per_pack": dict(o.delivery_cost_per_pack)} for o in problem.offers],
        "lots": [asdict(lot) for lot in problem.lots],
        "arcs": [asdict(a) for a in problem.arcs],
        "policies": [asdict(p) for p in problem.policies],
    }


def problem_from_dict(data: dict[str, Any]) -> Problem:
    return Problem(
        horizon_days=data["horizon_days"],
        budget=data["budget"],
        default_shortage_penalty=data["default_shortage_penalty"],
        demands=tuple(Demand(**d) for d in data["demands"]),
        offers=tuple(Offer(**{**o, "tiers": tuple(Tier(**t) for t in o["tiers"])}) for o in data["offers"]),
        lots=tuple(Lot(**lot) for lot in data["lots"]),
        arcs=tuple(Arc(**a) for a in data["arcs"]),
        policies=tuple(DrugPolicy(**p) for p in data["policies"]),
    )


def costs_to_dict(costs: Costs) -> dict[str, float]:
    return {**asdict(costs), "total": costs.total}


def costs_from_dict(data: dict[str, float]) -> Costs:
    """Costs as stored (a plan stored before a kind of cost existed has none of it)."""
    return Costs(**{f.name: data.get(f.name, 0.0) for f in fields(Costs)})


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    data = asdict(plan)
    data["costs"] = costs_to_dict(plan.costs)
    data["baseline"] = costs_to_dict(plan.baseline) if plan.baseline else None
    data["saving"] = plan.saving
    return data


def plan_from_dict(data: dict[str, Any]) -> Plan:
    lines = {"purchases": PurchaseLine, "transfers": TransferLine, "shortages": ShortageLine, "waste": WasteLine,
             "stock_use": StockUseLine, "purchase_moves": TransferLine}
    values = {f.name: data[f.name] for f in fields(Plan) if f.name in data}
    for name, kind in lines.items():
        values[name] = tuple(kind(**_with_reasons(line)) for line in data.get(name, ()))
    values["costs"] = costs_from_dict(data["costs"])
    values["baseline"] = costs_from_dict(data["baseline"]) if data.get("baseline") else None
    values["notes"] = tuple(data.get("notes", ()))
    values["budget_use"] = BudgetUse(**data["budget_use"]) if data.get("budget_use") else None
    values["drugs"] = tuple(DrugSolve(**drug) for drug in data.get("drugs", ()))
    return Plan(**values)


def _with_reasons(line: dict[str, Any]) -> dict[str, Any]:
    if "reasons" not in line:  # a stock use line, or a plan stored before lines gave their reasons
        return line
    return {**line, "reasons": tuple(Reason(r["code"], r.get("facts", {})) for r in line["reasons"])}


def decisions_of(plan: Plan) -> Decisions:
    """The purchases and moves a plan decided: each lot's moves from where it lies as ``transfers``, the rest
    (stock moving on, bought packs moved) as ``moves``."""
    purchases: dict[tuple[str, str], int] = {}
    for p in plan.purchases:
        purchases[(p.offer, p.site)] = purchases.get((p.offer, p.site), 0) + p.packs
    lines = (*plan.transfers, *plan.purchase_moves)
    reached = {(t.offer or t.lot, t.to_site) for t in lines}  # where each lot or purchase is moved to
    transfers: dict[tuple[str, str], float] = {}
    moves: dict[tuple[str, str, str], float] = {}
    for t in lines:
        if t.offer is None and (t.lot, t.from_site) not in reached:
            transfers[(t.lot, t.to_site)] = transfers.get((t.lot, t.to_site), 0.0) + t.units
        else:
            key = (t.offer or t.lot, t.from_site, t.to_site)
            moves[key] = moves.get(key, 0.0) + t.units
    return Decisions(purchases, transfers, moves)
