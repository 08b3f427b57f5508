"""Catalog rules: controlled classes, pinyin keys, who may dispense what, search ranking."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

from pharmacy.consortium.domain import GRASSROOTS_KINDS, SiteKind


class ControlledClass(StrEnum):
    NONE = "none"
    PSYCHOTROPIC_II = "psychotropic_2"
    PSYCHOTROPIC_I = "psychotropic_1"
    NARCOTIC = "narcotic"
    TOXIC = "toxic"
    RADIOACTIVE = "radioactive"


class InsuranceClass(StrEnum):
    A = "A"
    B = "B"
    NONE = "none"


class SpecialStorage(StrEnum):
    NONE = "none"
    COLD_CHAIN = "cold_chain"
    FROZEN = "frozen"
    LIGHT_PROTECTED = "light_protected"


@lru_cache(maxsize=65536)
def pinyin_keys(generic_name: str) -> tuple[str, str]:
    """(initials, full pinyin) of a Chinese generic name, lower case; other characters pass through.

    Cached: a catalog repeats each generic name across forms, strengths and makers.
    """
    initials = "".join(lazy_pinyin(generic_name, style=Style.FIRST_LETTER, errors="default"))
    full = "".join(lazy_pinyin(generic_name, errors="default"))
    return initials.lower().replace(" ", ""), full.lower().replace(" ", "")


SEARCH_KEY_SEPARATOR = "\x1f"


def search_key(code: str, national_code: str | None, generic_name: str, brand_name: str | None) -> str:
    """One lower-case text holding everything a pharmacist may type, so a search scans one column."""
    initials, full = pinyin_keys(generic_name)
    parts = (code, national_code or "", generic_name, brand_name or "", initials, full)
    return SEARCH_KEY_SEPARATOR.join(part.lower() for part in parts)


def default_formulary_includes(site_kind: SiteKind, essential: bool) -> bool:
    """Grassroots sites stock the essential-medicines list by default; hospitals the whole catalog."""
    return essential or site_kind not in GRASSROOTS_KINDS


def may_dispense(site_kind: SiteKind, drug_active: bool, essential: bool, extended: bool) -> bool:
    """Whether a site may dispense a drug: active, and on its default list or extended to it."""
    return drug_active and (extended or default_formulary_includes(site_kind, essential))


def convert_to_units(quantity: int, unit: str, pack_size: int) -> int:
    """Quantities are kept in dispensing units; a quantity in packs is multiplied out."""
    return quantity * pack_size if unit == "pack" else quantity
