"""Paging of list queries: the service returns one page and the total count."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int


def fetch_page(session: Session, stmt: Select[Any], request: PageRequest) -> Page[Any]:
    """Run ``stmt`` (already ordered) for one page, and count all its rows."""
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    offset = (request.page - 1) * request.page_size
    items = list(session.scalars(stmt.limit(request.page_size).offset(offset)))
    return Page(items, total)
