"""Transient database failures retried inside the service, never shown to a client as an error of the server.

Locks are taken in one order (see :mod:`pharmacy.inventory.services`), but a few use cases must lock in another
(a receipt that moves waiting prescriptions on locks stock, then prescriptions; a return releases one pharmacy's
stock and holds at another's; routing's last attempt to find stock falls back to a second pharmacy with the first
one's still locked), and the database may still choose a transaction to break a cycle (a deadlock) or to keep a
serializable order; and a pooled connection may have been lost since its last use (see :mod:`pharmacy.db`). Such a
transaction did nothing: it is run again, a bounded number of times with a short random wait, before anything
answers. A view is retried only while nothing of it has committed; what still fails answers 503 with
Retry-After.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, g, has_request_context
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

ATTEMPTS = 5
# PostgreSQL's deadlock_detected and serialization_failure: the transaction was chosen to fail, not wrong.
TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


def is_transient(error: BaseException) -> bool:
    """A failure that running the same transaction again may not meet (a deadlock, a serialization failure, a
    busy SQLite file, a connection found lost by a statement)."""
    if not isinstance(error, DBAPIError):
        return False
    if getattr(error.orig, "sqlstate", None) in TRANSIENT_SQLSTATES:
        return True
    if error.connection_invalidated and error.statement is not None:
        # Lost before its transaction ended (a lost COMMIT has no statement: whether it committed is unknown),
        # so nothing of it was written; the engine has let the pool's connections go.
        return True
    return "database is locked" in str(error.orig)


def pause(attempt: int) -> None:
    """A short random wait that grows with the attempt, so that the transactions that met do not meet again."""
    time.sleep(random.uniform(0, 0.02 * 2 ** attempt))  # jitter, not secrecy


def retried(work: Callable[[], Any], *, may_retry: Callable[[], bool] = lambda: True) -> Any:
    """Run ``work``, again after a transient failure while ``may_retry()`` says nothing of it has committed."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except DBAPIError as error:
            if attempt == ATTEMPTS or not is_transient(error) or not may_retry():
                raise
            log.warning("transient database failure, attempt %s of %s: %s", attempt, ATTEMPTS, error.orig)
            pause(attempt)
    raise AssertionError("unreachable")


@event.listens_for(Session, "after_commit")
def _count_commit(session: Session) -> None:
    if has_request_context():
        g.commits = g.get("commits", 0) + 1


def _retrying_view(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.commits = 0

        def attempt() -> Any:
            g.pop("unit_of_work", None)  # a fresh unit of work each time
            return view(*args, **kwargs)

        return retried(attempt, may_retry=lambda: g.get("commits", 0) == 0)

    return wrapper  # type: ignore[return-value]


def init_app(app: Flask) -> None:
    """Retry every view of the application on transient failures (call once all views are registered)."""
    for endpoint, view in list(app.view_functions.items()):
        app.view_functions[endpoint] = _retrying_view(view)
    app.register_error_handler(DBAPIError, _answer_database_failure)


def _answer_database_failure(error: DBAPIError) -> Any:
    from pharmacy.errors import problem

    if is_transient(error):
        response, status = problem(503, "the database was too busy to finish this request; nothing was changed, "
                                        "send it again")
        response.headers["Retry-After"] = "1"
        return response, status
    log.exception("unhandled database error", exc_info=error)
    return problem(500, "The server encountered an internal error and was unable to complete your request.")
