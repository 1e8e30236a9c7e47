"""The fill sequence the loader and the keeper share (`load_and_fill`): single
flight, one query of the store, one token-checked write-back to the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import Protocol

from permcore.codec import CacheRead
from permcore.singleflight import FlightKey, Pending, SingleFlight
from permstore.models import UserAccess

Select = Callable[[list[int]], Awaitable[Mapping[int, UserAccess]]]
"""The store's batch query: the entries of the users that exist (permstore/permissions.py)."""

_UNGATED = nullcontext()


class Fillable(Protocol):
    """What the fill sequence uses of a cache: PermissionCache (a fake in tests/unit)."""

    @property
    def before_fill(self) -> Callable[[Sequence[int]], Awaitable[None]] | None: ...

    async def fill(
        self, read: CacheRead, loaded: dict[int, UserAccess | None]
    ) -> int | None: ...


async def load_and_fill(
    read: CacheRead | None,
    user_ids: Sequence[int],
    select: Select,
    *,
    cache: Fillable,
    flights: SingleFlight | None = None,
    gate: asyncio.Semaphore | None = None,
) -> tuple[dict[int, UserAccess | None], int | None]:
    """The race-free fill, written once (the loader and the keeper use it):
    single flight -> one `select` of the users -> the `before_fill` test seam ->
    one token-checked write-back.

    `read` holds the fill tokens and the epoch read *before* this call (None:
    Redis unavailable: load, write nothing). `user_ids` are distinct. With
    `flights`, a user another batch of this process is loading under the same
    token and epoch is awaited, not selected again. `gate` is held for the
    write-back. Returns every user's fresh entry (None: no such user) and the
    fill's outcome: the number of write-backs refused (a token or the epoch
    changed since `read`), None when nothing could be written. A failed `select`
    raises, fills nothing and fails the batches waiting on it."""
    waiting: dict[int, Pending] = {}
    owned: dict[FlightKey, Pending] = {}
    if flights is not None and read is not None:
        waiting, owned = flights.join(read, user_ids)
    mine = [u for u in user_ids if u not in waiting] if waiting else list(user_ids)
    fresh: dict[int, UserAccess | None] = {}
    refused: int | None = None if read is None else 0
    try:
        if mine:
            loaded = await select(mine)
            fresh = {u: loaded.get(u) for u in mine}
            for (u, _, _), future in owned.items():
                future.set_result(fresh[u])  # waiters need not wait for the write-back
            if read is not None:
                # test seam: pause between read and write-back
                if cache.before_fill is not None:
                    await cache.before_fill(mine)
                async with gate or _UNGATED:
                    refused = await cache.fill(read, fresh)
    except BaseException as exc:
        SingleFlight.abandon(owned, exc)
        raise
    finally:
        if flights is not None and owned:
            flights.release(owned)
    if waiting:
        others, orphans = await SingleFlight.wait(waiting)
        fresh.update(others)
        if orphans:  # no write-back for them: the next read fills them
            loaded = await select(orphans)
            fresh.update({u: loaded.get(u) for u in orphans})
    return fresh, refused


__all__ = ["Fillable", "Select", "load_and_fill"]
