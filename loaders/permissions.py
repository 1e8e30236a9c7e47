"""Batch contract: N user ids in -> N values out, in key order; a slot holds the
user's `UserAccess`, None for an unknown user, or an Exception.

One batch = one Redis MGET (values, fill tokens, epoch), one SQL query for all
misses, one pipelined, token-checked write-back (api/cache.py). A failed SQL
query fails every key of the batch and caches nothing; a failed Redis call is a
miss (or a skipped fill), never an error and never a grant.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

from api.metrics import CACHE_HITS, CACHE_MISSES, LOADER_BATCH_SIZE, LOADER_SQL_SECONDS
from api.store import permissions as store

if TYPE_CHECKING:
    from api.cache import PermissionCache
    from api.db import Database
    from api.models import UserAccess

logger = logging.getLogger(__name__)

_UNGATED = nullcontext()


async def load_access_by_user_id(
    user_ids: Sequence[int], *, db: Database, cache: PermissionCache, gate: asyncio.Semaphore | None = None
) -> list[UserAccess | None]:
    """`gate`: the request's share of the Redis pool (loaders/factory.py), held for
    each Redis call; the SQL is bounded by the request's `db` view."""
    LOADER_BATCH_SIZE.observe(len(user_ids))
    async with gate or _UNGATED:
        read = await cache.read(user_ids)
    hits = read.hits if read is not None else {}
    misses = list(dict.fromkeys(u for u in user_ids if u not in hits))
    CACHE_HITS.inc(len(user_ids) - len(misses))  # a repeated key counts as a hit
    CACHE_MISSES.inc(len(misses))
    logger.debug("permission batch keys=%d hits=%d misses=%d", len(user_ids), len(user_ids) - len(misses), len(misses))
    if not misses:
        return [hits[u] for u in user_ids]

    # Single flight: a miss that another request of this process is already
    # loading under the same fill token and epoch is awaited, not queried again
    # (a cold-cache stampede fills each user once). The same token means no
    # invalidation came between the two reads, so sharing cannot serve rows
    # older than this request is allowed to see.
    waiting: dict[int, asyncio.Future[UserAccess | None]] = {}
    owned: dict[tuple[int, str, str], asyncio.Future[UserAccess | None]] = {}
    if read is not None:
        for u in misses:
            key = (u, read.gens.get(u, ""), read.epoch)
            if (future := cache.inflight.get(key)) is not None:
                waiting[u] = future
            else:
                owned[key] = cache.inflight[key] = asyncio.get_running_loop().create_future()
    mine = [u for u in misses if u not in waiting]
    fresh: dict[int, UserAccess | None] = {}
    try:
        if mine:
            started = time.perf_counter()
            loaded = await store.select_access_by_user_ids(db, mine)
            LOADER_SQL_SECONDS.observe(time.perf_counter() - started)
            fresh = {u: loaded.get(u) for u in mine}
            for (u, _, _), future in owned.items():
                future.set_result(fresh[u])
            if read is not None:
                if cache.before_fill is not None:  # test seam: pause between read and write-back
                    await cache.before_fill(mine)
                async with gate or _UNGATED:
                    await cache.fill(read, fresh)
    except BaseException as exc:
        for future in owned.values():
            if future.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()  # this batch was abandoned: the waiters load it themselves
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters, if any, re-raise it
        raise
    finally:
        for key in owned:
            cache.inflight.pop(key, None)
    if waiting:
        fresh.update(await _wait_for_others(waiting, db))
    return [hits[u] if u in hits else fresh[u] for u in user_ids]


async def _wait_for_others(
    waiting: dict[int, asyncio.Future[UserAccess | None]], db: Database
) -> dict[int, UserAccess | None]:
    """The entries other batches are loading. Waited for without `await future`:
    cancelling this batch must not cancel a future another request's batch owns
    (and its other waiters with it). A batch that was itself cancelled before it
    loaded leaves its futures cancelled: those users are loaded here (no
    write-back: the next read fills them)."""
    await asyncio.wait(waiting.values())
    orphans = [u for u, future in waiting.items() if future.cancelled()]
    out = {u: future.result() for u, future in waiting.items() if not future.cancelled()}
    if orphans:
        loaded = await store.select_access_by_user_ids(db, orphans)
        out.update({u: loaded.get(u) for u in orphans})
    return out


__all__ = ["load_access_by_user_id"]
