"""Batch contract: N user ids in -> N values out, in key order; a slot holds the
user's `UserAccess`, None for an unknown user, or an Exception.

One batch = one Redis MGET (values, fill tokens, epoch), then, for the misses,
the fill sequence of permcore/fill.py (`load_and_fill`: single flight, one SQL query,
one token-checked write-back). A failed SQL query fails every key of the batch
and caches nothing; a failed Redis call is a miss (or a skipped fill), never an
error and never a grant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Protocol

from permbase.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    LOADER_BATCH_SIZE,
    LOADER_SQL_SECONDS,
)
from permcore.codec import CacheRead
from permcore.fill import Fillable, load_and_fill
from permcore.singleflight import SingleFlight
from permstore import permissions as store

if TYPE_CHECKING:
    from permcore.fill import Select
    from permstore.db import Database
    from permstore.models import UserAccess


class ReadThrough(Fillable, Protocol):
    """What the loader uses of a cache: PermissionCache (a fake in tests/unit)."""

    @property
    def inflight(self) -> SingleFlight: ...

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None: ...


logger = logging.getLogger(__name__)

_UNGATED = nullcontext()


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


__all__ = ["ReadThrough", "load_access", "load_access_by_user_id"]
