"""Input hygiene, in one place: what every request must be before any view or service reads it.

Under ``/api/`` and ``/fhir`` a request is refused, in the one error shape, when

- its JSON body is larger than ``MAX_JSON_BYTES`` (413), is not JSON, or nests deeper than
  :data:`MAX_JSON_DEPTH` (400: no message of this service nests that deep, and a parser would recurse on it);
- a string anywhere in its JSON body or query string holds a NUL character or a lone surrogate (422 naming the
  field): the database cannot store either, and no drug name or prescription number needs one;
- a path id is one no row can have (404): ids are the database's ``INTEGER``, see :class:`IdConverter`.

Field by field rules (lengths, bounded integers, ids of the caller's consortium) are the schemas', through
:mod:`pharmacy.fields`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter, ValidationError

from pharmacy.errors import DomainError, ValidationFailed

DB_INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER: every id and every count column
MAX_JSON_DEPTH = 32
CHECKED_PREFIXES = ("/api/", "/fhir")


class MalformedBody(DomainError):
    """A body that is not JSON, or not JSON this service can read."""

    status = 400


class IdConverter(BaseConverter):
    """A row id in a path: digits only, from 1 to the largest ``INTEGER``; any other is no route (404)."""

    regex = r"\d{1,20}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= DB_INT_MAX:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


ID_PARAMETER_SCHEMA = {"type": "integer", "minimum": 1, "maximum": DB_INT_MAX}


def db_id(text: str) -> int | None:
    """A row id written as text (FHIR ids and search parameters), or None if no row can have it."""
    if not text.isascii() or not text.isdigit() or len(text) > 20:
        return None
    number = int(text)
    return number if 1 <= number <= DB_INT_MAX else None


# One scan of a string in C (a loop in Python cost a call a character, on every string of every request).
_UNFIT = re.compile("[\x00\ud800-\udfff]")


def flaw(text: str) -> str | None:
    """What makes ``text`` unfit to keep, in words, or None."""
    if _UNFIT.search(text) is None:
        return None
    if "\x00" in text:
        return "contains a NUL character"
    return "contains a lone surrogate (not a character)"


def _nest(errors: dict[str, Any], path: list[str], message: str) -> None:
    for key in path[:-1]:
        errors = errors.setdefault(key, {})
    errors[path[-1]] = [message]


def check_json(value: Any) -> dict[str, Any]:
    """Every flawed string (keys too) in a parsed JSON value, nested by where it is, as schemas report errors."""
    errors: dict[str, Any] = {}
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise MalformedBody(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
                                {"body": [f"nested deeper than {MAX_JSON_DEPTH} levels"]})
        if isinstance(item, str):
            problem = flaw(item)
            if problem:
                _nest(errors, path or ["body"], problem)
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = flaw(key)
                if problem:
                    _nest(errors, [*path, key.encode("utf-8", "backslashreplace").decode()], "name " + problem)
                else:
                    stack.append((child, [*path, key]))
        elif isinstance(item, list):
            stack.extend((child, [*path, str(index)]) for index, child in enumerate(item))
    return errors


def _is_json() -> bool:
    mimetype = request.mimetype or ""
    return mimetype == "application/json" or mimetype.endswith("+json")


def _check_query() -> None:
    errors: dict[str, Any] = {}
    for name, values in request.args.lists():
        problem = flaw(name) or next((flaw(v) for v in values if flaw(v)), None)
        if problem:
            errors[name.encode("utf-8", "backslashreplace").decode()] = [problem]
    if errors:
        raise ValidationFailed("the query string has invalid parameters: " + ", ".join(sorted(errors)),
                               {"query": errors})


def _check_body() -> None:
    limit = current_app.config["MAX_JSON_BYTES"]
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"a JSON body is at most {limit} bytes")
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise RequestEntityTooLarge(f"a JSON body is at most {limit} bytes")
    if not raw.strip():
        return
    try:
        body = json.loads(raw)
    except RecursionError:
        raise MalformedBody(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels",
                            {"body": [f"nested deeper than {MAX_JSON_DEPTH} levels"]}) from None
    except UnicodeDecodeError as error:
        raise MalformedBody("the body is not UTF-8 JSON", {"body": [f"not UTF-8 at byte {error.start}"]}) from None
    except ValueError as error:  # JSONDecodeError, and integers longer than Python reads
        raise MalformedBody("the body is not valid JSON", {"body": [str(error)]}) from None
    errors = check_json(body)
    if errors:
        raise ValidationFailed("the request has invalid fields: " + ", ".join(sorted(_paths(errors))), errors)


def _paths(errors: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else key
        found.extend(_paths(value, path) if isinstance(value, dict) else [path])
    return found


def init_app(app: Flask) -> None:
    """Check every API request before its view (after authentication, so strangers learn nothing)."""
    @app.before_request
    def _clean_input() -> None:
        if not request.path.startswith(CHECKED_PREFIXES):
            return
        _check_query()
        if _is_json():
            _check_body()
