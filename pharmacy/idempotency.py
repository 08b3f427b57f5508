"""Retries that change nothing twice: a request sent with an ``Idempotency-Key`` header is done once.

A client that sent a receipt, a movement or a hold and lost the answer sends it again under the same key and gets
the first answer back (with ``Idempotent-Replayed: true``) while nothing is booked again. The key is claimed in
the same transaction as the change, so a change and its remembered answer commit or roll back together: a refused
request remembers nothing and may be sent again. The same key with a different body is a 409. Keys belong to the
account that sent them (an API key or a person), per operation.

Prescriptions keep their own key on the prescription (:mod:`pharmacy.prescriptions.services`), since the same
prescription number is a retry too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy import JSON, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from pharmacy.db import Base, UTCDateTime, utcnow
from pharmacy.errors import Conflict, Message, ValidationFailed
from pharmacy.tenancy import ConsortiumOwned
from pharmacy.unit_of_work import UnitOfWork

F = TypeVar("F", bound=Callable[..., Any])

HEADER = "Idempotency-Key"
KEY_PARAMETER = {"in": "header", "name": HEADER, "required": False,
                 "schema": {"type": "string", "minLength": 1, "maxLength": 120},
                 "description": "a retry with the same key returns the first result and changes nothing again"}


class IdempotentRequest(ConsortiumOwned, Base):
    """The answer given to a request sent with an Idempotency-Key, to give again to its retries."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (UniqueConstraint("account", "operation", "key",
                                       name="uq_idempotent_requests_account_operation_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(160))  # the principal's label: api_key:<name> or user:<name>
    operation: Mapped[str] = mapped_column(String(60))
    key: Mapped[str] = mapped_column(String(120))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[Any] = mapped_column(JSON)
    location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def idempotency_key() -> str | None:
    """The request's Idempotency-Key, if it sent one (1 to 120 characters)."""
    key = request.headers.get(HEADER)
    if key is not None and not (1 <= len(key) <= 120):
        raise ValidationFailed(Message("Idempotency-Key must be 1 to 120 characters"), {HEADER: "1 to 120 characters"})
    return key


def request_hash() -> str:
    """A fingerprint of the request as sent (its path and body), to tell a retry from another request."""
    body = request.get_json(silent=True)
    return hashlib.sha256(json.dumps([request.path, body], sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _claim(uow: UnitOfWork, operation: str, key: str, fingerprint: str) -> IdempotentRequest | None:
    """Claim ``key`` in the current transaction; the earlier request's record if it was claimed before.

    Two requests racing with one key: the second waits on the unique key until the first commits, then finds
    its record (or, if the first rolled back, claims the key itself)."""
    account = uow.principal.label

    def earlier() -> IdempotentRequest | None:
        return uow.session.scalars(select(IdempotentRequest).where(
            IdempotentRequest.account == account, IdempotentRequest.operation == operation,
            IdempotentRequest.key == key)).first()

    found = earlier()
    if found is None:
        savepoint = uow.session.begin_nested()
        uow.session.add(IdempotentRequest(consortium_id=uow.principal.consortium_id, account=account,
                                          operation=operation, key=key, request_hash=fingerprint, status=None,
                                          body=None, created_at=uow.now()))
        try:
            uow.session.flush()
        except IntegrityError:
            savepoint.rollback()
            found = earlier()
            if found is None:
                raise
        else:
            savepoint.commit()
            return None
    if found.request_hash != fingerprint:
        raise Conflict(Message("Idempotency-Key %(key)s was sent before with a different request; send a new key "
                               "for a new request", key=key), {HEADER: key})
    return found


def idempotent(operation: str, uow_of_request: Callable[[], UnitOfWork]) -> Callable[[F], F]:
    """Make a view that changes stock idempotent under ``Idempotency-Key`` (see the module docstring).

    The view's service must join the request's unit of work (``uow_of_request`` gives it): the claim, the
    change and the remembered answer are one transaction."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            key = idempotency_key()
            if key is None:
                return view(*args, **kwargs)
            fingerprint = request_hash()
            uow = uow_of_request()
            with uow:
                earlier = _claim(uow, operation, key, fingerprint)
                if earlier is not None:
                    return _replay(earlier)
                response = current_app.make_response(view(*args, **kwargs))
                record = uow.session.scalars(select(IdempotentRequest).where(
                    IdempotentRequest.account == uow.principal.label, IdempotentRequest.operation == operation,
                    IdempotentRequest.key == key)).one()
                record.status, record.body = response.status_code, response.get_json(silent=True)
                record.location = response.headers.get("Location")
                uow.commit()
            return response

        return wrapper  # type: ignore[return-value]

    return decorate


def _replay(earlier: IdempotentRequest) -> Response:
    response = current_app.response_class(json.dumps(earlier.body, ensure_ascii=False), status=earlier.status or 200,
                                          mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    if earlier.location:
        response.headers["Location"] = earlier.location
    return response
