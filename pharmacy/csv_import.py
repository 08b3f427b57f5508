"""Reading an uploaded CSV for an all-or-nothing import: every bad row reported with line, column, reason."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from marshmallow import Schema, ValidationError

from pharmacy.errors import Message, ValidationFailed

MAX_REPORTED_ERRORS = 1000


def _rows(text: str) -> tuple[list[str], Iterable[tuple[int, dict[str, str | None]]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header

    def rows() -> Iterable[tuple[int, dict[str, str | None]]]:
        for row in reader:
            if row.get(None):  # type: ignore[call-overload,unused-ignore]
                yield reader.line_num, {"__extra__": Message("more cells than columns")}
                continue
            cleaned = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
            if not any(cleaned.values()):
                continue
            yield reader.line_num, {k: (v if v != "" else None) for k, v in cleaned.items()}

    return header, rows()


def read_csv(text: str, columns: Sequence[str], required: Collection[str], schema: Schema,
             key: Callable[[dict[str, Any]], Any], key_column: str) -> list[tuple[int, dict[str, Any]]]:
    """Rows of ``text`` loaded by ``schema``, as (line, values); empty optional cells become None.

    Raises :class:`ValidationFailed` listing every problem (header, cells, rows repeating a ``key``), so
    that nothing is imported unless every row is good.
    """
    header, rows = _rows(text)
    errors: list[dict[str, Any]] = []
    for column in header:
        if column not in columns:
            errors.append({"line": 1, "column": column, "reason": Message("unknown column")})
    for column in sorted(set(required) - set(header)):
        errors.append({"line": 1, "column": column, "reason": Message("required column is missing")})
    if errors:
        raise ValidationFailed(Message("the CSV header is wrong; expected columns: %(columns)s",
                                       columns=",".join(columns)), errors)
    parsed: list[tuple[int, dict[str, Any]]] = []
    seen: dict[Any, int] = {}
    for line, row in rows:
        if "__extra__" in row:
            errors.append({"line": line, "column": None, "reason": row["__extra__"]})
            continue
        try:
            values = schema.load({k: v for k, v in row.items() if v is not None})
        except ValidationError as error:
            for column, reasons in sorted(error.normalized_messages().items()):
                errors.append({"line": line, "column": column, "reason": said_all(reasons)})
            continue
        identity = key(values)
        if identity in seen:
            errors.append({"line": line, "column": key_column,
                           "reason": Message("the same row as line %(line)s", line=seen[identity])})
            continue
        seen[identity] = line
        for column in columns:  # an empty optional cell clears the field
            values.setdefault(column, None)
        parsed.append((line, values))
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise ValidationFailed(Message("%(count)s problems in the CSV; nothing was imported", count=len(errors)),
                               errors)
    return parsed


# What marshmallow says of a cell in words of its own, listed so that the pages say them in their language
# (pharmacy/web/words.py lists them for translation); any other reason stays as it is.
FIELD_MESSAGES = frozenset({
    "Missing data for required field.", "Not a valid integer.", "Not a valid integer (a whole number, not a fraction).",
    "Not a valid number.", "Not a valid date.", "Not a valid string.", "Not a valid boolean.", "Unknown field.",
    "Field may not be null.", "Special numeric values (nan or infinity) are not permitted.",
})


def _said(reason: object) -> str:
    if isinstance(reason, Message):
        return reason
    text = str(reason)
    return Message.word(text) if text in FIELD_MESSAGES else text


def said_all(reasons: object) -> str:
    """What marshmallow says of one field, each reason a :class:`Message` where the pages can say it."""
    said = [_said(r) for r in (reasons if isinstance(reasons, list) else [reasons])]
    return said[0] if len(said) == 1 else Message("%(reasons)s", reasons=said)
