"""Keep the permission cache warm: the keeper, and `python -m permcore.keeper`.

The cache is exact without it: every committed change reaches Redis through the
change stream (permcore/stream.py). What a read-through cache lacks is warmth:
each user's first read, and the first read after each expiry, is a miss; on a
skewed mix over many users those are the rare users (on a Zipf (s=1.1) mix over
10,000 users a read-through cache alone saves about 95 % of the permission
queries, bench/README.md). The keeper closes that gap:

- `refresh_all` reloads every active user's entry, 1,000 users per query: at
  start, after a whole-cache flush (the change stream kicks it), and every
  refresh interval (default half the TTL, 30 min), so an entry is replaced
  before it expires (and a write that bypassed the triggers heals within one
  interval); in one instance at a time (a Redis lease, SET NX PX, taken for most
  of an interval; a flush takes it regardless); within a bound,
  `permissions_cache_keep_warm_max_users` users (lowest ids first; ~470 bytes
  of Redis each, bench/README.md section 10); the rest stay read-through, and
  that is logged;
- `refill` reloads, right after, the entries the change stream invalidated
  (`refill_soon`, up to REFILL_MAX queued), so a change costs its users no miss;
- both through the same protocol as any reader (permcore/read.py
  `load_and_fill`, the loader's fill): the fill tokens are read before the SQL
  and the write-back is refused for a user invalidated in between, so the keeper
  can never write back permissions a change has revoked.

`warm_all` (the CLI) is the older, gentler form: it loads only the entries that
are missing, through the loader's batch function. Run by hand it reads the usual
settings; when DATABASE_URL / REDIS_URL are not set and `make run` is running,
it uses the servers `make run` uses (.data/dev-servers.json, written by permdev/dev.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from permbase.metrics import CACHE_REFILLED, CACHE_REFRESH_SECONDS, CACHE_REFRESHED
from permcore.read import load_access_by_user_id, load_and_fill
from permstore import permissions as access_store, users as user_store

if TYPE_CHECKING:
    from permbase.settings import Settings
    from permcore.cache import PermissionCache
    from permstore.db import Database

logger = logging.getLogger(__name__)

LEASE = "keeper"
# entries queued for a refill at most (a bulk change beyond it: read-through)
REFILL_MAX = 10_000


class CacheKeeper:
    def __init__(
        self,
        db: Database,
        cache: PermissionCache,
        *,
        interval: float,
        batch_size: int = 1000,
        max_users: int = 200_000,
    ) -> None:
        self.db = db
        self.cache = cache
        self.interval = interval
        self.batch_size = batch_size
        self.max_users = max_users
        self._kicked = asyncio.Event()
        # invalidated by the change stream, with the fill token it set: refill
        self._queued: dict[int, str] = {}
        self._refill_due = asyncio.Event()

    def kick(self) -> None:
        """Refresh now, whatever the lease says (after a whole-cache flush)."""
        self._kicked.set()

    def refill_soon(self, tokens: Mapping[int, str]) -> None:
        """The change stream invalidated these entries, setting these fill tokens:
        reload them in the background (`run_refills`), so that a change costs its
        users no miss. Beyond REFILL_MAX users queued, the rest stay read-through."""
        room = REFILL_MAX - len(self._queued)
        if room > 0 and tokens:
            self._queued.update(list(tokens.items())[:room])
            self._refill_due.set()

    async def refill(
        self, user_ids: Sequence[int], tokens: Mapping[int, str] | None = None
    ) -> int:
        """Reload these users' entries through the reader's protocol (tokens read
        before the SQL, token-checked write-back, joining a reader's fill of the
        same entry); return how many were loaded. With `tokens` (the ones this
        instance's invalidation set), only the users whose token is still that
        one: where another instance invalidated later, its own refill follows, so
        of N instances applying a change one reloads each entry."""
        select = partial(access_store.select_access_by_user_ids, self.db)
        done = 0
        for start in range(0, len(user_ids), self.batch_size):
            chunk = list(user_ids[start : start + self.batch_size])
            read = await self.cache.read_tokens(chunk)
            if read is None:
                return done
            ids = (
                chunk
                if tokens is None
                else [u for u in chunk if read.gens.get(u) == tokens.get(u)]
            )
            if ids:
                await load_and_fill(
                    read, ids, select, cache=self.cache, flights=self.cache.inflight
                )
            CACHE_REFILLED.inc(len(ids))
            done += len(ids)
        return done

    async def run_refills(self) -> None:
        """Forever: refill what the change stream invalidated, as it comes."""
        while True:
            await self._refill_due.wait()
            self._refill_due.clear()
            queued, self._queued = self._queued, {}
            try:
                await self.refill(sorted(queued), queued)
            except Exception:  # PostgreSQL down or the like: reads fill them
                logger.warning(
                    "refill of %d entries failed", len(queued), exc_info=True
                )

    async def refresh_all(self) -> int:
        """Reload every active user's entry (up to the bound); return how many
        were written or refused. Stops early when Redis is unavailable."""
        started = time.perf_counter()
        select = partial(access_store.select_access_by_user_ids, self.db)
        after, total = 0, 0
        while total < self.max_users:
            ids = await user_store.select_ids_after(
                self.db, after, min(self.batch_size, self.max_users - total)
            )
            if not ids:
                break
            read = await self.cache.read_tokens(ids)  # tokens before the SQL read
            if read is None:
                return total
            _, refused = await load_and_fill(read, ids, select, cache=self.cache)
            if refused is None:
                return total
            CACHE_REFRESHED.inc(len(ids))
            total += len(ids)
            after = ids[-1]
        else:
            if await user_store.select_ids_after(self.db, after, 1):
                logger.warning(
                    "the keeper keeps %d users warm; users with higher ids are read-through only",
                    total,
                )
        CACHE_REFRESH_SECONDS.observe(time.perf_counter() - started)
        logger.info("refreshed the permission cache for %d users", total)
        return total

    async def run(self) -> None:
        """Forever: a pass now (if this instance gets the lease), then one per
        interval or as soon as it is kicked."""
        while True:
            forced = self._kicked.is_set()
            self._kicked.clear()
            try:
                if await self.cache.take_lease(
                    LEASE, self.interval * 0.9, force=forced
                ):
                    await self.refresh_all()
            except Exception:  # PostgreSQL down or the like: the next interval retries
                logger.warning("cache keeper pass failed", exc_info=True)
            # while Redis is not trusted (the change stream is behind) look again soon
            with suppress(TimeoutError):
                async with asyncio.timeout(
                    self.interval if self.cache.trusted else min(self.interval, 1.0)
                ):
                    await self._kicked.wait()
            # Python 3.11: a cancel() that lands as the timeout fires comes out of
            # asyncio.timeout() as TimeoutError (suppressed above); the task still
            # counts it, so honour it here, or the keeper never stops
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError


async def warm_all(db: Database, cache: PermissionCache, batch_size: int = 1000) -> int:
    """Load the missing entries of every active user (entries already cached cost no SQL)."""
    after, total = 0, 0
    while ids := await user_store.select_ids_after(db, after, batch_size):
        await load_access_by_user_id(ids, db=db, cache=cache)
        total += len(ids)
        after = ids[-1]
    logger.info("warmed the permission cache for %d users", total)
    return total


# written by `make run` (permdev/dev.py) while it runs
DEV_SERVERS_FILE = Path(__file__).resolve().parent.parent / ".data" / "dev-servers.json"


def _cli_settings() -> Settings:
    """The settings, with `make run`'s servers for the URLs the environment
    (and .env) leave unset."""
    from permbase.settings import get_settings

    settings = get_settings()
    unset = {"database_url", "redis_url"} - settings.model_fields_set
    if not unset or not DEV_SERVERS_FILE.exists():
        return settings
    servers = json.loads(DEV_SERVERS_FILE.read_text())
    logger.info(
        "using the servers of `make run` (%s) for %s",
        DEV_SERVERS_FILE,
        ", ".join(sorted(unset)),
    )
    return settings.model_copy(update={name: servers[name] for name in unset})


async def _main() -> None:
    from permcore.cache import PermissionCache
    from permcore.client import create_redis
    from permstore.db import create_database

    settings = _cli_settings()
    db = await create_database(settings)
    redis = create_redis(settings)
    cache = PermissionCache(redis, settings)
    cache.trusted = True
    try:
        await warm_all(db, cache, settings.loader_max_batch_size)
    finally:
        await redis.aclose()
        await db.close()


if __name__ == "__main__":
    from permbase.log_setup import configure_logging

    configure_logging()
    asyncio.run(_main())

__all__ = ["CacheKeeper", "warm_all"]
