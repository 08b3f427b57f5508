"""Plans on a Dask cluster: the same plan as in one process, a budget priced on the same workers, a cancel that
stops the cluster's tasks, a lost worker's drugs solved again, a failure that names its drugs; and a plan run of the
service on the cluster named by its configuration."""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any
from unittest.mock import patch

import pytest
from distributed import Client, LocalCluster

from optimizer import PlanningError, scenarios, solve
from optimizer.planner import _solve_one
from optimizer.workers import Workers
from pharmacy.principal import system_for
from pharmacy.procurement.plan_runs import PlanSettings, execute_run, get_plan_run, start_plan_run
from pharmacy.unit_of_work import UnitOfWork
from tests.integration.test_procurement_flow import _committed_world_with_a_plan, _free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::ResourceWarning",
                                        "ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def cluster() -> Any:
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.CRITICAL) as local, Client(local) as client:
        yield local, client


def problem(drugs: int = 8, **options: Any) -> Any:
    return scenarios.consortium(hospitals=1, grassroots=5, drugs=drugs, seed=4, district_size=3, **options)


def tasks_left(client: Client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


class Stop(Exception):
    pass


def test_a_plan_on_the_cluster_is_the_plan_of_one_process(cluster) -> None:
    _, client = cluster
    here = solve(problem(), workers=1, gap=1e-9, monolithic_budget_drugs=0)
    there = solve(problem(), workers=2, executor=client.get_executor(pure=False), gap=1e-9,
                  monolithic_budget_drugs=0)
    assert there.objective == pytest.approx(here.objective, rel=1e-9)
    assert there.baseline is not None and here.baseline is not None
    assert there.baseline.total == pytest.approx(here.baseline.total, rel=1e-9)
    # Each drug says what it proved, on the cluster as here.
    assert sorted(d.drug for d in there.drugs) == sorted(problem().drugs)
    assert all(d.status == "optimal" and d.gap is not None and d.gap <= 1e-6 for d in there.drugs)


def test_a_priced_budget_runs_its_rounds_on_the_cluster(cluster) -> None:
    _, client = cluster
    budgeted = problem(drugs=10, budget_share=0.6)
    here = solve(budgeted, workers=1, baseline=False, gap=1e-6, monolithic_budget_drugs=1)
    there = solve(budgeted, workers=2, executor=client.get_executor(pure=False), baseline=False, gap=1e-6,
                  monolithic_budget_drugs=1)
    assert budgeted.budget is not None and there.costs.spending <= budgeted.budget + 1e-6
    assert there.budget_use is not None and there.budget_use.how == here.budget_use.how == "priced"  # type: ignore[union-attr]
    assert there.objective == pytest.approx(here.objective, rel=1e-6)


def test_a_cancel_stops_the_clusters_tasks(cluster) -> None:
    _, client = cluster
    big = problem(drugs=40)
    told: list[int] = []

    def cancel(done: int, total: int) -> None:
        told.append(done)
        raise Stop

    with pytest.raises(Stop):
        solve(big, workers=2, executor=client.get_executor(pure=False), baseline=False, progress=cancel,
              monolithic_budget_drugs=0)
    assert told and told[0] < len(big.drugs)
    # Every task the plan gave the cluster is cancelled and forgotten: nothing of it is left to run.
    deadline = time.monotonic() + 10
    while tasks_left(client) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tasks_left(client) == 0


def test_a_lost_workers_drugs_are_solved_again_and_the_plan_completes(cluster) -> None:
    _, client = cluster
    here = solve(problem(drugs=12), workers=1, baseline=False, gap=1e-9, monolithic_budget_drugs=0)
    processes = client.run(os.getpid)  # each worker's process, by address
    killed: list[int] = []

    def lose_a_worker(done: int, total: int) -> None:
        if not killed:  # the first drugs are in: a worker dies (kill -9) with its task in hand
            killed.append(next(iter(processes.values())))
            os.kill(killed[0], signal.SIGKILL)

    there = solve(problem(drugs=12), workers=2, executor=client.get_executor(pure=False, retries=2),
                  baseline=False, gap=1e-9, monolithic_budget_drugs=0, progress=lose_a_worker)
    assert killed
    assert there.objective == pytest.approx(here.objective, rel=1e-9)
    client.wait_for_workers(2, timeout=60)  # the nanny brings the worker back for the next test
    assert killed[0] not in client.run(os.getpid).values()  # the worker was lost while the plan ran


def test_a_drug_that_fails_on_a_worker_fails_the_plan_naming_it(cluster) -> None:
    _, client = cluster
    parts = problem(drugs=3).split_by_drug()
    jobs = [(part, {"solver": "highs" if n else "no-such-solver", "time_limit": 5.0, "gap": 1e-4})
            for n, part in enumerate(parts)]
    with pytest.raises(PlanningError, match=f"planning {parts[0].drugs[0]} failed on a worker"):
        Workers(client.get_executor(pure=False), 2).map(_solve_one, jobs, names=[p.drugs[0] for p in parts])


def test_a_plan_run_solves_on_the_cluster_its_configuration_names(committed_app, cluster) -> None:
    local, _ = cluster
    world, first = _committed_world_with_a_plan(committed_app)
    database, clock = committed_app.extensions["pharmacy_db"], committed_app.config["CLOCK"]
    officer = system_for(world.a.consortium_id)
    committed_app.config["DASK_SCHEDULER"] = local.scheduler_address
    try:
        settings = PlanSettings.from_config(committed_app.config)
        run_id = start_plan_run(UnitOfWork(database.session_factory, officer, clock), horizon_days=30,
                                history_days=30).id
        assert execute_run(database, run_id, clock, settings) == "succeeded"
        here, there = (get_plan_run(UnitOfWork(database.session_factory, officer), n) for n in (first, run_id))
        assert here.status == "succeeded" and there.result is not None and here.result is not None
        assert there.result["summary"]["cost"] == pytest.approx(here.result["summary"]["cost"], rel=1e-6)
        assert there.result["drugs"] and all(d["status"] == "optimal" for d in there.result["drugs"])
    finally:
        committed_app.config.pop("DASK_SCHEDULER", None)
        committed_app.config.pop("CLOCK", None)


def test_a_cluster_that_cannot_be_reached_fails_the_run_saying_so(committed_app) -> None:
    world, _ = _committed_world_with_a_plan(committed_app)
    database, clock = committed_app.extensions["pharmacy_db"], committed_app.config["CLOCK"]
    officer = system_for(world.a.consortium_id)
    run_id = start_plan_run(UnitOfWork(database.session_factory, officer, clock), horizon_days=30,
                            history_days=30).id
    nowhere = f"tcp://127.0.0.1:{_free_port()}"
    try:
        with patch("pharmacy.procurement.cluster.CONNECT_SECONDS", 1):
            assert execute_run(database, run_id, clock, PlanSettings(dask_scheduler=nowhere)) == "failed"
        run = get_plan_run(UnitOfWork(database.session_factory, officer), run_id)
        assert f"the Dask scheduler at {nowhere} could not be reached" in run.error
    finally:
        committed_app.config.pop("CLOCK", None)
