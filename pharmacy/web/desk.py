"""What the officer's and the administrator's pages share: how amounts, times, durations and people are said,
reading a list's filters and page from the query string, and refusing a form that carries text no database can
keep (a NUL or a lone surrogate) before any service sees it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Flask, current_app, flash, g, redirect
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError

from pharmacy.accounts.queries import display_names
from pharmacy.clock import CONSORTIUM_TIMEZONE
from pharmacy.csv_import import said_all
from pharmacy.errors import DomainError, Message, ValidationFailed
from pharmacy.hygiene import DB_INT_MAX
from pharmacy.pagination import PageRequest
from pharmacy.web import desk_words  # noqa: F401  (the words it lists are checked at import)
from pharmacy.web.routes import uow
from pharmacy.web.words import refusal

PAGE_SIZE = 25
CENT = Decimal("0.01")


def yuan(value: Any) -> str:
    """An amount in yuan as people read it: ¥1,234.50, to the fen."""
    if value is None:
        return "—"
    shown = Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)
    return f"¥{shown:,}" if shown >= 0 else f"-¥{-shown:,}"


def price(value: Any) -> str:
    """A price per pack or per unit in yuan: to the fen, or to the hundredth of a fen it is kept to."""
    if value is None:
        return "—"
    amount = Decimal(str(value))
    if amount == amount.quantize(CENT, ROUND_HALF_UP):
        return yuan(amount)
    return f"¥{amount.normalize():,}"


CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def printable(text: str | None) -> str:
    """Text with its control characters (a search key's separators) shown as spaces: a page and its export say
    the same, and a spreadsheet cell may hold none of them."""
    return CONTROL.sub(" ", text or "")


def beijing(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in Beijing time (times are kept in UTC)."""
    if value is None:
        return "—"
    return value.astimezone(CONSORTIUM_TIMEZONE).strftime(fmt)


def duration(hours: float | None) -> str:
    """A span in the unit that reads best: minutes under an hour, hours under two days, days beyond."""
    if hours is None:
        return "—"
    if hours < 1:
        return _("%(minutes)s min", minutes=max(round(hours * 60), 0 if hours <= 0 else 1))
    if hours < 48:
        return _("%(hours)s h", hours=format(hours, ".1f"))
    return _("%(days)s days", days=format(hours / 24, ".1f"))


def who(label: str | None) -> str:
    """The person (or system) a record's label names, by the name people know them by: 王采购, not user:wang."""
    if not label:
        return "—"
    names = g.get("desk_names")
    if names is None:
        names = g.desk_names = display_names(uow())
    if label in names:
        return str(names[label])
    if label.startswith("system:"):
        return _("the system")
    return label.partition(":")[2] or label


def whole(args: Mapping[str, str], name: str) -> int | None:
    """An id or number from a list's query string; anything else is no filter."""
    text = (args.get(name) or "").strip()
    if not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if 1 <= number <= DB_INT_MAX else None


def page_size() -> int:
    """Rows on a page of the desks' lists (``DESK_PAGE_SIZE``, 25 by default)."""
    return int(current_app.config.get("DESK_PAGE_SIZE", PAGE_SIZE))


def page_of(args: Mapping[str, str]) -> PageRequest:
    return PageRequest(whole(args, "page") or 1, page_size())


def pages(total: int) -> int:
    size = page_size()
    return max((total + size - 1) // size, 1)


def done(action: Callable[[], Any], success: str, target: str) -> ResponseReturnValue:
    """Run a desk's action; say what happened (or the service's refusal) and go back to ``target``."""
    try:
        action()
    except DomainError as error:
        flash(refusal(error), "error")
    else:
        flash(success, "ok")
    return redirect(target, 303)


def form_values(schema: Schema, form: Mapping[str, str]) -> dict[str, Any]:
    """A page form loaded by an input schema: empty fields are left out (as in a CSV), and every problem is
    refused as a :class:`ValidationFailed` naming its field."""
    typed = {k: v.strip() for k, v in form.items() if k in schema.fields and v.strip()}
    try:
        return schema.load(typed)
    except ValidationError as error:
        problems = [{"field": field, "reason": said_all(reasons)}
                    for field, reasons in sorted(error.normalized_messages().items())]
        raise ValidationFailed(Message("the form has invalid fields: %(fields)s",
                                       fields=[p["field"] for p in problems]), problems) from None


def init_app(app: Flask) -> None:
    """The desks' filters, and their views on the pages' blueprint."""
    app.jinja_env.filters.update(yuan=yuan, price=price, beijing=beijing, duration=duration, printable=printable)
    app.jinja_env.globals.update(who=who)
