"""Optimizer benchmark: variables, constraints, build and solve seconds, gap, plan cost, baseline, saving; and the
engine before it planned by the consortium's rules alone, in the same run.

    .venv/bin/python bench/optimizer.py                     # small, medium, and the city's sites with 200 drugs
    BENCH_SIZES=small,medium,city,province .venv/bin/python bench/optimizer.py
    BENCH_SOLVER=cbc BENCH_WORKERS=2 BENCH_GAP=0.005 BENCH_TIME_LIMIT=10 ...
    BENCH_COMPARE=1 ...   # also time each plan with every drug solved to the plan's gap, and print the ratio
    BENCH_TOLERANCES=0.001,0.01,0.1 ...   # ...and with every drug solved to each of these tolerances
    BENCH_STOP=1 ...      # also how soon a plan stops once its progress callback raises (a run cancelled)
    BENCH_RESTRICTED=0 ...  # skip the restricted engine (see below); BENCH_RESTRICTED_REV=<commit> to pick it
    BENCH_DASK=1 ...      # also solve each plan on a Dask cluster (a local one of BENCH_WORKERS processes, or the
                          # one at BENCH_DASK_SCHEDULER=tcp://host:8786), with the ratio to the local process pool

Sizes: small (1+1+8 sites, 20 drugs), medium (1+2+20 sites, 100 drugs), city-200 (1+5+40 sites, 200 drugs),
city-200-budget (the same within a budget of 0.8 yuan per unit of demand, priced), city (1+5+40 sites, 1,500
drugs), province-10 (1+49+950 sites, 10 drugs), province (1+49+950 sites, 2,000 drugs). The baseline is each
site buying alone with no transfers, planned exactly (without a solver) in the same run. Costs are the plans'
decision costs (the stock no plan could use in time apart, as ``sunk``).

The restricted engine is the optimizer as it was before it planned by the rules alone (only surplus stock moving
one hop, bought packs never moving, one lot capped at its site's use over the horizon, no joint expiry limit at
the horizon, top-ups at the cheapest-delivery site only, fixed and order costs per drug): the package at commit
``BENCH_RESTRICTED_REV``, taken from git and run in a process of its own on the same scenario. Its plan is
re-costed by this engine's rules (``optimizer.evaluate``: the same purchases and transfers, every rule's cost),
so that both plans are priced alike; the saving is what the restrictions cost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor
from pathlib import Path

# This file is named like the package it measures: keep its own folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from optimizer import Decisions, Plan, PlanningError, Problem, evaluate, scenarios, solve  # noqa: E402
from optimizer.planner import _plan_gap, _solve_each, baseline_costs  # noqa: E402
from optimizer.workers import Workers  # noqa: E402

SIZES = {
    "small": lambda: scenarios.consortium(hospitals=1, grassroots=8, drugs=20, seed=1),
    "medium": lambda: scenarios.consortium(hospitals=2, grassroots=20, drugs=100, seed=1),
    "city-200": lambda: scenarios.city(drugs=200),
    "city-200-budget": lambda: scenarios.consortium(hospitals=5, grassroots=40, drugs=200, seed=1, budget_share=0.8),
    "city": lambda: scenarios.city(),
    "province-10": lambda: scenarios.province(drugs=10),
    "province": lambda: scenarios.province(),
}
SIZE_CALLS = {  # the same scenarios, as the restricted engine's own module builds them
    "small": "consortium(hospitals=1, grassroots=8, drugs=20, seed=1)",
    "medium": "consortium(hospitals=2, grassroots=20, drugs=100, seed=1)",
    "city-200": "city(drugs=200)",
    "city-200-budget": "consortium(hospitals=5, grassroots=40, drugs=200, seed=1, budget_share=0.8)",
    "city": "city()",
    "province-10": "province(drugs=10)",
    "province": "province()",
}
RESTRICTED_REV = "4a1d3b2"  # the last commit of the engine with its restrictions

# Run by the restricted engine's own interpreter: solve the size, print its decisions and time as JSON.
_RESTRICTED_RUN = """
import json, sys, time
from optimizer import scenarios, solve
problem = scenarios.{call}
started = time.perf_counter()
plan = solve(problem, solver={solver!r}, workers={workers}, gap={gap}, time_limit={limit}, baseline=False)
wall = time.perf_counter() - started
print(json.dumps({{"wall": wall, "solve": plan.solve_seconds, "gap": plan.gap,
                   "purchases": [[p.offer, p.site, p.packs] for p in plan.purchases],
                   "transfers": [[t.lot, t.to_site, t.units] for t in plan.transfers]}}))
"""


def _restricted_engine(rev: str) -> Path | None:
    """The optimizer package at ``rev``, unpacked from git into a folder of its own (None if git cannot)."""
    root = Path(__file__).resolve().parent.parent
    folder = Path(tempfile.mkdtemp(prefix="restricted-optimizer-"))
    archive = subprocess.run(["git", "-C", str(root), "archive", rev, "optimizer"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def _restricted_plan(folder: Path, size: str, solver: str, workers: int, gap: float, limit: float) -> dict:
    script = _RESTRICTED_RUN.format(call=SIZE_CALLS[size], solver=solver, workers=workers, gap=gap, limit=limit)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=folder, env={**os.environ, "PYTHONPATH": str(folder)})
    return json.loads(done.stdout.strip().splitlines()[-1])


def _recosted(problem: Problem, restricted: dict, solver: str) -> float | str:
    """The restricted plan's decision costs by the rules (or why it breaks one)."""
    decisions = Decisions({(o, s): packs for o, s, packs in restricted["purchases"]},
                          {(lot, site): units for lot, site, units in restricted["transfers"]})
    try:
        return evaluate(problem, decisions, solver=solver).costs.total
    except PlanningError as error:
        return f"breaks {len(error.violations) or 1} rules"


def main() -> None:
    sizes = os.environ.get("BENCH_SIZES", "small,medium,city-200").split(",")
    solver = os.environ.get("BENCH_SOLVER", "highs")
    workers = int(os.environ.get("BENCH_WORKERS", str(os.cpu_count() or 1)))
    gap = float(os.environ.get("BENCH_GAP", "0.005"))
    limit = float(os.environ.get("BENCH_TIME_LIMIT", "10"))
    compare = os.environ.get("BENCH_COMPARE") == "1"
    tolerances = [float(t) for t in os.environ.get("BENCH_TOLERANCES", "").split(",") if t]
    stop = os.environ.get("BENCH_STOP") == "1"
    restricted_rev = os.environ.get("BENCH_RESTRICTED_REV", RESTRICTED_REV)
    engine = _restricted_engine(restricted_rev) if os.environ.get("BENCH_RESTRICTED", "1") == "1" else None
    dask = _dask_cluster(workers) if os.environ.get("BENCH_DASK") == "1" else None
    print(f"solver {solver}, {workers} worker processes, gap target {gap:.2%}, {limit:.0f} s per drug model")
    print(f"{'size':<10}{'sites':>6}{'drugs':>6}{'vars':>9}{'rows':>9}{'build s':>9}{'solve s':>9}{'wall s':>8}"
          f"{'gap':>8}{'plan':>13}{'baseline':>13}{'base s':>8}{'saving':>8}{'sunk':>10}  status")
    restricted_rows = []
    for size in sizes:
        problem = SIZES[size]()
        sites = len({d.site for d in problem.demands})
        started = time.perf_counter()
        plan = solve(problem, solver=solver, workers=workers, gap=gap, time_limit=limit, baseline=False)
        wall = time.perf_counter() - started
        started = time.perf_counter()
        baseline = baseline_costs(problem, solver=solver, workers=workers, gap=gap, time_limit=limit)
        baseline_wall = time.perf_counter() - started
        saving = (baseline.total - plan.costs.total) / baseline.total if baseline.total else 0.0
        print(f"{size:<10}{sites:>6}{len(problem.drugs):>6}{plan.variables:>9}{plan.constraints:>9}"
              f"{plan.build_seconds:>9.1f}{plan.solve_seconds:>9.1f}{wall:>8.1f}"
              f"{(plan.gap or 0.0):>8.3%}{plan.costs.total:>13.0f}{baseline.total:>13.0f}{baseline_wall:>8.1f}"
              f"{saving:>8.1%}{plan.costs.unavoidable_waste:>10.0f}  {plan.status}")
        print(f"{'':<10}{_verdicts(plan)}")
        # The same plan with every drug solved to one tolerance (the plan's gap, as the planner did before it
        # shared the gap out by drug, or each of BENCH_TOLERANCES): same run, same machine load.
        for tolerance in ([gap] if compare else []) + tolerances:
            started = time.perf_counter()
            with Workers.of(None, workers) as pool:
                flat = _solve_each(problem.split_by_drug(), pool, solver=solver, time_limit=limit, gap=tolerance)
            flat_wall = time.perf_counter() - started
            print(f"{'':<10}every drug to {tolerance:.2%}: wall {flat_wall:.1f} s, gap {(_plan_gap(flat) or 0.0):.3%}, "
                  f"cost {sum(o.objective for o in flat):.0f}; plan's wall / this {wall / flat_wall:.2f}")
        if stop:
            print(f"{'':<10}{_stopping(problem, solver, workers, gap, limit)}")
        if dask is not None:
            started = time.perf_counter()
            on_cluster = solve(problem, solver=solver, workers=dask[1], executor=dask[0], gap=gap, time_limit=limit,
                               baseline=False)
            cluster_wall = time.perf_counter() - started
            print(f"{'':<10}on Dask ({dask[1]} threads): wall {cluster_wall:.1f} s, local pool / Dask "
                  f"{wall / cluster_wall:.2f}, plan {on_cluster.costs.total:.0f} ({on_cluster.status}, gap "
                  f"{(on_cluster.gap or 0.0):.3%}), {_verdicts(on_cluster)}")
        if engine is not None:
            old = _restricted_plan(engine, size, solver, workers, gap, limit)
            recosted = _recosted(problem, old, solver)
            restricted_rows.append((size, plan.costs.total, recosted, wall, old["wall"], plan.solve_seconds,
                                    old["solve"]))
    print("build and solve seconds are summed over the worker processes; wall is the elapsed time of the plan, "
          "base s that of the baseline; sunk: stock no plan could use in time, apart from the costs")
    if restricted_rows:
        print(f"\nthe restricted engine ({restricted_rev}), its plan re-costed by the rules, in the same run:")
        print(f"{'size':<16}{'plan':>12}{'restricted':>12}{'saving':>8}{'wall s':>8}{'was s':>8}{'ratio':>7}"
              f"{'solve s':>9}{'was s':>8}{'ratio':>7}")
        for size, cost, recosted, wall, old_wall, solve_s, old_solve in restricted_rows:
            if isinstance(recosted, str):
                said = f"{recosted:>12}{'':>8}"
            else:
                said = f"{recosted:>12.0f}{(recosted - cost) / recosted if recosted else 0.0:>8.2%}"
            print(f"{size:<16}{cost:>12.0f}{said}{wall:>8.1f}{old_wall:>8.1f}{wall / old_wall:>7.2f}"
                  f"{solve_s:>9.1f}{old_solve:>8.1f}{solve_s / old_solve if old_solve else 0.0:>7.2f}")
        print("saving: what the restrictions cost, as a share of the restricted plan's cost by the rules; ratio: "
              "this engine's seconds over the restricted one's")


def _verdicts(plan: Plan) -> str:
    """What the plan proved drug by drug (see :meth:`optimizer.plan.Plan.verdicts`)."""
    return "drugs: " + ", ".join(f"{drugs} {status} (widest gap "
                                 + (f"{widest:.2%})" if widest is not None else "unknown)")
                                 for status, drugs, widest in plan.verdicts())


def _dask_cluster(workers: int) -> tuple[Executor, int]:
    """The executor of the Dask cluster at BENCH_DASK_SCHEDULER, or of a local one of ``workers`` processes."""
    from distributed import Client, LocalCluster

    address = os.environ.get("BENCH_DASK_SCHEDULER")
    cluster = address or LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
    client = Client(cluster)
    return client.get_executor(pure=False, retries=2), sum(client.nthreads().values())


class _Stop(Exception):
    pass


def _stopping(problem: Problem, solver: str, workers: int, gap: float, limit: float) -> str:
    """How soon the plan stops once its progress callback raises at the first model solved."""
    raised: list[float] = []

    def progress(done: int, total: int) -> None:
        raised.append(time.perf_counter())
        raise _Stop

    started = time.perf_counter()
    try:
        solve(problem, solver=solver, workers=workers, gap=gap, time_limit=limit, baseline=False, progress=progress)
    except _Stop:
        stopped = time.perf_counter()
    return (f"stopped by its progress callback: first model at {raised[0] - started:.1f} s, "
            f"stopped {stopped - raised[0]:.2f} s later")


if __name__ == "__main__":
    main()
