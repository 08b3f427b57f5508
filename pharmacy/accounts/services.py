"""Use cases for API keys and user accounts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from pharmacy.accounts.domain import check_binding, check_password, check_username
from pharmacy.accounts.models import ApiKey, User
from pharmacy.auth import hash_api_key, hash_password, new_api_key
from pharmacy.consortium.models import Site
from pharmacy.errors import Conflict, Message
from pharmacy.pagination import Page, PageRequest, fetch_page
from pharmacy.principal import Role
from pharmacy.unit_of_work import UnitOfWork


def _check_binding(uow: UnitOfWork, role: Role, site_id: int | None) -> None:
    site = uow.get(Site, site_id) if site_id is not None else None
    check_binding(role, site_id, site.dispenses if site else None, site.active if site else None)


def create_api_key(uow: UnitOfWork, consortium_id: int, name: str, role: Role,
                   site_id: int | None = None) -> tuple[ApiKey, str]:
    """Issue an API key; the plain key is returned once and only its hash is kept."""
    with uow:
        _check_binding(uow, role, site_id)
        plain = new_api_key()
        key = ApiKey(consortium_id=consortium_id, name=name, role=role.value, site_id=site_id,
                     key_hash=hash_api_key(plain), key_prefix=plain[:10], created_at=uow.now())
        uow.session.add(key)
        uow.commit()
        return key, plain


def list_api_keys(uow: UnitOfWork, page: PageRequest) -> Page[ApiKey]:
    with uow:
        return fetch_page(uow.session, select(ApiKey).order_by(ApiKey.id), page)


def revoke_api_key(uow: UnitOfWork, key_id: int) -> ApiKey:
    """Revoke a key: it stops working at once and stays on record."""
    with uow:
        key = uow.get(ApiKey, key_id, for_update=True, what="API key")
        key.active = False
        uow.commit()
        return key


def create_user(uow: UnitOfWork, consortium_id: int, username: str, password: str, role: Role,
                site_id: int | None = None, display_name: str = "") -> User:
    """Create a person's account; the password is stored only as a salted hash."""
    with uow:
        _check_binding(uow, role, site_id)
        check_username(username)
        check_password(password)
        taken = uow.session.scalars(
            select(User).where(User.username == username).execution_options(all_consortia=True)
        ).first()
        if taken is not None:
            raise Conflict(Message("username %(username)s is taken", username=username), {"username": username})
        user = User(consortium_id=consortium_id, username=username, password_hash=hash_password(password),
                    role=role.value, site_id=site_id, display_name=display_name, created_at=uow.now())
        uow.session.add(user)
        uow.commit()
        return user


def list_users(uow: UnitOfWork, page: PageRequest) -> Page[User]:
    with uow:
        return fetch_page(uow.session, select(User).order_by(User.username), page)


def update_user(uow: UnitOfWork, user_id: int, changes: Mapping[str, Any]) -> User:
    """Change a user's role, site, name, password or active flag."""
    with uow:
        user = uow.get(User, user_id, for_update=True, what="user")
        values = dict(changes)
        role = Role(values.get("role", user.role))
        site_id = values.get("site_id", user.site_id)
        _check_binding(uow, role, site_id)
        if "password" in values:
            password = values.pop("password")
            check_password(password)
            user.password_hash = hash_password(password)
        values["role"] = role.value
        for key, value in values.items():
            setattr(user, key, value)
        uow.commit()
        return user


def names_of(uow: UnitOfWork, labels: Iterable[str]) -> dict[str, str]:
    """The names to show for the actors a record names (``user:li`` is 李药师, ``api_key:his`` the key's name), so
    that pages say who rather than an account's internal label."""
    wanted = sorted(set(labels))
    usernames = [label.removeprefix("user:") for label in wanted if label.startswith("user:")]
    with uow:
        people = {u.username: u.display_name or u.username
                  for u in uow.session.scalars(select(User).where(User.username.in_(usernames)))} if usernames else {}
    return {label: people.get(label.removeprefix("user:"), label.removeprefix("user:"))
            if label.startswith("user:") else label.split(":", 1)[-1] for label in wanted}
