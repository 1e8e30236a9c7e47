"""The per-request loader set: built when a request starts, dropped when it ends.

This is the only place a DataLoader is constructed. Redis (the cross-request
cache) is read inside the permission batch function, never here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from functools import cached_property, partial
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


class AccessMemo:
    """The request's permission entries: every entry it has read, by user.

    Both ways of reading entries go through it: the DataLoader (one user here and
    there: the caller, a member) and a page known in one piece (called directly:
    no future per key). So an entry is read once per request, whichever way asked
    first (two calls in flight at once may both read it: `mixed` says whether
    they got different entries), and `entries` says what the request's answer
    was computed from (`ResponseCache`, schema/engine/prepared.py). Cleared after the request's
    own write."""

    __slots__ = ("entries", "load", "mixed")

    def __init__(
        self, load: Callable[[Sequence[int]], Awaitable[list[UserAccess | None]]]
    ) -> None:
        self.load = load
        self.entries: dict[int, UserAccess | None] = {}
        # two overlapping reads of one user got different entries: the request
        # may have used both, so `entries` does not say what it was computed from
        self.mixed = False

    async def __call__(self, user_ids: Sequence[int]) -> list[UserAccess | None]:
        entries = self.entries
        missing = [u for u in dict.fromkeys(user_ids) if u not in entries]
        if missing:
            loaded = await self.load(missing)
            for user_id, access in zip(missing, loaded, strict=True):
                # (read by an overlapping call meanwhile, and changed since)
                if entries.get(user_id, access) is not access:
                    self.mixed = True
                entries[user_id] = access
        return [entries[u] for u in user_ids]


class Loaders:
    """The loaders of one request, each built when first used (most requests use
    one or two of them): `access` and `access_by_user_id` read permission
    entries, the others rows."""

    def __init__(
        self,
        db: Database,
        access: AccessMemo,
        max_batch_size: int,
    ) -> None:
        self._db = db
        # the request's entries, read by `access_by_user_id` and, for a page known
        # in one piece, directly
        self.access = access
        self._max_batch_size = max_batch_size

    @cached_property
    def access_by_user_id(self) -> DataLoader[int, UserAccess | None]:
        return SharedLoader(self.access, max_batch_size=self._max_batch_size)

    @cached_property
    def users_by_id(self) -> DataLoader[int, UserRow | None]:
        return SharedLoader(
            partial(load_users_by_id, db=self._db), max_batch_size=self._max_batch_size
        )

    @cached_property
    def roles_by_id(self) -> DataLoader[int, RoleRow | None]:
        return SharedLoader(partial(load_roles_by_id, db=self._db))

    @cached_property
    def permissions_by_role_id(self) -> DataLoader[int, list[PermissionRow]]:
        return SharedLoader(partial(load_permissions_by_role_id, db=self._db))

    @cached_property
    def members_by_role(self) -> DataLoader[MembersKey, list[UserRow]]:
        return SharedLoader(partial(load_members_by_role, db=self._db))

    @cached_property
    def member_counts_by_role(self) -> DataLoader[int, int]:
        return SharedLoader(partial(load_member_counts_by_role, db=self._db))


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
    return Loaders(db, AccessMemo(access_fn), max_batch_size)


__all__ = [
    "AccessMemo",
    "LoadCancelled",
    "Loaders",
    "SharedLoader",
    "create_loaders",
    "forget",
]
