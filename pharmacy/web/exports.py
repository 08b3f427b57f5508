"""Working lists as files: a table of the pages written as CSV (UTF-8 with a byte-order mark, so that a
spreadsheet opens Chinese text as it is) or as an Excel workbook (openpyxl). A page and its export are made from
the same rows, so that the file says row for row what the page says."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from flask import Response
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font

from pharmacy.clock import CONSORTIUM_TIMEZONE

FORMATS = ("csv", "xlsx")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class Sheet:
    """A table to export: its file name (without suffix), column headings and rows of plain values (text,
    whole numbers, Decimals, dates, datetimes in UTC, which are written in Beijing time)."""

    name: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _plain(value: Any) -> Any:
    """A value as a cell holds it: datetimes in Beijing time without a zone (spreadsheets have none)."""
    if isinstance(value, datetime):
        local = value.astimezone(CONSORTIUM_TIMEZONE) if value.tzinfo else value
        return local.replace(tzinfo=None, microsecond=0)
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub(" ", value)  # no cell may hold a control character
    return value


def _text(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def as_csv(sheet: Sheet) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(sheet.headers)
    for row in sheet.rows:
        writer.writerow([_text(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def as_xlsx(sheet: Sheet) -> bytes:
    book = Workbook()
    page = book.active
    assert page is not None
    page.title = sheet.name[:31]
    page.append(list(sheet.headers))
    for cell in page[1]:
        cell.font = Font(bold=True)
    for row in sheet.rows:
        page.append([_plain(v) for v in row])
    for column in page.iter_cols(min_row=2):
        for cell in column:
            if isinstance(cell.value, Decimal):
                cell.number_format = "#,##0.00##"
            elif isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(cell.value, date):
                cell.number_format = "yyyy-mm-dd"
    page.freeze_panes = "A2"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def send(sheet: Sheet, fmt: str) -> Response:
    """The sheet as a download in ``fmt`` (csv or xlsx)."""
    # text/csv without its charset: the response adds it (named twice, some programs refuse the file)
    body, mimetype = (as_xlsx(sheet), XLSX) if fmt == "xlsx" else (as_csv(sheet), "text/csv")
    filename = f"{sheet.name}.{fmt}"
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}", "Cache-Control": "no-store"})
