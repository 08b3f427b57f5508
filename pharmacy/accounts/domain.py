"""Which site a principal of each role is bound to."""

from __future__ import annotations

import re

from pharmacy.errors import Message, ValidationFailed
from pharmacy.principal import SITE_BOUND_ROLES, Role


def check_binding(role: Role, site_id: int | None, site_dispenses: bool | None, site_active: bool | None) -> None:
    """Prescribers and pharmacists act for exactly one site; admins and procurement for the consortium."""
    if role is Role.SYSTEM:
        raise ValidationFailed(Message("the system role cannot be given to an account"), {"role": "system"})
    if role in SITE_BOUND_ROLES:
        if site_id is None:
            raise ValidationFailed(Message("a %(role)s account is bound to one site", role=Message.word(role.value)),
                                   {"site_id": "required"})
        if site_active is False:
            raise ValidationFailed(Message("the site is inactive"), {"site_id": site_id})
        if role is Role.PHARMACIST and not site_dispenses:
            raise ValidationFailed(Message("a pharmacist works at a site that dispenses"), {"site_id": site_id})
    elif site_id is not None:
        raise ValidationFailed(Message("a %(role)s account acts for the whole consortium, not one site",
                                       role=Message.word(role.value)), {"site_id": "must be empty"})


# A username is what people type at the sign-in: ASCII letters, digits and . _ @ -, 2 to 80 of them (a surname
# alone, li or wu, is a username).
USERNAME_PATTERN = r"^[A-Za-z0-9_.@\-]{2,80}$"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200


def check_username(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise ValidationFailed(Message("a username is 2 to 80 letters, digits, '.', '_', '@' or '-'"),
                               {"username": username})


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ValidationFailed(Message("a password has %(least)s to %(most)s characters", least=MIN_PASSWORD_LENGTH,
                                       most=MAX_PASSWORD_LENGTH),
                               {"password": "too short" if len(password) < MIN_PASSWORD_LENGTH else "too long"})
