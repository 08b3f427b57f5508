"""Where a plan run solves its drug models: in a local process pool by default, or on the workers of an existing
Dask cluster when ``PHARMACY_DASK_SCHEDULER`` names its scheduler (``tcp://host:8786``). The optimizer takes either
as a :class:`concurrent.futures.Executor`; only this module knows of Dask, and only when it is asked for."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from optimizer import PlanningError

if TYPE_CHECKING:
    from pharmacy.procurement.plan_runs import PlanSettings

# A task whose worker was lost is given to another by Dask itself; one that failed on a worker is tried this many
# times more before the run fails naming its drugs.
TASK_RETRIES = 2
CONNECT_SECONDS = 10


@contextlib.contextmanager
def plan_executor(settings: PlanSettings) -> Iterator[tuple[Executor | None, int]]:
    """The executor a plan's drug models run on and how many it runs at once: (None, the configured workers) for a
    local process pool the optimizer makes itself, or a Dask cluster's executor and its threads in all. A cluster
    that cannot be reached, or has no workers, fails the run saying so."""
    if not settings.dask_scheduler:
        yield None, settings.workers
        return
    try:
        from distributed import Client
    except ImportError as error:
        raise PlanningError("PHARMACY_DASK_SCHEDULER is set, but Dask's distributed is not installed here: "
                            "install the service with its cluster extra (pip install 'consortium-pharmacy[cluster]')"
                            ) from error
    try:
        client = Client(settings.dask_scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise PlanningError(f"the Dask scheduler at {settings.dask_scheduler} could not be reached: {error}") from error
    try:
        threads = sum(client.nthreads().values())
        if not threads:
            raise PlanningError(f"the Dask cluster at {settings.dask_scheduler} has no workers")
        yield client.get_executor(retries=TASK_RETRIES, pure=False), threads
    finally:
        client.close()
