"""Glue between views and services: the request's unit of work, paging, shared schemas."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import flask_smorest
from flask import current_app, g, request
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session
from webargs.flaskparser import FlaskParser

from pharmacy.auth import current_principal, take_request_session
from pharmacy.clock import Clock, system_clock
from pharmacy.errors import ValidationFailed
from pharmacy.fields import Reference
from pharmacy.hygiene import DB_INT_MAX
from pharmacy.pagination import Page, PageRequest
from pharmacy.unit_of_work import UnitOfWork

F = TypeVar("F", bound=Callable[..., Any])


def current_clock() -> Clock:
    """The application's clock: real time, or the one a test or a replay set in ``CLOCK``."""
    return current_app.config.get("CLOCK") or system_clock


def request_uow() -> UnitOfWork:
    """The request's unit of work, for its authenticated principal: one per request, so that what wraps a view
    (an idempotent claim) and the service the view calls share one transaction."""
    uow = g.get("unit_of_work")
    if uow is None:
        database = current_app.extensions["pharmacy_db"]

        def session() -> Session:
            return take_request_session() or database.session_factory()

        uow = g.unit_of_work = UnitOfWork(session, current_principal(), current_clock())
    return uow


# References: every id a request names, resolved in one place --------------------------------------

def _references(schema: Schema, data: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Reference,
                                                                                         int]]:
    """Every (where, field, id) of a :class:`Reference` in data loaded by ``schema``, nested ones too."""
    if not isinstance(data, dict):
        return
    for name, field in schema.fields.items():
        value = data.get(field.attribute or name)
        if value is None:
            continue
        where = (*path, field.data_key or name)
        inner = field.inner if isinstance(field, fields.List) else None
        if isinstance(field, Reference):
            yield where, field, value
        elif isinstance(field, fields.Nested) and isinstance(field.schema, Schema):
            for index, item in (enumerate(value) if field.many else [(None, value)]):
                yield from _references(field.schema, item, where if index is None else (*where, str(index)))
        elif isinstance(value, list) and isinstance(inner, Reference):
            for index, item in enumerate(value):
                yield (*where, str(index)), inner, item
        elif isinstance(value, list) and isinstance(inner, fields.Nested) and isinstance(inner.schema, Schema):
            for index, item in enumerate(value):
                yield from _references(inner.schema, item, (*where, str(index)))


def unknown_references(schema: Schema, data: Any) -> dict[str, Any]:
    """Each reference in ``data`` that names no row of the caller's consortium, nested by where it is.

    The tenancy filter of the request's unit of work does the work: another consortium's row is not found, so
    it is never used, whichever service the request goes on to."""
    found = list(_references(schema, data))
    if not found:
        return {}
    wanted: dict[type, set[int]] = defaultdict(set)
    for _, field, ident in found:
        wanted[field.model].add(ident)
    uow = request_uow()
    with uow:
        known = {model: set(uow.session.scalars(select(model.id).where(model.id.in_(sorted(ids)))))  # type: ignore[attr-defined]
                 for model, ids in wanted.items()}
    errors: dict[str, Any] = {}
    for where, field, ident in found:
        if ident not in known[field.model]:
            nested = errors
            for key in where[:-1]:
                nested = nested.setdefault(key, {})
            nested[where[-1]] = [f"{field.what} {ident} not found"]
    return errors


class InputParser(FlaskParser):
    """webargs' parser, then every reference the arguments hold is resolved through the caller's consortium."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schemas: dict[type[Schema], Schema] = {}

    def _get_schema(self, argmap: Any, req: Any) -> Schema:
        # One instance a schema class for every request (a schema keeps no state of a load), not a new one with
        # copies of all its fields, nested schemas included, in each request.
        if isinstance(argmap, type) and issubclass(argmap, Schema):
            if argmap not in self._schemas:
                self._schemas[argmap] = argmap()
            return self._schemas[argmap]
        return super()._get_schema(argmap, req)

    def parse(self, argmap: Any, req: Any = None, *, location: str | None = None, **kwargs: Any) -> Any:
        data = super().parse(argmap, req, location=location, **kwargs)
        errors = unknown_references(self._get_schema(argmap, req or request), data)
        if errors:
            paths = sorted(_paths(errors))
            raise ValidationFailed("the request names what does not exist: " + ", ".join(paths),
                                   errors if location in (None, "json") else {location: errors})
        return data


def _paths(errors: dict[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in errors.items():
        path = f"{prefix}.{key}" if prefix else key
        found.extend(_paths(value, path) if isinstance(value, dict) else [path])
    return found


PAGINATION_HEADER = {
    "description": "paging, as a JSON object in the header's text: total, total_pages, first_page, last_page, "
                   "page, previous_page, next_page",
    "schema": {"type": "string", "example": '{"total": 120, "total_pages": 3, "first_page": 1, "last_page": 3, '
                                            '"page": 1, "next_page": 2}'},
}


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's blueprint with the service's parser, bounded paging and its paging header as it is sent."""

    ARGUMENTS_PARSER = InputParser()

    def paginate(self, *args: Any, **kwargs: Any) -> Callable[[F], F]:
        decorate = super().paginate(*args, **kwargs)

        def bounded(view: F) -> F:
            wrapper = decorate(view)
            # No page past what an offset can reach: flask-smorest's own schema only says "at least 1".
            page = wrapper._apidoc["pagination"]["parameters"]["schema"]._declared_fields["page"]
            page.validators.append(validate.Range(max=DB_INT_MAX))
            return wrapper

        return bounded

    def _document_pagination_metadata(self, spec: Any, resp_doc: dict[str, Any]) -> None:
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = PAGINATION_HEADER


def paginate(blp: Blueprint) -> Callable[[F], F]:
    """Paginate a list view: ``?page=&page_size=``, with ``X-Pagination`` header (flask-smorest)."""
    return blp.paginate(page=1, page_size=50, max_page_size=500)


def page_request(pagination_parameters: Any) -> PageRequest:
    return PageRequest(pagination_parameters.page, pagination_parameters.page_size)


def page_items(page: Page[Any], pagination_parameters: Any) -> list[Any]:
    pagination_parameters.item_count = page.total
    return page.items


CSV_BODY = {"content": {"text/csv": {"schema": {"type": "string"}},
                        "multipart/form-data": {"schema": {"type": "object",
                                                           "properties": {"file": {"type": "string",
                                                                                   "format": "binary"}}}}}}


def uploaded_csv() -> str:
    """The CSV a client sent, as the body (text/csv) or as the form field ``file``; UTF-8, BOM allowed."""
    upload = request.files.get("file")
    raw = upload.read() if upload else request.get_data()
    if not raw:
        raise ValidationFailed("send the CSV as the body (text/csv) or as the form field 'file'")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationFailed(f"the CSV is not UTF-8 (byte {error.start})") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationFailed(f"the CSV has a NUL character on line {line}; nothing was imported",
                               {"lines": {str(line): ["contains a NUL character"]}})
    return text
