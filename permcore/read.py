"""The read-through: the permission loader's batch function (`load_access`)
and the fill of its misses (`load_and_fill`, which the keeper,
permcore/keeper.py, uses as well).

Batch contract: N user ids in -> N values out, in key order; a slot holds the
user's `UserAccess`, None for an unknown user, or an Exception.

One batch = one Redis MGET (values, fill tokens, epoch: permcore/cache.py),
then, for the misses, the fill: single flight (permcore/singleflight.py), one
SQL query, one token-checked write-back. A failed SQL query fails every key of
the batch and caches nothing; a failed Redis call is a miss (or a skipped
fill), never an error and never a grant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Protocol

from permbase.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    LOADER_BATCH_SIZE,
    LOADER_SQL_SECONDS,
)
from permcore.singleflight import FlightKey, Pending, SingleFlight
from permstore import permissions as store
from permstore.models import UserAccess

if TYPE_CHECKING:
    from permcore.cache import CacheRead
    from permstore.db import Database

logger = logging.getLogger(__name__)

_UNGATED = nullcontext()

Select = Callable[[list[int]], Awaitable[Mapping[int, UserAccess]]]
"""The store's batch query: the entries of the users that exist (permstore/permissions.py)."""


class Fillable(Protocol):
    """What the fill uses of a cache: PermissionCache (a fake in tests/unit)."""

    @property
    def before_fill(self) -> Callable[[Sequence[int]], Awaitable[None]] | None: ...

    async def fill(
        self, read: CacheRead, loaded: dict[int, UserAccess | None]
    ) -> int | None: ...


class ReadThrough(Fillable, Protocol):
    """What the loader uses of a cache: PermissionCache (a fake in tests/unit)."""

    @property
    def inflight(self) -> SingleFlight: ...

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None: ...


async def load_access(
    user_ids: Sequence[int],
    *,
    cache: ReadThrough,
    select: Select,
    gate: asyncio.Semaphore | None = None,
) -> list[UserAccess | None]:
    """The batch function, with the store's query as `select`. `gate`: the
    request's share of the Redis pool (loaders/factory.py), held for each Redis
    call."""
    LOADER_BATCH_SIZE.observe(len(user_ids))
    async with gate or _UNGATED:
        read = await cache.read(user_ids)
    hits = read.hits if read is not None else {}
    misses = list(dict.fromkeys(u for u in user_ids if u not in hits))
    CACHE_HITS.inc(len(user_ids) - len(misses))  # a repeated key counts as a hit
    logger.debug(
        "permission batch keys=%d hits=%d misses=%d",
        len(user_ids),
        len(user_ids) - len(misses),
        len(misses),
    )
    if not misses:
        return [hits[u] for u in user_ids]
    CACHE_MISSES.inc(len(misses))
    fresh, _ = await load_and_fill(
        read, misses, select, cache=cache, flights=cache.inflight, gate=gate
    )
    return [hits[u] if u in hits else fresh[u] for u in user_ids]


async def load_and_fill(
    read: CacheRead | None,
    user_ids: Sequence[int],
    select: Select,
    *,
    cache: Fillable,
    flights: SingleFlight | None = None,
    gate: asyncio.Semaphore | None = None,
) -> tuple[dict[int, UserAccess | None], int | None]:
    """The race-free fill, written once (`load_access` and the keeper use it):
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
        waiting, owned = flights.join(user_ids, read.gens, read.epoch)
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


async def _select(db: Database, user_ids: list[int]) -> dict[int, UserAccess]:
    started = time.perf_counter()
    loaded = await store.select_access_by_user_ids(db, user_ids)
    LOADER_SQL_SECONDS.observe(time.perf_counter() - started)
    return loaded


async def load_access_by_user_id(
    user_ids: Sequence[int],
    *,
    db: Database,
    cache: ReadThrough,
    gate: asyncio.Semaphore | None = None,
) -> list[UserAccess | None]:
    """`load_access` over PostgreSQL; the SQL is bounded by the request's `db` view."""
    return await load_access(
        user_ids, cache=cache, select=partial(_select, db), gate=gate
    )


__all__ = [
    "Fillable",
    "ReadThrough",
    "Select",
    "load_access",
    "load_access_by_user_id",
    "load_and_fill",
]
