from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from api.seed import seed
from api.state import State
from loaders.warm import warm_all
from tests.factories import counting_sql


async def test_warm_fills_every_active_user_in_batches(resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis) -> None:
    async with pool.acquire() as con:
        await seed(con, users=250)
        await con.execute("update users set is_active = false where id = 5")
    with counting_sql() as sql:
        assert await warm_all(resources["db"], resources["cache"], batch_size=100) == 250
    assert sql.permission_sql == 3  # 250 users in batches of 100
    keys = [f"permissions:user:{i}" for i in range(1, 252)]
    values = await redis_client.mget(keys)
    assert [i + 1 for i, v in enumerate(values) if v is None] == [5]  # the inactive one is left alone
    with counting_sql() as sql:
        await warm_all(resources["db"], resources["cache"], batch_size=100)
    assert sql.permission_sql == 0  # already warm: no SQL for permissions
