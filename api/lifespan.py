"""The process lifespan: opens what every request shares, starts the
background tasks, tunes the GC, and closes it all at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from functools import partial

import asyncpg
from fastapi import FastAPI

from api.state import State
from permauth.tokens import TokenService
from permbase.metrics import install_gc_timer
from permbase.settings import Settings
from permcore.cache import InvalidationFailed, PermissionCache
from permcore.client import create_redis
from permcore.keeper import CacheKeeper
from permcore.stream import ChangeStream
from permstore.db import create_database

logger = logging.getLogger(__name__)


def lifespan_for(
    settings: Settings,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[State]]:
    """What a process opens once (pool, Redis, cache, the change stream, the
    keeper) and hands to every request as State; closed at shutdown."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        db = await create_database(settings)
        redis = create_redis(settings)
        cache = PermissionCache(redis, settings)
        await cache.prepare()
        # every committed change, whoever wrote it, reaches Redis (migration 0013);
        # the cache is trusted once the stream's first pass has (what changed while
        # no instance ran)
        stream = ChangeStream(
            db,
            cache,
            name=settings.instance_name,
            poll_interval=settings.change_poll_interval_s,
            retention_s=settings.change_retention_s,
            wait_s=settings.change_wait_s,
        )
        try:  # catch up before serving
            await stream.apply_pending()
        except InvalidationFailed:
            stream.distrust()
        except Exception:
            logger.warning("change stream could not start; it retries", exc_info=True)
        listen = partial(_listener, settings) if settings.change_listen else None
        tasks = [asyncio.create_task(stream.run(listen))]
        if settings.permissions_cache_keep_warm and settings.permissions_cache_enabled:
            keeper = CacheKeeper(
                db,
                cache,
                interval=settings.refresh_interval_s,
                batch_size=settings.loader_max_batch_size,
                max_users=settings.permissions_cache_keep_warm_max_users,
            )
            stream.on_flush = keeper.kick
            stream.on_invalidated = keeper.refill_soon
            tasks.append(asyncio.create_task(keeper.run()))
            tasks.append(asyncio.create_task(keeper.run_refills()))
        # Objects made at start live forever: keep them out of every GC pass, and
        # collect the young generation less often (a request allocates thousands
        # of short-lived objects; the default threshold of 700 runs the collector
        # many times per request). Measured in bench/README.md.
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.gc_gen0_threshold, 20, 50)
        install_gc_timer()
        state = State(
            settings=settings,
            db=db,
            redis=redis,
            cache=cache,
            stream=stream,
            tokens=TokenService(settings),
        )
        app.state.resources = (
            state  # for operators' tooling and tests; requests use request.state
        )
        try:
            yield state
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()
            await db.close()

    return lifespan


async def _listener(settings: Settings) -> asyncpg.Connection | None:
    """A connection of its own for LISTEN (a pooled one would be reset). None
    when it cannot be opened: polling alone keeps the stream correct."""
    try:
        return await asyncpg.connect(
            settings.database_url,
            timeout=settings.db_connect_timeout_s,
            server_settings={"application_name": "permgraph-listen"},
        )
    except Exception:
        logger.warning("LISTEN connection failed; polling only", exc_info=True)
        return None


__all__ = ["lifespan_for"]
