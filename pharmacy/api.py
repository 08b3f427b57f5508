"""Glue between views and services: the request's unit of work, paging, shared schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_smorest import Blueprint

from pharmacy.auth import current_principal
from pharmacy.clock import Clock, system_clock
from pharmacy.errors import ValidationFailed
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
        uow = g.unit_of_work = UnitOfWork(database.session_factory, current_principal(), current_clock())
    return uow


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
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationFailed(f"the CSV is not UTF-8 (byte {error.start})") from None
