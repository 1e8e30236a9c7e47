"""The per-request loader set: built when a request starts, dropped when it ends.

This is the only place a DataLoader is constructed. Redis (the cross-request
cache) is read inside the permission batch function, never here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from strawberry.dataloader import DataLoader

from loaders.permissions import load_access_by_user_id
from loaders.permissions_per_user import load_access_one_by_one
from loaders.roles import load_permissions_by_role_id, load_roles_by_id
from loaders.users import (
    MembersKey,
    load_member_counts_by_role,
    load_members_by_role,
    load_users_by_id,
)

if TYPE_CHECKING:
    from api.cache import PermissionCache
    from api.db import Database
    from api.models import PermissionRow, RoleRow, UserAccess, UserRow


@dataclass(frozen=True, slots=True)
class Loaders:
    access_by_user_id: DataLoader[int, UserAccess | None]
    users_by_id: DataLoader[int, UserRow | None]
    roles_by_id: DataLoader[int, RoleRow | None]
    permissions_by_role_id: DataLoader[int, list[PermissionRow]]
    members_by_role: DataLoader[MembersKey, list[UserRow]]
    member_counts_by_role: DataLoader[int, int]
    # the permission batch function itself, for a page known in one piece
    access_batch: Callable[[Sequence[int]], Awaitable[list[UserAccess | None]]]


def forget(loader: DataLoader[Any, Any], *keys: Any) -> None:
    """Drop memoized keys after a write in this request (strawberry's `clear`
    raises KeyError for a key that was never loaded)."""
    for key in keys:
        with suppress(KeyError):
            loader.clear(key)


def create_loaders(
    db: Database, cache: PermissionCache, max_batch_size: int, *, per_user: bool = False
) -> Loaders:
    access_fn = partial(load_access_one_by_one if per_user else load_access_by_user_id, db=db, cache=cache)
    return Loaders(
        access_by_user_id=DataLoader(access_fn, max_batch_size=max_batch_size),
        access_batch=access_fn,
        users_by_id=DataLoader(partial(load_users_by_id, db=db), max_batch_size=max_batch_size),
        roles_by_id=DataLoader(partial(load_roles_by_id, db=db)),
        permissions_by_role_id=DataLoader(partial(load_permissions_by_role_id, db=db)),
        members_by_role=DataLoader(partial(load_members_by_role, db=db)),
        member_counts_by_role=DataLoader(partial(load_member_counts_by_role, db=db)),
    )


__all__ = ["Loaders", "create_loaders", "forget"]
