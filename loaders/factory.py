"""The per-request loader set: built when a request starts, dropped when it ends.

This is the only place a DataLoader is constructed. Redis (the cross-request
cache) is read inside the permission batch function, never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.dataloader import DataLoader

from loaders.permissions_per_user import load_access_one_by_one
from loaders.roles import load_permissions_by_role_id, load_roles_by_id
from loaders.users import (
    MembersKey,
    load_member_counts_by_role,
    load_members_by_role,
    load_users_by_id,
)
from permcore.cache import PermissionCache
from permcore.read import load_access_by_user_id
from permcore.stream import Consistent

if TYPE_CHECKING:
    from permcore.read import ReadThrough
    from permstore.db import Database
    from permstore.models import PermissionRow, RoleRow, UserAccess, UserRow


K = TypeVar("K")
V = TypeVar("V")


class SharedLoader(DataLoader[K, V]):
    """Strawberry's DataLoader, except that a caller cancelled while it waits
    cancels only its own wait, never the load.

    `load` hands every caller of a key the same future. graphql-core cancels the
    pending fields next to one that failed (`gather_with_cancel`), and cancelling
    a task cancels the future it is waiting on: here the shared one. Every other
    field waiting for that key, elsewhere in the response, then raised
    CancelledError, which is no Exception: no GraphQL error handling caught it,
    and the client got a plain-text HTTP 500. Each caller now waits behind its
    own `asyncio.shield`: the load goes on, and the others get its value (a key
    already loaded returns its future as it is).

    And a batch function that ends in a CancelledError it did not ask for (its
    batch task is not being cancelled: it awaited something another task
    cancelled) fails its keys with `LoadCancelled`, an error of the response:
    Strawberry's dispatch catches only Exceptions, and would leave every waiter
    of the batch pending for ever."""

    def __init__(
        self,
        load_fn: Callable[[list[K]], Awaitable[Sequence[V | BaseException]]],
        max_batch_size: int | None = None,
    ) -> None:
        async def guarded(keys: list[K]) -> Sequence[V | BaseException]:
            try:
                return await load_fn(keys)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise
                raise LoadCancelled(
                    f"a load of {len(keys)} keys was cancelled"
                ) from exc

        super().__init__(guarded, max_batch_size=max_batch_size)

    def load(self, key: K) -> Awaitable[V]:
        return asyncio.shield(super().load(key))


class LoadCancelled(RuntimeError):
    """A batch function was cancelled by something other than its own batch."""


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
    db: Database,
    cache: ReadThrough,
    max_batch_size: int,
    *,
    per_user: bool = False,
    redis_slots: int | None = None,
) -> Loaders:
    """The loaders of one request. `db` is the request's view of the pool (it
    bounds the request's statements: permstore/db.py `Database.for_request`);
    `redis_slots` bounds the request's Redis calls in flight, so that one request
    cannot take the whole Redis pool (None: unbounded, for tools)."""
    if per_user:  # the replaced design, kept for bench/ only (it ignores tokens)
        base = cache.cache if isinstance(cache, Consistent) else cache
        if not isinstance(base, PermissionCache):
            raise TypeError("the per-user loader reads a PermissionCache")
        access_fn = partial(load_access_one_by_one, db=db, cache=base)
    else:
        gate = None if redis_slots is None else asyncio.Semaphore(redis_slots)
        access_fn = partial(load_access_by_user_id, db=db, cache=cache, gate=gate)
    return Loaders(
        access_by_user_id=SharedLoader(access_fn, max_batch_size=max_batch_size),
        access_batch=access_fn,
        users_by_id=SharedLoader(
            partial(load_users_by_id, db=db), max_batch_size=max_batch_size
        ),
        roles_by_id=SharedLoader(partial(load_roles_by_id, db=db)),
        permissions_by_role_id=SharedLoader(
            partial(load_permissions_by_role_id, db=db)
        ),
        members_by_role=SharedLoader(partial(load_members_by_role, db=db)),
        member_counts_by_role=SharedLoader(partial(load_member_counts_by_role, db=db)),
    )


__all__ = ["LoadCancelled", "Loaders", "SharedLoader", "create_loaders", "forget"]
