"""Solving: drug by drug (in parallel worker processes), a budget priced by a multiplier or in one model,
the solver's own status, bound and gap, and the site-by-site baseline every plan is compared with."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from operator import attrgetter
from typing import Any, TypeVar

import pulp

from optimizer.baseline import sites_alone
from optimizer.budget import cheapest_within
from optimizer.lines import EPS, extract, is_whole, value
from optimizer.model import DrugModel, build_model
from optimizer.plan import (
    BudgetUse,
    Costs,
    Plan,
    PlanningError,
    PurchaseLine,
    ShortageLine,
    StockUseLine,
    TransferLine,
    WasteLine,
)
from optimizer.problem import Decisions, Problem

Progress = Callable[[int, int], None]  # (models solved, models in all)
Job = TypeVar("Job")
Result = TypeVar("Result")

SOLVERS = ("highs", "cbc")

# Below this many drugs a budget is planned in one model (exact); above it, by pricing the budget.
MONOLITHIC_BUDGET_DRUGS = 25
LOOSEST_GAP = 0.05  # no drug's own tolerance is looser than this, however small the drug
# Branch-and-bound nodes a drug gets on the first pass. Most drugs end at the root; the few that need many more
# nodes are stopped with their plan and bound, and solved again without the limit only if the plan as a whole
# has not proved its gap (a node limit, unlike a time limit, gives the same plan on a busy machine).
FIRST_PASS_NODES = 50
NODE_LIMIT = "node_limit"  # an outcome stopped at FIRST_PASS_NODES, with a plan and a bound


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
    return (v for m in models for group in (m.use, m.waste, m.short) for v in group.values())


def _stock_is_whole(models: Sequence[DrugModel]) -> bool:
    return all(is_whole(value(v)) for v in _stock_variables(models))


def _make_stock_whole(prob: pulp.LpProblem, solver: str, time_limit: float, what: str) -> float:
    """Solve the stock part again with the purchases, orders and tiers as found, for a solution whose stock
    quantities are whole (every basic one is; see :mod:`optimizer.model`). A solver's heuristics may end at a
    point that is not basic; this costs no more and moves whole units. Returns the objective."""
    for v in prob.variables():
        if v.cat == pulp.LpInteger:
            v.lowBound = v.upBound = round(value(v))
            v.cat = pulp.LpContinuous
    prob.solve(make_solver(solver, time_limit, 0.0))
    if prob.sol_status != pulp.LpSolutionOptimal:
        raise PlanningError(f"{what}: the stock could not be planned in whole units for the purchases found")
    return float(pulp.value(prob.objective) or 0.0)


def solve_model(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
                pooled: bool = True, transfers: bool = True, price_of_spending: float = 0.0,
                fixed: Decisions | None = None, node_limit: int | None = None,
                start: Mapping[str, float] | None = None) -> Outcome:
    """Build and solve one model for every drug of ``problem`` (use it on one drug, or small problems).

    ``node_limit`` and ``start`` are HiGHS's: see :func:`make_solver`; ``Outcome.discrete`` is a ``start``.
    """
    started = time.perf_counter()
    prob, models = build_model(problem, pooled=pooled, transfers=transfers, price_of_spending=price_of_spending,
                               fixed=fixed)
    built = time.perf_counter()
    what = f"plan for {', '.join(problem.drugs[:3])}{'...' if len(problem.drugs) > 3 else ''}"
    if not prob.variables():
        costs = sum((Costs(waste=float(m.costs["waste"].constant)) for m in models), Costs())
        wasted = tuple(w for m in models for w in extract(m, problem).waste)
        return Outcome((), (), (), wasted, (), costs, "optimal", costs.total, costs.total, built - started, 0.0, 0, 0)
    prob.solve(make_solver(solver, time_limit, gap, node_limit, start))
    if node_limit is not None and solver == "highs" and not _highs_has_plan(prob.solverModel):
        prob.solve(make_solver(solver, time_limit, gap))  # no plan yet at the node limit: go on without it
    solved = time.perf_counter()
    status, objective, bound = _verdict(prob, solver, what, gap)
    discrete = {v.name: round(value(v)) for v in prob.variables() if v.cat == pulp.LpInteger}
    if not _stock_is_whole(models):
        objective = _make_stock_whole(prob, solver, time_limit, what)
    budgeted = problem.budget is not None or price_of_spending > 0
    lines = [extract(model, problem, budgeted) for model in models]
    return Outcome(tuple(p for x in lines for p in x.purchases), tuple(t for x in lines for t in x.transfers),
                   tuple(s for x in lines for s in x.shortages), tuple(w for x in lines for w in x.waste),
                   tuple(u for x in lines for u in x.stock_use), sum((x.costs for x in lines), Costs()), status,
                   objective, bound, built - started, solved - built, prob.numVariables(), prob.numConstraints(),
                   discrete)


def _solve_one(args: tuple[Problem, dict[str, Any]]) -> Outcome:
    problem, options = args
    return solve_model(problem, **options)


def _solve_each(parts: Sequence[Problem], workers: int, progress: Progress | None = None,
                each: Sequence[dict[str, Any]] | None = None, **options: Any) -> list[Outcome]:
    """Solve each part as its own model (``each``: the options of each part's own, over ``options``)."""
    jobs = [(part, options if each is None else {**options, **each[n]}) for n, part in enumerate(parts)]
    return list(_in_workers(_solve_one, jobs, workers, progress))


def _in_workers(work: Callable[[Job], Result], jobs: Sequence[Job], workers: int,
                progress: Progress | None = None) -> Iterator[Result]:
    """``work`` done on each job, in order: in worker processes when there are several of both. ``progress`` is
    told after each job how many are done; if it raises (a run cancelled), the work stops there and then."""

    def told(results: Iterable[Result]) -> Iterator[Result]:
        for done, result in enumerate(results, 1):
            if progress:
                progress(done, len(jobs))
            yield result

    if workers <= 1 or len(jobs) < 2:
        yield from told(map(work, jobs))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # Small chunks: a drug's time varies a hundredfold, and the last chunk handed out decides when the
        # pool ends (with 1,500 drugs in chunks of 93 one worker could idle for a tenth of the run).
        results = pool.map(work, jobs, chunksize=max(1, len(jobs) // (workers * 64)))
        finished = False
        try:
            for result in told(results):  # noqa: UP028 (yield from would close the map first: see below)
                yield result
            finished = True
        finally:
            if not finished:
                # Stopped early (a run cancelled, a model failed). The pool would finish the chunks in hand, and a
                # province's chunk of drugs can take minutes: end its workers instead (Python 3.14 brings a public
                # way). The map is left open until then: closed, it would cancel the jobs left, and the pool,
                # finding its workers gone, would fail on failing them (Python 3.11).
                for process in list((pool._processes or {}).values()):
                    process.terminate()


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


def _solve_to_gap(parts: Sequence[Problem], workers: int, progress: Progress | None = None,
                  **options: Any) -> list[Outcome]:
    """Solve each drug to its share of the gap (HiGHS: within :data:`FIRST_PASS_NODES`), then re-solve the
    drugs furthest from their bound, tighter and without a node limit, until the plan as a whole proves
    ``options["gap"]`` (or every drug has been tightened)."""
    gap, highs = options["gap"], options.get("solver") == "highs"
    first = {**options, "node_limit": FIRST_PASS_NODES} if highs else options
    outcomes = _solve_each(parts, workers, progress, [{"gap": g} for g in _gap_shares(parts, gap)], **first)

    def slack(o: Outcome) -> float:
        return o.objective - o.bound if o.bound is not None else 0.0

    # Worth tightening: drugs that stopped at their own, looser tolerance or at the node limit (not at the time
    # limit, which a second solve would meet again) short of the one they will be re-solved to; largest slack
    # first.
    loose = sorted((n for n, o in enumerate(outcomes)
                    if o.status in ("optimal", NODE_LIMIT) and slack(o) > gap / 2 * abs(o.objective) + EPS),
                   key=lambda n: -slack(outcomes[n]))
    tightened = 0
    while loose and (plan_gap := _plan_gap(outcomes)) is not None and plan_gap > gap:
        batch, loose = loose[:max(1, 2 * workers)], loose[2 * workers:]
        # Each starts from the plan it has, so it ends no worse and HiGHS's heuristics need not find it again.
        starts = [{"start": outcomes[n].discrete} if highs else {} for n in batch]
        for n, outcome in zip(batch, _solve_each([parts[n] for n in batch], workers, None, starts,
                                                  **{**options, "gap": gap / 2}), strict=True):
            outcomes[n] = outcome
        tightened += len(batch)
        if progress:
            progress(len(parts) + tightened, len(parts) + tightened + len(loose))
    if tightened and progress:
        progress(len(parts) + tightened, len(parts) + tightened)  # the rest need no second solve
    # A drug still stopped at its node limit is within the gap the plan proves as a whole: that is the promise.
    return [replace(o, status="optimal") if o.status == NODE_LIMIT else o for o in outcomes]


def _combine(outcomes: Iterable[Outcome], solver: str, notes: tuple[str, ...] = (),
             wall_build: float | None = None, budget_use: BudgetUse | None = None) -> Plan:
    outcomes = list(outcomes)
    costs = sum((o.costs for o in outcomes), Costs())
    objective = sum(o.objective for o in outcomes)
    bounds = [o.bound for o in outcomes]
    bound = None if any(b is None for b in bounds) else sum(b for b in bounds if b is not None)
    gap = None if bound is None else (max(0.0, objective - bound) / abs(objective) if abs(objective) > EPS else 0.0)
    status = "optimal" if all(o.status == "optimal" for o in outcomes) else "feasible_time_limit"
    return Plan(
        purchases=tuple(p for o in outcomes for p in o.purchases),
        transfers=tuple(t for o in outcomes for t in o.transfers),
        shortages=tuple(s for o in outcomes for s in o.shortages),
        waste=tuple(w for o in outcomes for w in o.waste),
        stock_use=tuple(u for o in outcomes for u in o.stock_use),
        costs=costs, status=status, objective=objective, best_bound=bound, gap=gap,
        build_seconds=sum(o.build_seconds for o in outcomes) if wall_build is None else wall_build,
        solve_seconds=sum(o.solve_seconds for o in outcomes), solver=solver,
        variables=sum(o.variables for o in outcomes), constraints=sum(o.constraints for o in outcomes),
        notes=notes + ((budget_use.text(),) if budget_use else ()), budget_use=budget_use)


def baseline_costs(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
                   workers: int = 1, progress: Progress | None = None) -> Costs:
    """Each site buys alone, at the tier its own volume reaches, and nothing moves between sites.

    Each site is planned exactly without a solver (see :mod:`optimizer.baseline`); the rare site whose offers
    have too many combinations to try is solved as its own model, to ``gap``. Within a budget the sites share
    it as the pooled plan's drugs do: each site takes one of its plans that some price of spending makes
    cheapest, those saving most per yuan first (see :func:`optimizer.budget.cheapest_within`; a site left to the
    solver keeps its plan without the budget). ``progress`` is told after each drug how many of them are done.
    """
    unplanned, plans, left = Costs(), [], []
    each_drug = partial(sites_alone, every_price=problem.budget is not None)
    parts = problem.split_by_drug()
    for drug_unplanned, drug_plans, drug_left in _in_workers(each_drug, parts, workers, progress):
        unplanned += drug_unplanned
        plans += drug_plans
        left += drug_left
    outcomes = _solve_to_gap(left, workers, solver=solver, time_limit=time_limit, gap=gap,
                             pooled=False, transfers=False) if left else []
    plans += [[o.costs] for o in outcomes]
    chosen = [site[-1] for site in plans]  # each site's cheapest plan
    if problem.budget is not None:
        # Even spending least might overrun it (sites left to the solver): then each spends least.
        chosen = cheapest_within(plans, problem.budget, lambda costs: costs) or [site[0] for site in plans]
    return sum(chosen, unplanned)


def solve(problem: Problem, *, solver: str = "highs", time_limit: float = 60.0, gap: float = 1e-4,
          workers: int | None = None, baseline: bool = True,
          monolithic_budget_drugs: int = MONOLITHIC_BUDGET_DRUGS, progress: Progress | None = None) -> Plan:
    """Plan pooled purchases and redistribution for ``problem``.

    Without a budget the drugs are independent: each is its own model, solved in parallel worker processes.
    With a budget and few drugs, one model holds them all; with many, the budget is priced by a multiplier
    on spending, searched by bisection over the per-drug models (see :func:`_priced_budget`; the plan reports
    the Lagrangian bound and the gap it proves). ``gap`` is the relative gap the plan proves as a whole: without
    a budget each drug gets its share (see :func:`_gap_shares`) and, with HiGHS, at most
    :data:`FIRST_PASS_NODES` nodes before :func:`_solve_to_gap` decides which drugs to solve further; with a
    budget, each model is solved to it (the first pricing round, as without a budget).
    ``time_limit`` applies to each model solved. ``progress`` is told, after each model, how many of the plan's
    models are solved (a budget solved by pricing reports each pricing round).
    """
    if solver not in SOLVERS:
        raise PlanningError(f"unknown solver {solver!r}; use one of: {', '.join(SOLVERS)}")
    workers = workers if workers is not None else (os.cpu_count() or 1)
    options: dict[str, Any] = {"solver": solver, "time_limit": time_limit, "gap": gap}
    if problem.budget is None:
        plan = _combine(_solve_to_gap(problem.split_by_drug(), workers, progress, **options), solver)
    elif len(problem.drugs) <= monolithic_budget_drugs:
        plan = _combine([solve_model(problem, **options)], solver, budget_use=BudgetUse("one_model"))
    else:
        plan = _priced_budget(problem, workers, options, progress)
    if baseline:
        plan = replace(plan, baseline=baseline_costs(problem, workers=workers, **options))
    return plan


def _priced_budget(problem: Problem, workers: int, options: dict[str, Any], progress: Progress | None) -> Plan:
    """Bisection on the price of spending, for plans that keep within the budget.

    Every round yields a Lagrangian bound (for any price, the least cost plus price times spending beyond the
    budget is at most the optimum within it) and a plan for each drug. The plan returned picks, drug by drug,
    among the plans of every round (see :func:`optimizer.budget.cheapest_within`), or is a round within the
    budget as it stands, whichever costs less; the search stops as soon as that proves ``options["gap"]``
    against the best bound, or the price is pinned down. Each round starts every drug from its plan of the round
    before (with HiGHS): only the price changed; a drug whose plans spend the same at both ends of the bracket is
    not solved again.
    """
    assert problem.budget is not None
    budget, parts, gap = problem.budget, problem.split_by_drug(), options["gap"]
    at: dict[float, list[Outcome]] = {}  # each round's plans, by its price, in the order of the rounds
    bound = -math.inf

    def keeps_within(price: float, between: tuple[float, float] | None = None) -> bool:
        nonlocal bound
        if not at:  # as if there were no budget: if it does not bind, that is the plan
            outcomes = _solve_to_gap(parts, workers, progress, **options)
        else:
            # A drug whose plans spend the same at two prices keeps that plan at any price between them.
            known = {} if between is None else {
                n: _between(low, high, (between[1] - price) / (between[1] - between[0]), price)
                for n, (low, high) in enumerate(zip(at[between[0]], at[between[1]], strict=True))
                if abs(low.costs.spending - high.costs.spending) <= EPS}
            todo = [n for n in range(len(parts)) if n not in known]
            last = next(reversed(at.values()))
            starts = [{"start": last[n].discrete} for n in todo] if options["solver"] == "highs" else None

            def told(done: int, total: int) -> None:  # the drugs kept count as done: a round reports on all
                if progress:
                    progress(len(known) + done, len(known) + total)

            if not todo:
                told(0, 0)
            solved = dict(zip(todo, _solve_each([parts[n] for n in todo], workers, told, starts,
                                                price_of_spending=price, **options), strict=True))
            outcomes = [known[n] if n in known else solved[n] for n in range(len(parts))]
        at[price] = outcomes
        if all(o.bound is not None for o in outcomes):
            bound = max(bound, sum(o.bound or 0.0 for o in outcomes) - price * budget)
        return sum(o.costs.spending for o in outcomes) <= budget + EPS

    def best() -> list[Outcome] | None:
        # The greedy choice, or a round as it stands if that costs less (the greedy is not always optimal).
        each_drug = [list(plans) for plans in zip(*at.values(), strict=True)]
        plans = [cheapest_within(each_drug, budget, attrgetter("costs"))]
        plans += [r for r in at.values() if sum(o.costs.spending for o in r) <= budget + EPS]
        return min((p for p in plans if p is not None), key=lambda p: sum(o.costs.total for o in p), default=None)

    def proved() -> bool:
        plan = best()
        cost = sum(o.costs.total for o in plan) if plan is not None else math.inf
        return cost - bound <= gap * abs(cost) + EPS

    if keeps_within(0.0):
        return _combine(at[0.0], options["solver"], budget_use=BudgetUse("not_binding"))
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
    assert chosen is not None  # the round at ``high`` keeps within the budget
    plan = _combine(chosen, options["solver"], budget_use=BudgetUse("priced", high, len(at)))
    cost = plan.costs.total
    lower = bound if math.isfinite(bound) else None
    return replace(plan, objective=cost, best_bound=lower, gap=None if lower is None else
                   max(0.0, cost - lower) / abs(cost) if abs(cost) > EPS else 0.0)


def _between(low: Outcome, high: Outcome, weight: float, price: float) -> Outcome:
    """A drug's plan at ``price``, between the prices of ``low`` and ``high`` (``weight`` on ``low``), whose plans
    spend the same: the cheaper of the two. The least cost plus price times spending is concave in the price (a
    least of linear functions), so the weighted bounds bound it there too."""
    plan = min((low, high), key=lambda o: o.costs.total)
    bound = None if low.bound is None or high.bound is None else weight * low.bound + (1 - weight) * high.bound
    return replace(plan, objective=plan.costs.total + price * plan.costs.spending, bound=bound,
                   build_seconds=0.0, solve_seconds=0.0)


def evaluate(problem: Problem, decisions: Decisions, *, solver: str = "highs", time_limit: float = 60.0,
             baseline: Costs | None = None) -> Plan:
    """Re-cost a plan whose purchases and transfers are given (an officer's edit), with the same accounting
    as :func:`solve`: the tier each pooled volume reaches, stock used where it lies, shortages and waste.

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
        try:
            outcomes.append(solve_model(part, solver=solver, time_limit=time_limit, gap=1e-6, fixed=mine))
        except PlanningError as error:
            raise PlanningError(f"drug {part.drugs[0]}: the transfers into its sites together exceed what they "
                                f"can use before the lots expire ({error})") from error
    return replace(_combine(outcomes, solver, ("re-costed with the purchases and transfers as edited",)),
                   baseline=baseline)
