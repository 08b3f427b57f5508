"""API keys and user accounts -> a principal (consortium, site, role).

Systems send ``Authorization: Bearer <key>`` (or ``X-API-Key: <key>``); people send HTTP Basic
credentials. Every request under ``/api/`` and ``/fhir/`` is authenticated before it reaches a view;
views declare the roles they admit with :func:`requires`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from pharmacy.errors import Forbidden, Unauthorized
from pharmacy.key_cache import KeyCache
from pharmacy.principal import Principal, Role
from pharmacy.retries import retried

F = TypeVar("F", bound=Callable[..., Any])

KEY_PREFIX = "cph_"
PROTECTED_PREFIXES = ("/api/", "/fhir")
PUBLIC_PATHS = frozenset({"/fhir/metadata"})


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    return check_password_hash(password_hash, password)


def _credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return "key", value.strip()
    if scheme.lower() == "basic" and value.strip():
        try:
            return "basic", base64.b64decode(value.strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
    if request.headers.get("X-API-Key"):
        return "key", request.headers["X-API-Key"].strip()
    return None


def authenticate() -> Principal:
    """Resolve the request's credentials to a principal, or raise Unauthorized.

    A key seen lately is answered by this process's :class:`~pharmacy.key_cache.KeyCache`, which forgets every key
    as soon as one changes (a revoked key is refused at once); otherwise the key or account is read, in the session
    that the request's first unit of work then carries on in (:func:`take_request_session`): one connection and one
    transaction for the principal and the work, not a second checkout and a rollback."""
    from pharmacy.accounts.models import ApiKey

    creds = _credentials()
    if creds is None:
        raise Unauthorized("authentication required: send an API key (Authorization: Bearer ...) "
                           "or user credentials (HTTP Basic)")
    kind, secret = creds
    keys: KeyCache = current_app.extensions["pharmacy_keys"]
    key_hash = hash_api_key(secret) if kind == "key" else ""
    if kind == "key" and (known := keys.principal(key_hash)) is not None:
        return known
    generation = keys.generation() if kind == "key" else None
    database = current_app.extensions["pharmacy_db"]
    session = database.session_factory()
    try:
        if kind == "key":
            key = session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()
            if key is None or not key.active:
                raise Unauthorized("unknown or revoked API key")
            principal = Principal("api_key", key.id, key.name, Role(key.role), key.consortium_id, key.site_id)
            if generation is not None:
                keys.keep(key_hash, principal, generation)
        else:
            username, _, password = secret.partition(":")
            principal = verify_user(session, username, password)
    except BaseException:
        session.close()
        raise
    # What was read for the principal is no part of the work: the work reads through the principal's consortium.
    session.expunge_all()
    g.request_session = session
    return principal


def take_request_session() -> Session | None:
    """The session the request's principal was read in, once (the first unit of work of the request takes it)."""
    session: Session | None = g.pop("request_session", None)
    return session


def verify_user(session: Session, username: str, password: str) -> Principal:
    """A person's principal, if the username and password match an active account (the API's HTTP Basic and
    the pages' sign-in both come here)."""
    from pharmacy.accounts.models import User

    user = session.scalars(select(User).where(User.username == username)).first()
    if user is None or not user.active or not password_matches(user.password_hash, password):
        raise Unauthorized("wrong username or password")
    return user_principal(user)


def user_principal(user: Any) -> Principal:
    return Principal("user", user.id, user.username, Role(user.role), user.consortium_id, user.site_id)


def current_principal() -> Principal:
    principal = g.get("principal")
    if principal is None:
        raise Unauthorized("authentication required")
    return principal


def requires(*roles: Role) -> Callable[[F], F]:
    """Admit only principals holding one of ``roles`` (403 otherwise); documented in the OpenAPI text."""
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal.role not in allowed:
                raise Forbidden(
                    f"role {principal.role.value} may not do this; allowed: "
                    + ", ".join(sorted(r.value for r in allowed))
                )
            return view(*args, **kwargs)

        doc = (view.__doc__ or "").rstrip()
        wrapper.__doc__ = doc + "\n\nRoles: " + ", ".join(sorted(r.value for r in allowed)) + "."
        return wrapper  # type: ignore[return-value]

    return decorate


def init_app(app: Flask) -> None:
    database = app.extensions["pharmacy_db"]
    keys = KeyCache(database.engine, app.config["PRINCIPAL_CACHE_SECONDS"])
    app.extensions["pharmacy_keys"] = keys
    database.on_dispose(keys.close)

    @app.before_request
    def _authenticate() -> None:
        if request.path.startswith(PROTECTED_PREFIXES) and request.path not in PUBLIC_PATHS:
            g.principal = retried(authenticate)  # a lost connection, met by the key's read, is not the caller's

    @app.teardown_request
    def _close_request_session(error: BaseException | None) -> None:
        session = take_request_session()
        if session is not None:  # no unit of work took it
            session.close()


SECURITY_SCHEMES = {
    "BearerKey": {"type": "http", "scheme": "bearer", "description": "API key of a system"},
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Basic": {"type": "http", "scheme": "basic", "description": "a person's username and password"},
}
