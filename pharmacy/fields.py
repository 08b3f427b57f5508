"""The fields every schema reads numbers and ids with: bounded to what the database holds, strict about type.

A :class:`Reference` is the id of a row of the caller's consortium; the API's parser resolves every one of them
(path, query and body alike) before a view runs, see :mod:`pharmacy.api`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import fields, validate

from pharmacy.hygiene import DB_INT_MAX


class WholeNumber(fields.Integer):
    """An integer the database can hold: a fraction (5.5, even 5.0), a boolean or a number past the bounds is
    refused, never rounded. Digits in a string are read (query strings and CSV cells are text)."""

    default_error_messages = {"invalid": "Not a valid integer (a whole number, not a fraction)."}

    def __init__(self, *, minimum: int = 0, maximum: int = DB_INT_MAX, **kwargs: Any) -> None:
        validators = [validate.Range(minimum, maximum), *_as_list(kwargs.pop("validate", None))]
        super().__init__(strict=False, validate=validators, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool | float | Decimal):
            raise self.make_error("invalid")
        if isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            raise self.make_error("invalid")
        return super()._validated(value)


class Reference(WholeNumber):
    """The id of a row of ``model`` in the caller's consortium; another consortium's id is not found."""

    def __init__(self, model: type, what: str, **kwargs: Any) -> None:
        metadata = {"description": f"the id of a {what} of your consortium", **kwargs.pop("metadata", {})}
        super().__init__(minimum=1, metadata=metadata, **kwargs)
        self.model, self.what = model, what


def _as_list(validators: Any) -> list[Any]:
    if validators is None:
        return []
    return list(validators) if isinstance(validators, list | tuple) else [validators]


class Money(fields.Decimal):
    """An amount of yuan: read as a Decimal (never through a float), sent as a JSON number, bounded."""

    def __init__(self, *, places: int = 4, minimum: float = 0, maximum: float = 1e9, **kwargs: Any) -> None:
        validators = [validate.Range(Decimal(str(minimum)), Decimal(str(maximum))), *_as_list(kwargs.pop("validate",
                                                                                                     None))]
        super().__init__(places=places, allow_nan=False, validate=validators, **kwargs)

    def _validated(self, value: Any) -> Decimal:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else float(value)  # a JSON number, as documented
