"""What the pages read of the accounts: who a principal's label names, in the words people know them by."""

from __future__ import annotations

from sqlalchemy import select

from pharmacy.accounts.models import ApiKey, User
from pharmacy.unit_of_work import UnitOfWork


def display_names(uow: UnitOfWork) -> dict[str, str]:
    """Each account's label as records keep it (``user:wang``, ``api_key:ops``) and the name to show for it: a
    person's display name (王采购), else the username; a key's name."""
    with uow:
        names = {f"user:{username}": display or username for username, display in uow.session.execute(
            select(User.username, User.display_name))}
        names.update({f"api_key:{name}": name for (name,) in uow.session.execute(select(ApiKey.name))})
        return names


def people(uow: UnitOfWork) -> list[tuple[str, str]]:
    """(label, name) of every account that may appear in the records, people first, by name."""
    with uow:
        found = [(f"user:{u.username}", u.display_name or u.username)
                 for u in uow.session.scalars(select(User).order_by(User.username))]
        found += [(f"api_key:{k.name}", k.name) for k in uow.session.scalars(select(ApiKey).order_by(ApiKey.name))]
        return found
