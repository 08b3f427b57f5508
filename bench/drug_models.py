"""Where a plan's solve time goes, drug by drug, and the ceilings of the ways to cut it.

    .venv/bin/python bench/drug_models.py          # the first 200 drugs of the city consortium
    BENCH_DRUGS=100 BENCH_LIMITS=0.1,0.2 ...
    BENCH_PROVINCE_DRUGS=3 ...                     # also that many essential drugs of the province
    BENCH_SITE_BOUND=5 ...                         # also the best bound by site, on that many city drugs

All in one process, each drug model solved to its share of a 0.5% plan gap with the plan's node limit (as the
planner's first pass does), unless said otherwise. Prints:

- how the time is spread over the drugs (at a 10% tolerance, where the root node is nearly all of it);
- how far each kind of integrality puts the optimum above what is left without it (essential drugs);
- the pass given every drug's optimum as a start (the most a primal heuristic could save), with and without
  HiGHS's sub-MIP heuristics;
- the pass with a time limit per drug model (what a deadline would cost in gap);
- the pass without transfers between sites (what redistribution costs in solve time, and saves in plan cost);
  and, for that many essential drugs of the province (some 500 sites each), each solved to 0.5% within 60 s
  with and without transfers;
- how close to the optimum the best bound of a decomposition by site comes (Dantzig-Wolfe, solved to the end by
  column generation), on essential drugs of the city and, if asked for, of the province.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

# bench/optimizer.py is named like the package: keep this folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import highspy  # noqa: E402
import numpy as np  # noqa: E402
import pulp  # noqa: E402
from scipy.sparse import csr_matrix  # noqa: E402
from scipy.sparse.csgraph import connected_components  # noqa: E402

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
    essential_drugs = essential(parts, 26)
    kinds: dict[str, Callable[[dict[str, dict]], list[pulp.LpVariable]]] = {
        "whole packs": lambda groups: list(groups["packs"].values()),
        "tiers": lambda groups: list(groups["tiers"].values()),
        "orders": lambda groups: list(groups["orders"].values()),
        "all (the LP)": lambda groups: [v for group in groups.values() for v in group.values()],
    }
    optimum = sum(relaxed_optimum(part, lambda groups: []) for part in essential_drugs)
    print(f"{len(essential_drugs)} essential drugs, optimum {optimum:,.0f}; relaxing one kind of integrality:")
    for kind, relax in kinds.items():
        relaxed = sum(relaxed_optimum(part, relax) for part in essential_drugs)
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


def essential(parts: list[Problem], drugs: int) -> list[Problem]:
    return [part for part in parts if part.policies and part.policies[0].essential][:drugs]


def province_essential(drugs: int) -> list[Problem]:
    return essential(scenarios.province(drugs=4 * drugs).split_by_drug(), drugs)


def province_transfers(parts: list[Problem]) -> None:
    print(f"{len(parts)} essential drugs of the province, each to {PLAN_GAP:.1%} within 60 s:")
    for part in parts:
        said = []
        for moves in (True, False):
            started = time.perf_counter()
            outcome = solve_model(part, gap=PLAN_GAP, time_limit=60, transfers=moves)
            gap = (outcome.objective - (outcome.bound or 0.0)) / outcome.objective
            said.append(f"{time.perf_counter() - started:5.1f} s, gap {gap:.2%}, cost {outcome.objective:,.0f}")
        print(f"  {part.drugs[0]} ({len(part.demands)} sites): with transfers {said[0]}; without {said[1]}")


class SiteBlocks:
    """One drug's model split by site for Dantzig-Wolfe: the rows that tie sites together (the pooled volume each
    tier prices, and the stock rows of each site that stock moves into or out of) are the master's; every other row
    stays in its block, a site with what it buys and uses (or an offer's tiers), whose plans the pricing finds
    exactly with HiGHS. The master's optimum is the best bound any decomposition by site (or Lagrangian over those
    rows) can prove."""

    def __init__(self, prob: pulp.LpProblem) -> None:
        variables = prob.variables()
        column = {v.name: n for n, v in enumerate(variables)}
        self.cost = np.zeros(len(variables))
        for v, c in prob.objective.items():
            self.cost[column[v.name]] = c
        self.offset = float(prob.objective.constant)
        self.low = np.array([v.lowBound for v in variables], dtype=float)
        self.high = np.array([np.inf if v.upBound is None else v.upBound for v in variables], dtype=float)
        self.whole = np.array([v.cat == pulp.LpInteger for v in variables])
        rows, cols, coefs, low, high, ties = [], [], [], [], [], []
        constraints = prob.constraints()
        for r, row in enumerate(constraints):
            name = row.name or ""
            for v, c in row.items():
                rows.append(r)
                cols.append(column[v.name])
                coefs.append(c)
            rhs = -row.constant
            low.append(rhs if row.sense in (pulp.LpConstraintGE, pulp.LpConstraintEQ) else -np.inf)
            high.append(rhs if row.sense in (pulp.LpConstraintLE, pulp.LpConstraintEQ) else np.inf)
            # The pooled volume ties the sites' purchases; stock moving between sites ties their stock rows.
            ties.append("tier_prices_every_pack" in name or "volume_is_whole_packs" in name or
                        ("stock_balance" in name and any("_flow_" in v.name for v in row)))
        matrix = csr_matrix((coefs, (rows, cols)), shape=(len(constraints), len(variables)))
        row_low, row_high, tie = np.array(low), np.array(high), np.array(ties)
        self.master_rows = matrix[tie]
        own = matrix[~tie]
        touching = own.T @ own
        count, label = connected_components(touching, directed=False)
        self.blocks: list[tuple[np.ndarray, highspy.Highs]] = []
        for b in range(count):
            cols_b = np.flatnonzero(label == b)
            rows_b = np.flatnonzero(np.asarray(abs(own[:, cols_b]).sum(axis=1)).ravel() > 0)
            self.blocks.append((cols_b, self._block(own[rows_b][:, cols_b], row_low[~tie][rows_b],
                                                    row_high[~tie][rows_b], cols_b)))
        self.tie_low, self.tie_high = row_low[tie], row_high[tie]

    def _block(self, rows: csr_matrix, low: np.ndarray, high: np.ndarray, cols: np.ndarray) -> highspy.Highs:
        block = highspy.Highs()
        for option, setting in (("output_flag", False), ("presolve", "off"), ("threads", 1), ("mip_rel_gap", 0.0)):
            block.setOptionValue(option, setting)
        block.addVars(len(cols), self.low[cols], self.high[cols])
        if rows.shape[0]:
            block.addRows(rows.shape[0], low, high, rows.nnz, rows.indptr[:-1], rows.indices, rows.data)
        whole = np.flatnonzero(self.whole[cols])
        if len(whole):
            block.changeColsIntegrality(len(whole), whole, np.full(len(whole), highspy.HighsVarType.kInteger))
        return block

    def bound(self, start: np.ndarray, rounds: int) -> tuple[float, float, int]:
        """Column generation from the plan ``start``: the best Lagrangian bound found, the master's value (at
        least the best bound any decomposition by site proves) and the rounds taken."""
        master = highspy.Highs()
        master.setOptionValue("output_flag", False)
        ties = self.master_rows.shape[0]
        master.addRows(ties, self.tie_low, self.tie_high, 0, np.zeros(1, np.int32), [], [])
        master.addRows(len(self.blocks), np.ones(len(self.blocks)), np.ones(len(self.blocks)), 0,
                       np.zeros(1, np.int32), [], [])

        def add(b: int, cols: np.ndarray, plan: np.ndarray) -> None:
            x = np.zeros(len(self.cost))
            x[cols] = plan
            entries = self.master_rows @ x
            at = np.flatnonzero(np.abs(entries) > 1e-12)
            master.addCol(float(self.cost @ x), 0.0, np.inf, len(at) + 1, np.append(at, ties + b).astype(np.int32),
                          np.append(entries[at], 1.0))

        for b, (cols, _) in enumerate(self.blocks):
            add(b, cols, start[cols])
        best, taken = -np.inf, 0
        while taken < rounds:
            taken += 1
            master.run()
            value = master.getInfo().objective_function_value + self.offset
            duals = np.array(master.getSolution().row_dual)
            prices, convexity = duals[:ties], duals[ties:]
            reduced = self.cost - self.master_rows.T @ prices
            lagrangian = self.offset + float(np.where(prices > 0, self.tie_low, 0) @ prices) + \
                float(np.where(prices < 0, self.tie_high, 0) @ prices)
            improving = 0
            for b, (cols, block) in enumerate(self.blocks):
                block.changeColsCost(len(cols), np.arange(len(cols), dtype=np.int32), reduced[cols])
                block.run()
                least = block.getInfo().mip_dual_bound if self.whole[cols].any() else \
                    block.getInfo().objective_function_value
                lagrangian += least
                if least < convexity[b] - 1e-7 * max(1.0, abs(convexity[b])):
                    add(b, cols, np.array(block.getSolution().col_value))
                    improving += 1
            best = max(best, lagrangian)
            if not improving or value - best <= 1e-4 * abs(value):
                break
        return best, value, taken


def site_bound(parts: list[Problem], where: str, rounds: int = 300) -> None:
    """How close the best decomposition by site comes to the optimum: see :class:`SiteBlocks`."""
    print(f"{where}: the best bound a decomposition by site proves, against HiGHS's (each to 0.01% within 60 s)")
    for part in parts:
        prob, _ = build_model(part)
        prob.solve(make_solver("highs", 60, 1e-4))
        plan = float(pulp.value(prob.objective))
        highs = prob.solverModel.getInfo().mip_dual_bound + plan - prob.solverModel.getInfo().objective_function_value
        blocks = SiteBlocks(prob)
        started = time.perf_counter()
        lagrangian, master, taken = blocks.bound(np.array([pulp.value(v) for v in prob.variables()]), rounds)
        print(f"  {part.drugs[0]} ({len(part.demands)} sites, {len(blocks.blocks)} blocks): plan {plan:,.0f}, "
              f"HiGHS's bound {(plan - highs) / plan:.2%} below it; by site, between {(plan - master) / plan:.2%} "
              f"and {(plan - lagrangian) / plan:.2%} below ({taken} rounds, {time.perf_counter() - started:.0f} s)")


def main() -> None:
    parts = scenarios.city(drugs=int(os.environ.get("BENCH_DRUGS", "200"))).split_by_drug()
    shares = _gap_shares(parts, PLAN_GAP)
    print(f"city, first {len(parts)} drugs, one process")
    spread(parts)
    integrality(parts)
    starts(parts, shares)
    limits(parts, shares, [float(x) for x in os.environ.get("BENCH_LIMITS", "0.1,0.2").split(",")])
    transfers(parts, shares)
    by_site = int(os.environ.get("BENCH_SITE_BOUND", "0"))
    if by_site:
        site_bound(essential(parts, by_site), "city, essential drugs")
    province_drugs = int(os.environ.get("BENCH_PROVINCE_DRUGS", "0"))
    if province_drugs:
        province = province_essential(province_drugs)
        province_transfers(province)
        if by_site:
            site_bound(province, "province, essential drugs")


if __name__ == "__main__":
    main()
