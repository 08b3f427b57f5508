"""Domain exceptions and their mapping to HTTP, in one place.

Every error leaves the service in one JSON shape (:class:`ErrorSchema`, documented once in the OpenAPI document)::

    {"code": 422, "status": "Unprocessable Entity", "message": "...",
     "errors": {"items": {"0": {"quantity": ["Missing data for required field."]}}}}

except under ``/fhir``, where errors are FHIR OperationOutcome resources with the same details as issues.

``errors`` is present when there are details, always an object that says where (its keys, nested as the request
is: a body's fields, ``query`` for the query string, ``lines`` for a CSV's lines by number) and what (a list of
messages, or the facts of a refusal). Services may itemise problems as a list of ``{"field", "reason"}`` or
``{"line", "column", "reason"}``; :func:`where_what` turns them into that object, here and nowhere else.

A message may be a :class:`Message`: the English the API returns, with the facts it was made from, so that the
pages can say it in their own language.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, Response, has_request_context, jsonify, request
from flask.typing import ResponseReturnValue
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger(__name__)


class Message(str):
    """English words made from a template and its facts, which keep both.

    It is the English everywhere a string is expected (the API's messages, logs); a page says it in its own
    language by translating the template and filling it with the facts, themselves said in that language where
    they are messages too (a status, an action). Templates are gettext message ids: ``%(name)s`` fills in a fact.
    """

    template: str
    facts: dict[str, Any]

    def __new__(cls, template: str, **facts: Any) -> Message:
        said = super().__new__(cls, template % {name: _english(fact) for name, fact in facts.items()}
                               if facts else template)
        said.template, said.facts = template, facts
        return said

    @classmethod
    def word(cls, code: str) -> Message:
        """A word of the domain given by its code (a status, an action, a reason), listed for translation in
        ``pharmacy/web/words.py``."""
        return cls(code)

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as what it is, not as a plain string
        return _message, (self.template, self.facts)


def _message(template: str, facts: dict[str, Any]) -> Message:
    return Message(template, **facts)


def _english(fact: Any) -> Any:
    """A fact as the English message shows it: a list of words joined by commas."""
    if isinstance(fact, list | tuple):
        return ", ".join(str(f) for f in fact)
    return fact


class DomainError(Exception):
    """A rule of the domain refused the request; ``status`` is the HTTP status it maps to."""

    status = 422

    def __init__(self, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class Unauthorized(DomainError):
    status = 401


class Conflict(DomainError):
    status = 409


class InvalidTransition(Conflict):
    """A state machine was asked for a step its current state does not allow."""


class PreconditionFailed(DomainError):
    status = 412


class PreconditionRequired(DomainError):
    status = 428


class ValidationFailed(DomainError):
    """Input that parsed but breaks a rule; ``errors`` says where."""

    status = 422


class InvalidSiteTree(ValidationFailed):
    """The consortium's membership would no longer be a tree."""


class OutOfStock(DomainError):
    status = 409


class ErrorSchema(Schema):
    """The one shape of every error the JSON API sends."""

    code = fields.Integer(required=True, metadata={"description": "the HTTP status"})
    status = fields.String(required=True, metadata={"description": "the HTTP status in words"})
    message = fields.String(required=True, metadata={"description": "what is wrong, in English"})
    errors = fields.Dict(keys=fields.String(), metadata={
        "description": "where and what: keys nested as the request is (a body's fields, 'query' for the query "
                       "string, 'lines' for a CSV's lines by number), each ending in a list of messages or the "
                       "facts of the refusal"})


def _keys(where: Any) -> list[str]:
    """``items[0].supply_days`` -> ``["items", "0", "supply_days"]``."""
    return [key for key in re.split(r"[.\[\]]+", str(where)) if key] or ["request"]


def _put(errors: dict[str, Any], keys: list[str], message: Any) -> None:
    for key in keys[:-1]:
        child = errors.setdefault(key, {})
        if not isinstance(child, dict):
            child = errors[key] = {"request": child}
        errors = child
    leaf = errors.setdefault(keys[-1], [])
    if isinstance(leaf, dict):
        leaf = leaf.setdefault("request", [])
    leaf.append(message)


def where_what(errors: Any) -> dict[str, Any]:
    """Any of the details a refusal carries as the one ``errors`` object (see the module's docstring)."""
    if not errors:
        return {}
    if isinstance(errors, dict):
        return errors
    shaped: dict[str, Any] = {}
    for item in errors if isinstance(errors, list | tuple) else [errors]:
        if not isinstance(item, dict):
            _put(shaped, ["request"], str(item))
        elif "line" in item:
            keys = ["lines", str(item["line"])] + ([str(item["column"])] if item.get("column") else [])
            _put(shaped, keys, item.get("reason", ""))
        else:
            where = item.get("field") or item.get("expression") or "request"
            _put(shaped, _keys(where), item.get("reason") or item.get("diagnostics") or "")
    return shaped


FHIR_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                    409: "conflict", 412: "conflict", 413: "too-costly", 422: "processing", 428: "required"}


def _leaves(errors: dict[str, Any], path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    for key, value in errors.items():
        if isinstance(value, dict) and value:
            found.extend(_leaves(value, (*path, str(key))))
        else:
            found.append((".".join((*path, str(key))), value))
    return found


def _words(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "; ".join(_words(v) for v in value if _words(v))
    return "" if value is None else str(value)


def operation_outcome(status: int, message: str, errors: Any) -> dict[str, Any]:
    """The FHIR shape of an error: one issue for the message, one per detail, each said in words and located by
    a FHIRPath-like ``expression``."""
    code = FHIR_ISSUE_CODES.get(status, "exception")
    issues: list[dict[str, Any]] = [{"severity": "error", "code": code, "diagnostics": message}]
    for where, what in _leaves(where_what(errors)):
        said = _words(what)
        issue: dict[str, Any] = {"severity": "error", "code": code,
                                 "diagnostics": f"{where}: {said}" if said else f"{where}: {message}"}
        if where != "request":
            issue["expression"] = [where]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def problem(status: int, message: str, errors: Any = None) -> tuple[Response, int]:
    if has_request_context() and (request.path == "/fhir" or request.path.startswith("/fhir/")):
        response = jsonify(operation_outcome(status, message, errors))
        response.mimetype = "application/fhir+json"
        return response, status
    body: dict[str, Any] = {
        "code": status,
        "status": HTTP_STATUS_CODES.get(status, "Error"),
        "message": message,
    }
    shaped = where_what(errors)
    if shaped:
        body["errors"] = shaped
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    """Map domain errors and every HTTP error (404, 405, bad JSON, ...) to the one shape."""

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> ResponseReturnValue:
        return problem(error.status, error.message, error.errors)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        errors = _flatten_webargs_messages(messages) if messages else None
        message = error.description or HTTP_STATUS_CODES.get(status, "Error")
        if errors and status == 422:
            message = "The request has invalid fields: " + ", ".join(sorted(_paths(errors)))
        elif isinstance(errors, list) and errors and status == 400:
            message = "; ".join(str(e) for e in errors)
            errors = {"body": errors}
        response, code = problem(status, message, errors)
        allow = error.get_response().headers.get("Allow") if status == 405 else None
        if allow:
            response.headers["Allow"] = allow
        return response, code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unhandled error", exc_info=error)
        return problem(500, InternalServerError.description)


def _flatten_webargs_messages(messages: Any) -> Any:
    # webargs nests messages by location ("json", "query"); one location is the norm, keep its inner dict
    # but say where it was when it is not the body.
    if isinstance(messages, dict) and len(messages) == 1:
        location, inner = next(iter(messages.items()))
        if location == "json":
            return inner
        return {location: inner}
    return messages


def _paths(errors: Any, prefix: str = "") -> list[str]:
    if not isinstance(errors, dict):
        return [prefix] if prefix else []
    paths: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            paths.extend(_paths(value, path))
        else:
            paths.append(path)
    return paths
