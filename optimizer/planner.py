"""Solving: drug by drug (in parallel worker processes), the charges drugs share (a supplier's delivery to a site,
a trip between two sites) shared out among them or planned in one model, a budget priced by a multiplier or in
one model, the solver's own status, bound and gap, and the site-by-site baseline every plan is compared with."""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import Any

import pulp

from optimizer.baseline import SitePlan, sites_alone
from optimizer.budget import cheapest_within
from optimizer.lines import EPS, extract, value
from optimizer.model import DELIVERY, Charge, DrugModel, build_model, charges_of, shared_charges, unavoidable_waste
from optimizer.plan import (
    BudgetUse,
    Costs,
    DrugSolve,
    Plan,
    PlanningError,
    PurchaseLine,
    ShortageLine,
    StockUseLine,
    TransferLine,
    WasteLine,
)
from optimizer.problem import Decisions, Problem
from optimizer.workers import Workers

Progress = Callable[[int, int], None]  # (models solved, models in all)

SOLVERS = ("highs", "cbc")

# Below this many drugs a budget, or charges the drugs share, are planned in one model (exact); above it, by
# pricing them.
MONOLITHIC_BUDGET_DRUGS = 25
# Drugs that share charges (a delivery, a trip) are planned in one model, exactly, when they have at most this many
# needs (sites' demands for drugs) in all, and no more drugs than a budget would be planned in one model for.
MONOLITHIC_SHARED_DEMANDS = 60
# Rounds of sharing out the shared charges among the drugs that use them, at most (see _solve_shared); the baseline,
# whose sites are planned without a solver, can afford more.
CHARGE_ROUNDS = 2
BASELINE_CHARGE_ROUNDS = 4
LOOSEST_GAP = 0.05  # no drug's own tolerance is looser than this, however small the drug
# Branch-and-bound nodes a drug gets on the first pass. Most drugs end at the root; the few that need many more
# nodes are stopped with their plan and bound, and solved again without the limit only if the plan as a whole
# has not proved its gap (a node limit, unlike a time limit, gives the same plan on a busy machine).
FIRST_PASS_NODES = 50
NODE_LIMIT = "node_limit"  # an outcome stopped at FIRST_PASS_NODES, with a plan and a bound
SOLVED = ("optimal", NODE_LIMIT)  # a model's statuses that a plan's gap as a whole may prove optimal


class _HiGHS(pulp.HiGHS):
    """PuLP's HiGHS, which starts from a given plan (the values of its discrete variables, by name; HiGHS
    completes the rest) and also reads a plan that stopped at its node limit (PuLP 3.3 raises KeyError on that
    status, after it has read the plan)."""

    start: Mapping[str, float] = {}

    def callSolver(self, lp: pulp.LpProblem) -> None:
        if self.start:
            columns = [(v.index, self.start[v.name]) for v in lp.variables() if v.name in self.start]
            lp.solverModel.setSolution(len(columns), [c for c, _ in columns], [x for _, x in columns])
        super().callSolver(lp)

    def findSolutionValues(self, lp: pulp.LpProblem) -> tuple[int, int]:
        import highspy

        try:
            return super().findSolutionValues(lp)
        except KeyError:
            if lp.solverModel.getModelStatus() != highspy.HighsModelStatus.kSolutionLimit:
                raise
            return pulp.LpStatusNotSolved, pulp.LpSolutionIntegerFeasible


def make_solver(name: str, time_limit: float, gap: float, node_limit: int | None = None,
                start: Mapping[str, float] | None = None) -> pulp.LpSolver:
    """HiGHS in-process (default), or CBC from ``pulp[cbc]``'s bundled binary.

    ``node_limit`` stops HiGHS after that many branch-and-bound nodes, with its plan and bound, and ``start``
    hands it a plan to improve on (CBC's command line reports no bound, so it is neither stopped early nor
    restarted).
    """
    if name == "highs":
        # Presolve costs more than it saves on models this small (measured: a third of the time), and so do
        # the root reduced-cost heuristic (over 100 city drugs in one alternating run: 0.83 of the time, same
        # gap) and feasibility jump, which spends about 10 ms on any model however small (0.86 of the time).
        limits = {"mip_max_nodes": node_limit} if node_limit is not None else {}
        highs = _HiGHS(msg=False, timeLimit=time_limit, gapRel=gap, threads=1, presolve="off",
                       mip_heuristic_run_root_reduced_cost=False, mip_heuristic_run_feasibility_jump=False, **limits)
        highs.start = start or {}
        return highs
    if name == "cbc":
        import cbcbox

        return pulp.COIN_CMD(path=cbcbox.cbc_bin_path(), msg=False, timeLimit=time_limit, gapRel=gap, threads=1)
    raise PlanningError(f"unknown solver {name!r}; use one of: {', '.join(SOLVERS)}")


@dataclass(frozen=True)
class Outcome:
    """What one solved model yields: plan lines, costs and the solver's verdict."""

    purchases: tuple[PurchaseLine, ...]
    transfers: tuple[TransferLine, ...]
    shortages: tuple[ShortageLine, ...]
    waste: tuple[WasteLine, ...]
    stock_use: tuple[StockUseLine, ...]
    costs: Costs
    status: str
    objective: float
    bound: float | None
    build_seconds: float
    solve_seconds: float
    variables: int
    constraints: int
    discrete: Mapping[str, float] = field(default_factory=dict)  # the plan's discrete variables, to restart from
    charges: frozenset[Charge] = frozenset()  # the shared charges the plan incurs (not in ``costs``)
    shares: Costs = field(default_factory=Costs)  # what it paid for them at its price (in ``objective``, not ``costs``)
    drugs: tuple[str, ...] = ()  # the drugs the model planned

    @property
    def proxy(self) -> Costs:
        """The plan's costs with its shared charges at the price it was given: what it cost as its model saw it."""
        return self.costs + self.shares


def _highs_has_plan(highs: Any) -> bool:
    return bool(highs.getInfo().primal_solution_status == 2)  # kSolutionStatusFeasible


def _verdict(prob: pulp.LpProblem, solver: str, what: str, gap: float) -> tuple[str, float, float | None]:
    """The solver's own status, objective and best bound (PuLP says "Optimal" at a time limit too)."""
    if solver == "highs":
        import highspy

        highs = prob.solverModel
        status = highs.getModelStatus()
        info = highs.getInfo()
        has_solution = _highs_has_plan(highs)
        if status == highspy.HighsModelStatus.kOptimal:
            verdict = "optimal"
        elif has_solution and status == highspy.HighsModelStatus.kSolutionLimit:
            verdict = NODE_LIMIT
        elif has_solution and status in (highspy.HighsModelStatus.kTimeLimit,
                                         highspy.HighsModelStatus.kIterationLimit,
                                         highspy.HighsModelStatus.kInterrupt):
            verdict = "feasible_time_limit"
        else:
            raise PlanningError(f"{what}: HiGHS ended with {highs.modelStatusToString(status)} and no usable plan")
        # HiGHS reports without the objective's constant (stock already expired); put it back in both.
        objective = float(pulp.value(prob.objective) or 0.0)
        offset = objective - float(info.objective_function_value)
        is_mip = any(v.cat == pulp.LpInteger for v in prob.variables())
        raw_bound = float(info.mip_dual_bound) + offset if is_mip else objective
        return verdict, objective, raw_bound if math.isfinite(raw_bound) else None
    objective = float(pulp.value(prob.objective) or 0.0)
    if prob.sol_status == pulp.LpSolutionOptimal:
        # CBC's command line does not report its bound: "optimal" means within the gap it was given, so the
        # bound it proved is at least that far below (a drug may be given a looser gap than the plan's).
        return "optimal", objective, objective - gap * abs(objective)
    if prob.sol_status == pulp.LpSolutionIntegerFeasible:
        return "feasible_time_limit", objective, None
    raise PlanningError(f"{what}: CBC ended with {pulp.LpStatus[prob.status]} and no usable plan")


def _stock_variables(models: Iterable[DrugModel]) -> Iterable[pulp.LpVariable]:
    return (v for m in models for group in (m.flow, m.use, m.left, m.short) for v in group.values())


def _stock_is_whole(models: Sequence[DrugModel]) -> bool:
    # Whole to a billionth: a solver's feasibility tolerance (a ten-millionth) would show in the costs.
    return all(abs(value(v) - round(value(v))) <= 1e-9 for v in _stock_variables(models))


def _make_stock_whole(prob: pulp.LpProblem, models: Sequence[DrugModel], solver: str, time_limit: float,
                      what: str) -> float:
    """Solve the stock part again with the purchases, orders and tiers as found, for a solution whose stock
    quantities are whole (every basic one is; see :mod:`optimizer.model`). A solver's heuristics may end at a
    point that is not basic; this costs no more and moves whole units. Returns the objective."""
    for v in prob.variables():
        if v.cat == pulp.LpInteger:
            v.lowBound = v.upBound = round(value(v))
            v.cat = pulp.LpContinuous
    # A trip's row ties the flows of every class along its arc: with the trip fixed it is only a bound (nothing
    # moves on an arc whose trip is off), and binding as a row it could spoil the network's whole basic solutions:
    # off, the flows get bound 0; on, the row is loosened past any flow (the demand beyond the arc bounds them).
    for model in models:
        for key, name in model.ship_rows.items():
            row = prob.get_constraint_by_name(name)
            ship = model.ship[key]
            if ship.upBound == 0:
                for (_, origin, site), f in model.flow.items():
                    if (origin, site) == key:
                        f.upBound = 0
            elif row is not None:
                row.expr[ship] = row.expr[ship] - 1.0
    prob.solve(make_solver(solver, time_limit, 0.0))
    if prob.sol_status != pulp.LpSolutionOptimal:
        raise PlanningError(f"{what}: the stock could not be planned in whole units for the purchases found")
    return float(pulp.value(prob.objective) or 0.0)


def solve_model(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
                pooled: bool = True, transfers: bool = True, price_of_spending: float = 0.0,
                fixed: Decisions | None = None, node_limit: int | None = None,
                start: Mapping[str, float] | None = None, charges: Mapping[Charge, float] | None = None) -> Outcome:
    """Build and solve one model for every drug of ``problem`` (use it on one drug, or small problems).

    ``charges``: the price of each shared charge (see :func:`optimizer.model.build_model`; without, they are exact).
    The outcome's ``costs`` leave the shared charges out: ``charges`` names those it incurs, and its objective counts
    them (exactly, or at their price). ``node_limit`` and ``start`` are HiGHS's: see :func:`make_solver`;
    ``Outcome.discrete`` is a ``start``.
    """
    started = time.perf_counter()
    prob, models = build_model(problem, pooled=pooled, transfers=transfers, price_of_spending=price_of_spending,
                               fixed=fixed, charges=charges)
    built = time.perf_counter()
    what = f"plan for {', '.join(problem.drugs[:3])}{'...' if len(problem.drugs) > 3 else ''}"
    if not prob.variables():
        lines = [extract(m, problem) for m in models]
        costs = sum((x.costs for x in lines), Costs())
        wasted = tuple(w for x in lines for w in x.waste)
        return Outcome((), (), (), wasted, (), costs, "optimal", costs.total, costs.total, built - started, 0.0, 0, 0,
                       drugs=tuple(problem.drugs))
    prob.solve(make_solver(solver, time_limit, gap, node_limit, start))
    if node_limit is not None and solver == "highs" and not _highs_has_plan(prob.solverModel):
        prob.solve(make_solver(solver, time_limit, gap))  # no plan yet at the node limit: go on without it
    solved = time.perf_counter()
    status, objective, bound = _verdict(prob, solver, what, gap)
    discrete = {v.name: round(value(v)) for v in prob.variables() if v.cat == pulp.LpInteger}
    if not _stock_is_whole(models):
        objective = _make_stock_whole(prob, models, solver, time_limit, what)
    budgeted = problem.budget is not None or price_of_spending > 0
    lines = [extract(model, problem, budgeted) for model in models]
    used = frozenset().union(*(x.charges for x in lines))
    # At their price, or (without prices) each paid once in full, as the model counted them.
    prices = charges if charges is not None else shared_charges(problem, trips=transfers)
    shares = Costs(order=sum(prices.get(k, 0.0) for k in used if k.kind == DELIVERY),
                   transfer=sum(prices.get(k, 0.0) for k in used if k.kind != DELIVERY))
    return Outcome(tuple(p for x in lines for p in x.purchases), tuple(t for x in lines for t in x.transfers),
                   tuple(s for x in lines for s in x.shortages), tuple(w for x in lines for w in x.waste),
                   tuple(u for x in lines for u in x.stock_use), sum((x.costs for x in lines), Costs()), status,
                   objective, bound, built - started, solved - built, prob.numVariables(), prob.numConstraints(),
                   discrete, used, shares, tuple(problem.drugs))


def _solve_one(args: tuple[Problem, dict[str, Any]]) -> Outcome:
    problem, options = args
    return solve_model(problem, **options)


def weight(part: Problem) -> float:
    """How long a drug's model is expected to take, relatively: its needs times the stock and offers that may
    meet each (the order in which drugs go to the workers, heaviest first)."""
    return float(max(1, len(part.demands)) * (1 + len(part.lots) + len(part.offers)))


def _solve_each(parts: Sequence[Problem], pool: Workers, progress: Progress | None = None,
                each: Sequence[dict[str, Any]] | None = None, **options: Any) -> list[Outcome]:
    """Solve each part as its own model (``each``: the options of each part's own, over ``options``)."""
    jobs = [(part, options if each is None else {**options, **each[n]}) for n, part in enumerate(parts)]
    return pool.map(_solve_one, jobs, weights=[weight(part) for part in parts],
                    names=[", ".join(part.drugs) for part in parts], progress=progress)


def _rough_cost(part: Problem) -> float:
    """What a drug's plan costs, roughly, from its data alone: every unit of demand at the cheaper of its
    shortage penalty and the cheapest base price per unit."""
    penalty = part.penalty(part.drugs[0]) if part.drugs else 0.0
    unit = min([penalty] + [o.tiers[0].price_per_pack / o.pack_size for o in part.offers])
    return sum(d.units for d in part.demands) * unit


def _gap_shares(parts: Sequence[Problem], gap: float) -> list[float]:
    """Each drug's own gap tolerance, so that the plan as a whole proves ``gap``.

    The plan's gap is the sum of the drugs' absolute gaps over the sum of their costs, while a model's time
    hardly depends on its size: a small drug can be left looser than a large one. With tolerance
    ``gap * sqrt(mean / cost)`` the absolute allowances sum to at most ``gap`` times the total (Cauchy-Schwarz);
    HiGHS usually ends well inside its tolerance, hence the factor 2, and :func:`_solve_to_gap` tightens
    whatever still falls short. Measured against every drug solved to ``gap``, in the same run: 0.72 of the
    time over 100 city drugs, 0.85 over 200 (``BENCH_COMPARE=1``), the plan's gap 0.33-0.36% against 0.5%.
    """
    costs = [max(_rough_cost(part), EPS) for part in parts]
    mean = sum(costs) / len(costs) if costs else 0.0
    return [min(LOOSEST_GAP, 2 * gap * math.sqrt(mean / cost)) for cost in costs]


def _plan_gap(outcomes: Sequence[Outcome]) -> float | None:
    if any(o.bound is None for o in outcomes):
        return None
    objective = sum(o.objective for o in outcomes)
    slack = sum(o.objective - (o.bound or 0.0) for o in outcomes)
    return max(0.0, slack) / abs(objective) if abs(objective) > EPS else 0.0


def _solve_to_gap(parts: Sequence[Problem], pool: Workers, progress: Progress | None = None,
                  each: Sequence[dict[str, Any]] | None = None, tighten: bool = True, **options: Any) -> list[Outcome]:
    """Solve each drug to its share of the gap (HiGHS: within :data:`FIRST_PASS_NODES`), then (if ``tighten``)
    re-solve the drugs furthest from their bound, tighter and without a node limit, until the plan as a whole proves
    ``options["gap"]`` (or every drug has been tightened). ``each``: each part's own options (its charges'
    prices, a plan to start from)."""
    gap, highs = options["gap"], options.get("solver") == "highs"
    own = list(each) if each is not None else [{} for _ in parts]
    first = {**options, "node_limit": FIRST_PASS_NODES} if highs else options
    outcomes = _solve_each(parts, pool, progress, [{**own[n], "gap": g}
                                                       for n, g in enumerate(_gap_shares(parts, gap))], **first)

    def slack(o: Outcome) -> float:
        return o.objective - o.bound if o.bound is not None else 0.0

    # Worth tightening: drugs that stopped at their own, looser tolerance or at the node limit (not at the time
    # limit, which a second solve would meet again) short of the one they will be re-solved to; largest slack
    # first.
    loose = sorted((n for n, o in enumerate(outcomes)
                    if o.status in SOLVED and slack(o) > gap / 2 * abs(o.objective) + EPS),
                   key=lambda n: -slack(outcomes[n])) if tighten else []
    tightened = 0
    while loose and (plan_gap := _plan_gap(outcomes)) is not None and plan_gap > gap:
        batch, loose = loose[:max(1, 2 * pool.width)], loose[max(1, 2 * pool.width):]
        # Each starts from the plan it has, so it ends no worse and HiGHS's heuristics need not find it again.
        starts = [{**own[n], "start": outcomes[n].discrete} if highs else own[n] for n in batch]
        for n, outcome in zip(batch, _solve_each([parts[n] for n in batch], pool, None, starts,
                                                  **{**options, "gap": gap / 2}), strict=True):
            outcomes[n] = outcome
        tightened += len(batch)
        if progress:
            progress(len(parts) + tightened, len(parts) + tightened + len(loose))
    if tightened and progress:
        progress(len(parts) + tightened, len(parts) + tightened)  # the rest need no second solve
    # A drug still stopped at its node limit keeps saying so (with its own gap in the plan's ``drugs``): the plan's
    # gap as a whole covers it, and that is the promise.
    return outcomes


def charge_costs(used: Iterable[Charge], table: Mapping[Charge, float]) -> Costs:
    """What the shared charges ``used`` cost, each once: deliveries as order costs, trips as transfer costs."""
    used = set(used)
    return Costs(order=sum(table[k] for k in used if k.kind == DELIVERY and k in table),
                 transfer=sum(table[k] for k in used if k.kind != DELIVERY and k in table))


def potential_charges(part: Problem, table: Mapping[Charge, float], trips: bool = True) -> frozenset[Charge]:
    """The shared charges a drug's plan could use: its offers' suppliers' deliveries to the sites they deliver
    to, and (with transfers) every trip."""
    keys: set[Charge] = set()
    for offer in part.offers:
        if offer.order_cost > 0:
            sites = set(part.delivery_sites(offer))
            keys |= {k for k in table if k.kind == DELIVERY and k.origin == offer.supplier and k.site in sites
                     and k.level <= offer.order_cost + 1e-12}
    if trips and part.demands:
        keys |= {k for k in table if k.kind != DELIVERY}
    return frozenset(keys)


def _is_coupled(potential: Sequence[frozenset[Charge]]) -> bool:
    """Whether two drugs could share a charge."""
    seen: set[Charge] = set()
    for keys in potential:
        if seen & keys:
            return True
        seen |= keys
    return False


def _first_prices(potential: Sequence[frozenset[Charge]], table: Mapping[Charge, float]) -> list[dict[Charge, float]]:
    """Each charge shared out evenly among the drugs that could use it (a drug alone pays it in full)."""
    users: dict[Charge, int] = defaultdict(int)
    for keys in potential:
        for key in keys:
            users[key] += 1
    return [{key: table[key] / users[key] for key in keys} for keys in potential]


def _shared_out(prices: Sequence[dict[Charge, float]], used: Sequence[frozenset[Charge]],
                table: Mapping[Charge, float]) -> list[dict[Charge, float]]:
    """Each charge some drug's plan uses, shared out evenly among the drugs that use it (the others pay nothing
    for it: it is paid already); a charge no plan uses keeps its prices."""
    users: dict[Charge, list[int]] = defaultdict(list)
    for n, keys in enumerate(used):
        for key in keys:
            users[key].append(n)
    return [{key: (table[key] / len(users[key]) if n in users[key] else 0.0) if users.get(key) else price
             for key, price in mine.items()} for n, mine in enumerate(prices)]


@dataclass(frozen=True)
class _Shared:
    """What sharing out the charges found: the plan (each drug's outcome), its exact cost, the best lower bound
    of the whole problem proved on the way, the rounds taken and each drug's prices in the last."""

    outcomes: list[Outcome]
    cost: float
    bound: float | None
    rounds: int
    prices: list[dict[Charge, float]]


def _solve_shared(parts: Sequence[Problem], table: Mapping[Charge, float], potential: Sequence[frozenset[Charge]],
                  pool: Workers, progress: Progress | None, options: dict[str, Any]) -> _Shared:
    """Plan drug by drug while the drugs share fixed charges (a supplier's delivery to a site, a trip), by
    sharing each charge out among the drugs that use it: a Lagrangian relaxation of "the charge is paid once if
    any drug uses it", whose multipliers are the shares.

    For any shares of each charge that sum to at most its cost, the drugs' least costs at those shares sum to a
    lower bound of the whole problem's optimum (a plan pays each charge it uses in full, at least the shares of
    the drugs using it). The first round shares each charge evenly among the drugs that could use it; each next
    round among those whose plan used it (the others, free to use it: it is paid), and each round's plans are
    re-costed exactly, each charge once. It stops once the best plan proves ``options["gap"]`` against the best
    bound, when the shares no longer change, or after :data:`CHARGE_ROUNDS` rounds (measured over 50 drugs of 23
    sites: a third round moved neither the plan nor the bound by more than 0.3%, and answering the best plan's
    charges, each drug paying nothing for those it uses and all of the others, did not lower the plan's cost).
    """
    prices = _first_prices(potential, table)
    best: tuple[float, list[Outcome]] | None = None
    bound: float | None = -math.inf
    rounds = 0
    highs = options.get("solver") == "highs"
    starts: list[dict[str, Any]] = [{} for _ in parts]

    def proved() -> bool:
        return best is not None and bound is not None and best[0] - bound <= options["gap"] * abs(best[0]) + EPS

    last = not _is_coupled(potential)  # nothing to share out: one round
    while True:
        rounds += 1
        each = [{**starts[n], "charges": prices[n]} for n in range(len(parts))]
        # A round that another will follow unless it proves the gap at once is not worth tightening drug by drug.
        last = last or rounds >= CHARGE_ROUNDS
        outcomes = _solve_to_gap(parts, pool, progress, each, tighten=last, **options)
        cost = _exact(outcomes, table).total
        if best is None or cost < best[0] - EPS:
            best = (cost, outcomes)
        bounds = [o.bound for o in outcomes]
        if bound is not None:
            bound = None if any(b is None for b in bounds) else max(bound, sum(b or 0.0 for b in bounds))
        if proved() or last:
            break
        shared = _shared_out(prices, [o.charges for o in outcomes], table)
        last = shared == prices  # the shares stay: the next round only tightens the drugs
        prices = shared
        starts = [{"start": o.discrete} if highs else {} for o in outcomes]
    assert best is not None
    return _Shared(best[1], best[0], bound, rounds, prices)


def _exact(outcomes: Iterable[Outcome], table: Mapping[Charge, float]) -> Costs:
    """The costs of the drugs' plans together, each shared charge they use paid once."""
    outcomes = list(outcomes)
    return sum((o.costs for o in outcomes), Costs()) + charge_costs(
        frozenset().union(*(o.charges for o in outcomes)), table)


def _combine(outcomes: Iterable[Outcome], solver: str, table: Mapping[Charge, float], notes: tuple[str, ...] = (),
             wall_build: float | None = None, budget_use: BudgetUse | None = None,
             bound: float | bool | None = True) -> Plan:
    """The drugs' outcomes as one plan, its shared charges paid once; ``bound``: the plan's lower bound (True:
    the sum of the outcomes' bounds)."""
    outcomes = list(outcomes)
    costs = _exact(outcomes, table)
    objective = costs.total
    if bound is True:
        bounds = [o.bound for o in outcomes]
        bound = None if any(b is None for b in bounds) else sum(b for b in bounds if b is not None)
    lower = None if bound is None or bound is False else float(bound)
    gap = None if lower is None else (max(0.0, objective - lower) / abs(objective) if abs(objective) > EPS else 0.0)
    status = "optimal" if all(o.status in SOLVED for o in outcomes) else "feasible_time_limit"
    return Plan(
        purchases=tuple(p for o in outcomes for p in o.purchases),
        transfers=tuple(t for o in outcomes for t in o.transfers if t.offer is None),
        purchase_moves=tuple(t for o in outcomes for t in o.transfers if t.offer is not None),
        shortages=tuple(s for o in outcomes for s in o.shortages),
        waste=tuple(w for o in outcomes for w in o.waste),
        stock_use=tuple(u for o in outcomes for u in o.stock_use),
        costs=costs, status=status, objective=objective, best_bound=lower, gap=gap,
        build_seconds=sum(o.build_seconds for o in outcomes) if wall_build is None else wall_build,
        solve_seconds=sum(o.solve_seconds for o in outcomes), solver=solver,
        variables=sum(o.variables for o in outcomes), constraints=sum(o.constraints for o in outcomes),
        notes=notes + ((budget_use.text(),) if budget_use else ()), budget_use=budget_use,
        drugs=tuple(drug_solve for o in outcomes for drug_solve in _drug_solves(o)))


def _drug_solves(outcome: Outcome) -> Iterable[DrugSolve]:
    """An outcome's verdict for each drug it planned."""
    gap = None if outcome.bound is None else (
        max(0.0, outcome.objective - outcome.bound) / abs(outcome.objective) if abs(outcome.objective) > EPS else 0.0)
    for drug in outcome.drugs:
        yield DrugSolve(drug, outcome.status, outcome.objective, outcome.bound, gap,
                        outcome.build_seconds + outcome.solve_seconds, len(outcome.drugs))


def _proved(plan: Plan, gap: float) -> Plan:
    """The plan, its status saying so if its gap is not proved within ``gap`` though every model was solved
    (shared charges or a budget priced: the bound of the relaxation is all there is). A gap above ``gap`` by no
    more than the solver's own tolerances (a millionth) is proved."""
    if plan.status == "optimal" and (plan.gap is None or plan.gap > gap + 1e-6):
        said = "gap not proved" if plan.gap is None else f"gap {plan.gap:.3%} proved, not the {gap:.3%} asked for"
        return replace(plan, status=GAP_NOT_PROVED, notes=(*plan.notes, said))
    return plan


GAP_NOT_PROVED = "gap_not_proved"
RECOSTED = "re-costed with the purchases and moves as edited"  # a plan's note once an officer has edited it


def baseline_costs(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
                   workers: int = 1, executor: Executor | None = None, progress: Progress | None = None,
                   monolithic_drugs: int = MONOLITHIC_BUDGET_DRUGS) -> Costs:
    """Each site buys alone, at the tier its own volume reaches, and nothing moves between sites; the sites keep
    the same supplier limits as the plan (one capacity shared among them) and pay a supplier's delivery to a site
    once whatever drugs it carries.

    Each site is planned exactly without a solver (see :mod:`optimizer.baseline`); a site (or a drug, when a
    capacity binds the sites together) that needs one is solved as its own model, to ``gap``. Drugs that share
    deliveries are planned in one model when there are at most ``monolithic_drugs`` of them; else drug by drug
    with the deliveries shared out as the plan's are (see :func:`_solve_shared`). Within a budget the sites share
    it as the pooled plan's drugs do: each site takes one of its plans that some price of spending makes cheapest,
    those saving most per yuan first (see :func:`optimizer.budget.cheapest_within`; a site left to the solver
    keeps its plan without the budget). ``progress`` is told after each drug how many of them are done.
    ``executor`` and ``workers``: where the drugs are planned, as for :func:`solve`.
    """
    with Workers.of(executor, workers) as pool:
        return _baseline(problem, pool, progress, monolithic_drugs,
                         {"solver": solver, "time_limit": time_limit, "gap": gap})


def _baseline(problem: Problem, pool: Workers, progress: Progress | None, monolithic_drugs: int,
              options: dict[str, Any]) -> Costs:
    gap = options["gap"]
    table = shared_charges(problem, trips=False)
    parts = problem.split_by_drug()
    potential = [potential_charges(part, table, trips=False) for part in parts]
    if _is_coupled(potential) and len(parts) <= monolithic_drugs and len(problem.demands) <= MONOLITHIC_SHARED_DEMANDS:
        outcome = solve_model(problem, pooled=False, transfers=False, **options)
        if progress:
            progress(len(parts), len(parts))
        return outcome.costs + charge_costs(outcome.charges, table)
    prices = _first_prices(potential, table)
    unavoidable = sum(unavoidable_waste(part, part.drugs[0]) for part in parts if part.drugs)
    rounds = 0
    best: tuple[float, list[list[SitePlan]]] | None = None
    bound = -math.inf
    while True:
        rounds += 1
        jobs = [(part, prices[n], problem.budget is not None, options) for n, part in enumerate(parts)]
        results = pool.map(_drug_alone, jobs, weights=[weight(part) for part in parts],
                           names=[", ".join(part.drugs) for part in parts], progress=progress)
        sites = [site for result in results for site in result[0]]
        cost = _exact_alone([site[-1] for site in sites], table).total
        bound = max(bound, sum(result[1] for result in results))
        if best is None or cost < best[0]:
            best = (cost, sites)
        used = [frozenset().union(*(site[-1].charges for site in result[0])) for result in results]
        shared = _shared_out(prices, used, table)
        if best[0] - bound <= gap * abs(best[0]) + EPS or shared == prices or rounds >= BASELINE_CHARGE_ROUNDS:
            break
        prices = shared
    sites = best[1]
    chosen = [site[-1] for site in sites]  # each site's cheapest plan
    if problem.budget is not None:
        chosen = _alone_within(sites, problem.budget, table)
    costs = _exact_alone(chosen, table)
    # The waste no plan could prevent is reported apart (each piece counted all its waste as waste).
    waste = costs.waste + costs.unavoidable_waste
    return replace(costs, waste=max(0.0, waste - unavoidable), unavoidable_waste=unavoidable)


def _drug_alone(job: tuple[Problem, dict[Charge, float], bool, dict[str, Any]]) -> tuple[list[list[SitePlan]], float]:
    """One drug's sites alone at the deliveries' prices: each site's plans (the waste no site can prevent as one
    site more), and the drug's lower bound at those prices."""
    part, prices, every_price, options = job
    unplanned, plans, left = sites_alone(part, every_price=every_price, charges=prices)
    bound = unplanned.total + sum(site[-1].proxy.total for site in plans)
    for alone in left:
        outcome = solve_model(alone, pooled=False, transfers=False, charges=prices, **options)
        plans.append([SitePlan(outcome.costs + Costs(waste=outcome.costs.unavoidable_waste, unavoidable_waste=
                                                     -outcome.costs.unavoidable_waste), outcome.shares,
                               outcome.charges)])
        bound += (outcome.bound if outcome.bound is not None else -math.inf) + outcome.costs.unavoidable_waste
    return [*plans, [SitePlan(unplanned)]], bound


def _exact_alone(plans: Iterable[SitePlan], table: Mapping[Charge, float]) -> Costs:
    plans = list(plans)
    return sum((p.costs for p in plans), Costs()) + charge_costs(frozenset().union(*(p.charges for p in plans)),
                                                                 table)


def _alone_within(sites: list[list[SitePlan]], budget: float, table: Mapping[Charge, float]) -> list[SitePlan]:
    """One plan of each site, within ``budget`` as the sites' plans re-costed exactly spend it (see
    :func:`optimizer.budget.cheapest_within`; the deliveries at their shares, so the choice is tried again within
    less while the deliveries paid once overrun it)."""
    allowed = budget
    for _ in range(5):
        chosen = cheapest_within(sites, allowed, attrgetter("proxy"))
        if chosen is None:
            break
        over = _exact_alone(chosen, table).spending - budget
        if over <= EPS:
            return chosen
        allowed -= over
    return [site[0] for site in sites]  # even spending least might overrun it: then each spends least


def solve(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
          workers: int | None = None, executor: Executor | None = None, baseline: bool = True,
          monolithic_budget_drugs: int = MONOLITHIC_BUDGET_DRUGS, progress: Progress | None = None) -> Plan:
    """Plan pooled purchases and redistribution for ``problem``.

    The drugs are tied only by the budget, if there is one, and by the charges they share: a supplier's delivery to
    a site and a trip between two sites are paid once, whatever drugs they carry. Without either, each drug is its
    own model, solved in parallel worker processes. With few drugs (at most ``monolithic_budget_drugs``), one model
    holds them all, tied exactly. With many, each drug is its own model still: the shared charges are shared out
    among the drugs that use them (see :func:`_solve_shared`), and a budget is priced by a multiplier on spending,
    searched by bisection over the per-drug models (see :func:`_priced_budget`); the plan is re-costed exactly and
    reports the Lagrangian bound and the gap it proves. ``gap`` is the relative gap the plan proves as a whole:
    without a budget each drug gets its share (see :func:`_gap_shares`) and, with HiGHS, at most
    :data:`FIRST_PASS_NODES` nodes before :func:`_solve_to_gap` decides which drugs to solve further; with a
    budget, each model is solved to it (the first pricing round, as without a budget). A plan whose every model was
    solved but whose gap the bound cannot prove has status :data:`GAP_NOT_PROVED`. ``time_limit`` applies to each
    model solved. ``progress`` is told, after each model, how many of the plan's models are solved (a budget or
    shared charges solved by pricing report each round).

    Where the drug models run: on ``executor``, any :class:`concurrent.futures.Executor` (a Dask cluster's
    ``Client.get_executor()``, say), running ``workers`` models at once; without one, in a local process pool of
    ``workers`` processes (the machine's cores by default) made for this plan. Either way the drugs go out in tasks
    of about equal weight, the heaviest first (see :mod:`optimizer.workers`), and a progress callback that raises
    cancels the tasks not finished. The plan names each drug's own verdict in ``Plan.drugs``.
    """
    if solver not in SOLVERS:
        raise PlanningError(f"unknown solver {solver!r}; use one of: {', '.join(SOLVERS)}")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    with Workers.of(executor, workers) as pool:
        return _solve(problem, pool, baseline, monolithic_budget_drugs, progress,
                      {"solver": solver, "time_limit": time_limit, "gap": gap})


def _solve(problem: Problem, pool: Workers, baseline: bool, monolithic_budget_drugs: int,
           progress: Progress | None, options: dict[str, Any]) -> Plan:
    solver, gap = options["solver"], options["gap"]
    table = shared_charges(problem)
    parts = problem.split_by_drug()
    potential = [potential_charges(part, table) for part in parts]
    one_model = len(problem.drugs) <= monolithic_budget_drugs and (problem.budget is not None or (
        _is_coupled(potential) and len(problem.demands) <= MONOLITHIC_SHARED_DEMANDS))
    if one_model:
        outcome = solve_model(problem, **options)
        if progress:
            progress(1, 1)
        use = BudgetUse("one_model") if problem.budget is not None else None
        plan = _combine([outcome], solver, table, budget_use=use)
    elif problem.budget is None:
        shared = _solve_shared(parts, table, potential, pool, progress, options)
        notes = (f"shared charges shared out among the drugs over {shared.rounds} rounds",) if table else ()
        plan = _proved(_combine(shared.outcomes, solver, table, notes, bound=shared.bound), gap)
    else:
        plan = _priced_budget(problem, parts, table, potential, pool, options, progress)
    if baseline:
        plan = replace(plan, baseline=_baseline(problem, pool, None, MONOLITHIC_BUDGET_DRUGS, options))
    return plan


def _priced_budget(problem: Problem, parts: Sequence[Problem], table: Mapping[Charge, float],
                   potential: Sequence[frozenset[Charge]], pool: Workers, options: dict[str, Any],
                   progress: Progress | None) -> Plan:
    """Bisection on the price of spending, for plans that keep within the budget.

    Every round yields a Lagrangian bound (for any price, the least cost plus price times spending beyond the
    budget is at most the optimum within it; the shared charges are shared out as they were at no price, see
    :func:`_solve_shared`, and a delivery's share is spending too) and a plan for each drug. The plan returned
    picks, drug by drug, among the plans of every round (see :func:`optimizer.budget.cheapest_within`), or is a
    round within the budget as it stands, whichever costs less, every choice re-costed exactly (each shared
    charge paid once) and kept only within the budget so re-costed; the search stops as soon as that proves
    ``options["gap"]`` against the best bound, or the price is pinned down. Each round starts every drug from its
    plan of the round before (with HiGHS): only the price changed; a drug whose plans spend the same at both ends
    of the bracket is not solved again.
    """
    assert problem.budget is not None
    budget, gap = problem.budget, options["gap"]
    at: dict[float, list[Outcome]] = {}  # each round's plans, by its price, in the order of the rounds
    bound = -math.inf
    prices: list[dict[Charge, float]] = []

    def keeps_within(price: float, between: tuple[float, float] | None = None) -> bool:
        nonlocal bound, prices
        if not at:  # as if there were no budget: if it does not bind, that is the plan
            shared = _solve_shared(parts, table, potential, pool, progress, options)
            outcomes, prices = shared.outcomes, shared.prices
            if shared.bound is not None:
                bound = max(bound, shared.bound)  # at no price: a bound of the problem within the budget too
        else:
            # A drug whose plans spend the same at two prices keeps that plan at any price between them.
            known = {} if between is None else {
                n: _between(low, high, (between[1] - price) / (between[1] - between[0]), price)
                for n, (low, high) in enumerate(zip(at[between[0]], at[between[1]], strict=True))
                if abs(low.proxy.spending - high.proxy.spending) <= EPS}
            todo = [n for n in range(len(parts)) if n not in known]
            last = next(reversed(at.values()))
            starts = [{"start": last[n].discrete} if options["solver"] == "highs" else {} for n in todo]

            def told(done: int, total: int) -> None:  # the drugs kept count as done: a round reports on all
                if progress:
                    progress(len(known) + done, len(known) + total)

            if not todo:
                told(0, 0)
            # The drugs pay the shares they paid at no price (a delivery's share is spending: build_model prices it).
            each = [{**starts[k], "charges": prices[n]} for k, n in enumerate(todo)]
            solved = dict(zip(todo, _solve_each([parts[n] for n in todo], pool, told, each,
                                                price_of_spending=price, **options), strict=True))
            outcomes = [known[n] if n in known else solved[n] for n in range(len(parts))]
            if all(o.bound is not None for o in outcomes):
                bound = max(bound, sum(o.bound or 0.0 for o in outcomes) - price * budget)
        at[price] = outcomes
        return _exact(outcomes, table).spending <= budget + EPS

    def best() -> list[Outcome] | None:
        # The greedy choice, or a round as it stands if that costs less (the greedy is not always optimal); every
        # choice re-costed exactly, and kept only within the budget so re-costed.
        each_drug = [list(plans) for plans in zip(*at.values(), strict=True)]
        plans = [cheapest_within(each_drug, budget, attrgetter("proxy"))]
        plans += list(at.values())
        within = [p for p in plans if p is not None and _exact(p, table).spending <= budget + EPS]
        return min(within, key=lambda p: _exact(p, table).total, default=None)

    def proved() -> bool:
        plan = best()
        cost = _exact(plan, table).total if plan is not None else math.inf
        return cost - bound <= gap * abs(cost) + EPS

    if keeps_within(0.0):
        plan = _combine(at[0.0], options["solver"], table, budget_use=BudgetUse("not_binding"),
                        bound=bound if math.isfinite(bound) else None)
        return _proved(plan, gap)
    low, high = 0.0, 1.0
    while not keeps_within(high) and high < 1e6:
        low, high = high, high * 4
    for _ in range(30):
        if proved() or high - low < 1e-4 * max(1.0, high):
            break
        middle = (low + high) / 2
        if keeps_within(middle, (low, high)):
            high = middle
        else:
            low = middle
    chosen = best()
    if chosen is None:
        raise PlanningError("no plan found within the budget: even spending least overruns it once each shared "
                            "delivery is paid")
    plan = _combine(chosen, options["solver"], table, budget_use=BudgetUse("priced", high, len(at)),
                    bound=bound if math.isfinite(bound) else None)
    return _proved(plan, gap)


def _between(low: Outcome, high: Outcome, weight: float, price: float) -> Outcome:
    """A drug's plan at ``price``, between the prices of ``low`` and ``high`` (``weight`` on ``low``), whose plans
    spend the same: the cheaper of the two. The least cost plus price times spending is concave in the price (a
    least of linear functions), so the weighted bounds bound it there too."""
    plan = min((low, high), key=lambda o: o.proxy.total)
    bound = None if low.bound is None or high.bound is None else weight * low.bound + (1 - weight) * high.bound
    return replace(plan, objective=plan.proxy.total + price * plan.proxy.spending, bound=bound,
                   build_seconds=0.0, solve_seconds=0.0)


def evaluate(problem: Problem, decisions: Decisions, *, solver: str = "highs", time_limit: float = 60.0,
             baseline: Costs | None = None) -> Plan:
    """Re-cost a plan whose purchases and moves are given (an officer's edit), with the same accounting as
    :func:`solve`: the tier each pooled volume reaches, the stock each site uses, shortages and waste, and each
    shared charge (a supplier's delivery to a site, a trip) paid once.

    Raises :class:`PlanningError` listing every rule the decisions break (see ``check_decisions``).
    """
    from optimizer.evaluate import check_decisions

    broken = check_decisions(problem, decisions)
    if broken:
        raise PlanningError("the plan breaks " + ("a rule" if len(broken) == 1 else f"{len(broken)} rules") + ": "
                            + "; ".join(str(v) for v in broken), broken)
    outcomes = []
    for part in problem.split_by_drug():
        mine = decisions.for_drug({o.id for o in part.offers}, {lot.id for lot in part.lots})
        outcome = solve_model(part, solver=solver, time_limit=time_limit, gap=1e-6, fixed=mine)
        outcomes.append(replace(outcome, charges=charges_of(mine, problem)))
    table = shared_charges(problem)
    exact = _exact(outcomes, table).total  # nothing was chosen but the stock's use: the plan is its own bound
    return replace(_combine(outcomes, solver, table, (RECOSTED,),
                            bound=exact), baseline=baseline)
