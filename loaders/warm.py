"""Fill the permission cache for every active user: `python -m loaders.warm`.

After a deploy or a whole-cache flush, the first read of each user is a miss
(a compulsory miss: no cache avoids it). This walks the users in batches through
the permission batch function itself, so each batch is one MGET, one query for
the misses and one token-checked write-back: it is as race-free as any reader,
and entries already cached cost no SQL.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from api.store import users as user_store
from loaders.permissions import load_access_by_user_id

if TYPE_CHECKING:
    from api.cache import PermissionCache
    from api.db import Database

logger = logging.getLogger(__name__)


async def warm_all(db: Database, cache: PermissionCache, batch_size: int = 1000) -> int:
    after, total = 0, 0
    while ids := await user_store.select_ids_after(db, after, batch_size):
        await load_access_by_user_id(ids, db=db, cache=cache)
        total += len(ids)
        after = ids[-1]
    logger.info("warmed the permission cache for %d users", total)
    return total


async def _main() -> None:
    from api.cache import PermissionCache, create_redis
    from api.db import create_database
    from api.settings import get_settings

    settings = get_settings()
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
    from api.log_setup import configure_logging

    configure_logging()
    asyncio.run(_main())

__all__ = ["warm_all"]
