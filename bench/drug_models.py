"""Where a plan's solve time goes, drug by drug, and the ceilings of the ways to cut it.

    .venv/bin/python bench/drug_models.py          # the first 200 drugs of the city consortium
    BENCH_DRUGS=100 BENCH_LIMITS=0.1,0.2 ...
    BENCH_PROVINCE_DRUGS=3 ...                     # also that many essential drugs of the province

All in one process, each drug model solved to its share of a 0.5% plan gap with the plan's node limit (as the
planner's first pass does), unless said otherwise. Prints:

- how the time is spread over the drugs (at a 10% tolerance, where the root node is nearly all of it);
- how far each kind of integrality puts the optimum above what is left without it (essential drugs);
- the pass given every drug's optimum as a start (the most a primal heuristic could save), with and without
  HiGHS's sub-MIP heuristics;
- the pass with a time limit per drug model (what a deadline would cost in gap);
- the pass without transfers between sites (what redistribution costs in solve time, and saves in plan cost);
  and, for that many essential drugs of the province (some 500 sites each), each solved to 0.5% within 60 s
  with and without transfers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# bench/optimizer.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pulp  # noqa: E402

from optimizer import scenarios  # noqa: E402
from optimizer.model import build_model  # noqa: E402
from optimizer.planner import (  # noqa: E402
    FIRST_PASS_NODES,
    PlanningError,
    _gap_shares,
    _plan_gap,
    _solve_each,
    make_solver,
    solve_model,
)
from optimizer.problem import Problem  # noqa: E402

PLAN_GAP = 0.005


def solve_seconds(part: Problem, gap: float, **options: object) -> float:
    started = time.perf_counter()
    prob, _ = build_model(part)
    prob.solve(make_solver("highs", 60, gap, **options))  # type: ignore[arg-type]
    return time.perf_counter() - started


def relaxed_optimum(part: Problem, relax: Callable[[dict[str, dict]], list[pulp.LpVariable]]) -> float:
    prob, (model,) = build_model(part)
    for variable in relax({"packs": model.buy, "tiers": model.tier_on, "orders": model.order}):
        variable.cat = pulp.LpContinuous
    prob.solve(make_solver("highs", 60, 1e-6))
    return float(pulp.value(prob.objective))


def spread(parts: list[Problem]) -> None:
    seconds = sorted((solve_seconds(part, 0.1, node_limit=FIRST_PASS_NODES) for part in parts), reverse=True)
    total = sum(seconds)
    print(f"every drug to a 10% tolerance: {total:.2f} s")
    for share in (0.05, 0.125, 0.3, 0.5):
        n = max(1, round(share * len(seconds)))
        print(f"  the slowest {n} drugs ({share:.0%}) take {sum(seconds[:n]) / total:.0%} of it")


def integrality(parts: list[Problem]) -> None:
    essential = [part for part in parts if part.policies and part.policies[0].essential][:26]
    kinds: dict[str, Callable[[dict[str, dict]], list[pulp.LpVariable]]] = {
        "whole packs": lambda groups: list(groups["packs"].values()),
        "tiers": lambda groups: list(groups["tiers"].values()),
        "orders": lambda groups: list(groups["orders"].values()),
        "all (the LP)": lambda groups: [v for group in groups.values() for v in group.values()],
    }
    optimum = sum(relaxed_optimum(part, lambda groups: []) for part in essential)
    print(f"{len(essential)} essential drugs, optimum {optimum:,.0f}; relaxing one kind of integrality:")
    for kind, relax in kinds.items():
        relaxed = sum(relaxed_optimum(part, relax) for part in essential)
        print(f"  {kind:<14} {(optimum - relaxed) / optimum:7.2%} below the optimum")


def first_pass(parts: list[Problem], shares: list[float], time_limit: float = 60.0,
               transfers: bool = True) -> tuple[float, float, float]:
    """Seconds, plan gap and plan cost of the planner's first pass, in one process."""
    started = time.perf_counter()
    outcomes = _solve_each(parts, 1, None, [{"gap": share} for share in shares], solver="highs",
                           time_limit=time_limit, gap=PLAN_GAP, node_limit=FIRST_PASS_NODES, transfers=transfers)
    return time.perf_counter() - started, _plan_gap(outcomes) or 0.0, sum(o.objective for o in outcomes)


def starts(parts: list[Problem], shares: list[float]) -> None:
    optima = [solve_model(part, gap=1e-5).discrete for part in parts]
    seconds, gap, _ = first_pass(parts, shares)
    print(f"first pass: {seconds:.2f} s, plan gap {gap:.3%}")
    with_start = [0.0, 0.0]
    for n, (part, share) in enumerate(zip(parts, shares, strict=True)):
        for k, heuristics in enumerate((True, False)):
            started = time.perf_counter()
            prob, _ = build_model(part)
            solver = make_solver("highs", 60, share, FIRST_PASS_NODES, optima[n])
            if not heuristics:
                solver.optionsDict.update(mip_heuristic_run_rins=False, mip_heuristic_run_rens=False)
            prob.solve(solver)
            with_start[k] += time.perf_counter() - started
    print(f"  each drug started from its optimum: {with_start[0] / seconds:.2f} of the time; "
          f"with sub-MIP heuristics off too: {with_start[1] / seconds:.2f}")


def limits(parts: list[Problem], shares: list[float], each: list[float]) -> None:
    seconds, gap, _ = first_pass(parts, shares)
    print(f"first pass: {seconds:.2f} s, plan gap {gap:.3%}; with a time limit per drug model:")
    for limit in each:
        try:
            limited, limited_gap, _ = first_pass(parts, shares, limit)
        except PlanningError:  # some drug had no plan yet when its time ran out
            print(f"  {limit} s: some drug has no plan by then")
            continue
        print(f"  {limit} s: {limited / seconds:.2f} of the time, plan gap {limited_gap:.3%}")


def transfers(parts: list[Problem], shares: list[float]) -> None:
    seconds, gap, cost = first_pass(parts, shares)
    alone, alone_gap, alone_cost = first_pass(parts, shares, transfers=False)
    print(f"first pass: {seconds:.2f} s, plan gap {gap:.3%}, cost {cost:,.0f}; without transfers: "
          f"{alone / seconds:.2f} of the time, plan gap {alone_gap:.3%}, cost {alone_cost / cost:.2f} times as much")


def province_transfers(drugs: int) -> None:
    essential = [part for part in scenarios.province(drugs=4 * drugs).split_by_drug()
                 if part.policies and part.policies[0].essential][:drugs]
    print(f"{len(essential)} essential drugs of the province, each to {PLAN_GAP:.1%} within 60 s:")
    for part in essential:
        said = []
        for moves in (True, False):
            started = time.perf_counter()
            outcome = solve_model(part, gap=PLAN_GAP, time_limit=60, transfers=moves)
            gap = (outcome.objective - (outcome.bound or 0.0)) / outcome.objective
            said.append(f"{time.perf_counter() - started:5.1f} s, gap {gap:.2%}, cost {outcome.objective:,.0f}")
        print(f"  {part.drugs[0]} ({len(part.demands)} sites): with transfers {said[0]}; without {said[1]}")


def main() -> None:
    parts = scenarios.city(drugs=int(os.environ.get("BENCH_DRUGS", "200"))).split_by_drug()
    shares = _gap_shares(parts, PLAN_GAP)
    print(f"city, first {len(parts)} drugs, one process")
    spread(parts)
    integrality(parts)
    starts(parts, shares)
    limits(parts, shares, [float(x) for x in os.environ.get("BENCH_LIMITS", "0.1,0.2").split(",")])
    transfers(parts, shares)
    if int(os.environ.get("BENCH_PROVINCE_DRUGS", "0")):
        province_transfers(int(os.environ["BENCH_PROVINCE_DRUGS"]))


if __name__ == "__main__":
    main()
