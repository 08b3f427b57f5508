"""Where a plan's drug models are solved: in this process, or on the workers of any
:class:`concurrent.futures.Executor`: a local process pool by default, a Dask cluster's ``Client.get_executor()``
for a province. The optimizer never needs to know which: it hands out tasks, reads their results as they finish
and cancels what is left when it stops early.

Work units are sized for a cluster: a drug's model takes a hundred times longer than another's, and a task costs
the scheduler about a millisecond, so drugs are grouped into tasks of about equal weight (:data:`TASKS_PER_WORKER`
for each worker), the heaviest first, a heavy drug alone in its task so that none is left running at the end
while the other workers idle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

from optimizer.plan import PlanningError

Job = TypeVar("Job")
Result = TypeVar("Result")
Progress = Callable[[int, int], None]  # (jobs done, jobs in all)

# Tasks handed to each worker in a round: enough that the last ones are small beside the round's time, few enough
# that the scheduler's cost per task (about a millisecond on Dask) stays small beside the solve time.
TASKS_PER_WORKER = 8
IN_HAND_PER_WORKER = 2  # tasks handed to the executor at a time, per worker


def _run_task(work: Callable[[Job], Result], jobs: Sequence[Job]) -> list[Result]:
    """One task on a worker: ``work`` done on each of its jobs (module level, so that any executor can ship it)."""
    return [work(job) for job in jobs]


def tasks(weights: Sequence[float], width: int) -> list[list[int]]:
    """The jobs (by index) grouped into tasks, heaviest first: a job at least as heavy as a task's share alone, the
    rest packed in order of weight until each task has its share of the whole (the total over ``width`` workers
    times :data:`TASKS_PER_WORKER`)."""
    order = sorted(range(len(weights)), key=lambda n: -weights[n])
    share = sum(weights) / (max(1, width) * TASKS_PER_WORKER)
    grouped: list[list[int]] = []
    task: list[int] = []
    load = 0.0
    for n in order:
        if weights[n] >= share:
            grouped.append([n])
            continue
        task.append(n)
        load += weights[n]
        if load >= share:
            grouped.append(task)
            task, load = [], 0.0
    if task:
        grouped.append(task)
    return grouped


@dataclass(frozen=True)
class Workers:
    """The executor a plan's models run on (None: in this process, one after the other) and how many of them it
    runs at once (``width``)."""

    executor: Executor | None = None
    width: int = 1

    @classmethod
    @contextlib.contextmanager
    def of(cls, executor: Executor | None, workers: int) -> Iterator[Workers]:
        """The given executor, running ``workers`` tasks at once (not shut down here: it is the caller's); without
        one, a local process pool of ``workers`` processes for as long as the plan takes (none for one)."""
        if executor is not None:
            yield cls(executor, max(1, workers))
            return
        if workers <= 1:
            yield cls()
            return
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            yield cls(pool, workers)
        except BaseException:
            # Stopped early (a run cancelled, a model failed): the tasks not started are dropped at once; those
            # running end with their task, which is small by design (Python 3.14 can end the processes at once).
            pool.shutdown(wait=False, cancel_futures=True)
            terminate = getattr(pool, "terminate_workers", None)
            if terminate is not None:
                terminate()
            raise
        pool.shutdown()

    def map(self, work: Callable[[Job], Result], jobs: Sequence[Job], *, weights: Sequence[float] | None = None,
            names: Sequence[str] | None = None, progress: Progress | None = None) -> list[Result]:
        """``work`` done on each job; the results in the jobs' order. ``weights``: how long each job is expected to
        take, relatively (the heaviest go first); ``names``: what each job plans, for a failure's message.
        ``progress`` is told as jobs finish how many are done; if it raises (a run cancelled), the tasks not
        finished are cancelled and the error goes on."""
        results: list[Any] = [None] * len(jobs)
        if self.executor is None or len(jobs) < 2:
            for n, job in enumerate(jobs):
                results[n] = work(job)
                if progress:
                    progress(n + 1, len(jobs))
            return results
        executor = self.executor
        waiting = iter(tasks(weights if weights is not None else [1.0] * len(jobs), self.width))
        pending: dict[Future[list[Result]], list[int]] = {}

        def hand_out() -> None:
            task = next(waiting, None)
            if task is not None:
                pending[executor.submit(_run_task, work, [jobs[n] for n in task])] = task

        # A window of tasks in hand, twice the workers: each worker has its next task waiting, and a cancel finds
        # no more than that to stop.
        for _ in range(IN_HAND_PER_WORKER * self.width):
            hand_out()
        done = 0
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    task = pending.pop(future)
                    hand_out()
                    try:
                        values = future.result()
                    except Exception as error:
                        what = ", ".join(names[n] for n in task) if names is not None else f"{len(task)} models"
                        raise PlanningError(f"planning {what} failed on a worker ({type(error).__name__}: "
                                            f"{error}); the plan was not completed") from error
                    for n, value in zip(task, values, strict=True):
                        results[n] = value
                    done += len(task)
                    if progress:
                        progress(done, len(jobs))
        finally:
            for future in pending:  # stopped early: what has not finished is not wanted
                future.cancel()
        return results
