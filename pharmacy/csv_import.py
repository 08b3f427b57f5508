"""Reading an uploaded CSV for an all-or-nothing import: every bad row reported with line, column, reason."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from marshmallow import Schema, ValidationError

from pharmacy.errors import ValidationFailed

MAX_REPORTED_ERRORS = 1000


def _rows(text: str) -> tuple[list[str], Iterable[tuple[int, dict[str, str | None]]]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header

    def rows() -> Iterable[tuple[int, dict[str, str | None]]]:
        for row in reader:
            if row.get(None):  # type: ignore[call-overload,unused-ignore]
                yield reader.line_num, {"__extra__": "more cells than columns"}
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
            errors.append({"line": 1, "column": column, "reason": "unknown column"})
    for column in sorted(set(required) - set(header)):
        errors.append({"line": 1, "column": column, "reason": "required column is missing"})
    if errors:
        raise ValidationFailed("the CSV header is wrong; expected columns: " + ",".join(columns), errors)
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
                reason = "; ".join(map(str, reasons)) if isinstance(reasons, list) else str(reasons)
                errors.append({"line": line, "column": column, "reason": reason})
            continue
        identity = key(values)
        if identity in seen:
            errors.append({"line": line, "column": key_column, "reason": f"the same row as line {seen[identity]}"})
            continue
        seen[identity] = line
        for column in columns:  # an empty optional cell clears the field
            values.setdefault(column, None)
        parsed.append((line, values))
        if len(errors) >= MAX_REPORTED_ERRORS:
            break
    if errors:
        raise ValidationFailed(f"{len(errors)} problems in the CSV; nothing was imported", errors)
    return parsed
