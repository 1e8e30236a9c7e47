from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis

from api.state import State
from permbase.settings import Settings
from permcore.cache import PermissionCache
from permcore.keeper import CacheKeeper, warm_all
from permcore.read import load_access_by_user_id
from permcore.stream import ChangeStream
from permdev.seed import seed
from permstore import permissions as access_store
from tests.factories import (
    acquire,
    app_with,
    counting_sql,
    gql,
    insert_user,
    metric,
    stored,
    token_for,
)


async def test_warm_fills_every_active_user_in_batches(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=250)
        await con.execute("update users set is_active = false where id = 5")
    with counting_sql() as sql:
        assert (
            await warm_all(resources["db"], resources["cache"], batch_size=100) == 250
        )
    assert sql.permission_sql == 3  # 250 users in batches of 100
    keys = [f"permissions:user:{i}" for i in range(1, 252)]
    values = await redis_client.mget(keys)
    assert [i + 1 for i, v in enumerate(values) if v is None] == [
        5
    ]  # the inactive one is left alone
    with counting_sql() as sql:
        await warm_all(resources["db"], resources["cache"], batch_size=100)
    assert sql.permission_sql == 0  # already warm: no SQL for permissions


def keeper_for(resources: State, **kwargs: Any) -> CacheKeeper:
    return CacheKeeper(
        resources["db"],
        resources["cache"],
        interval=kwargs.pop("interval", 60.0),
        **kwargs,
    )


async def test_keeper_reloads_every_active_user_and_renews_each_ttl(
    resources: State,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=250)
        await con.execute("update users set is_active = false where id = 5")
    keeper = keeper_for(resources, batch_size=100)
    with counting_sql() as sql:
        assert await keeper.refresh_all() == 250
    assert sql.permission_sql == 3
    keys = [f"permissions:user:{i}" for i in range(1, 252)]
    assert [
        i + 1 for i, v in enumerate(await redis_client.mget(keys)) if v is None
    ] == [5]
    # unlike warm_all, a pass reloads entries that are present, so none expires between passes
    await redis_client.expire("permissions:user:7", 2)
    with counting_sql() as sql:
        assert await keeper.refresh_all() == 250
    assert sql.permission_sql == 3
    assert (
        await redis_client.ttl("permissions:user:7") >= settings.permissions_cache_ttl_s
    )
    # and the pass picked up what changed in PostgreSQL (a heal for a lost invalidation)
    async with acquire(pool) as con:
        await con.execute("delete from user_roles where user_id = 7")
    await keeper.refresh_all()
    cached = await load_access_by_user_id(
        [7], db=resources["db"], cache=resources["cache"]
    )
    assert cached[0] is not None and cached[0].roles == ()


async def test_keeper_pass_cannot_write_back_permissions_revoked_during_it(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "kept@example.com", roles=["editor"])
    cache = resources["cache"]

    async def revoke_meanwhile(
        ids: Any,
    ) -> None:  # after the pass read its rows, before it writes
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", uid)
        await cache.invalidate_users([uid])

    cache.before_fill = revoke_meanwhile
    refused = metric("permissions_cache_stale_writebacks_refused_total")
    await keeper_for(resources).refresh_all()
    cache.before_fill = None
    assert metric("permissions_cache_stale_writebacks_refused_total") == refused + 1
    assert await redis_client.get(f"permissions:user:{uid}") is None
    assert await redis_client.get("permissions:user:1") is not None  # the others landed
    got = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert got[0] is not None and got[0].permissions == frozenset()


async def test_keeper_bound_and_untrusted_cache(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=30)
    assert await keeper_for(resources, batch_size=8, max_users=20).refresh_all() == 20
    values = await redis_client.mget([f"permissions:user:{i}" for i in range(1, 32)])
    assert (
        sum(v is not None for v in values) == 20
        and values[0] is not None
        and values[-1] is None
    )
    await redis_client.flushdb()
    resources[
        "cache"
    ].trusted = False  # the change stream is behind: nothing may be written
    with counting_sql() as sql:
        assert await keeper_for(resources).refresh_all() == 0
    assert sql.permission_sql == 0
    assert await redis_client.dbsize() == 0


async def test_one_instance_refreshes_per_interval_unless_a_flush_forces_it(
    resources: State, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=20)
    first, second = (
        keeper_for(resources, interval=0.5),
        keeper_for(resources, interval=0.5),
    )
    with counting_sql() as sql:
        tasks = [asyncio.create_task(k.run()) for k in (first, second)]
        try:
            await until(lambda: sql.permission_sql >= 1)
            await asyncio.sleep(0.2)
            assert (
                sql.permission_sql == 1
            )  # both started; the lease let one of them pass
            await asyncio.sleep(0.5)
            assert sql.permission_sql == 2  # one more interval: again one pass in all
            second.kick()  # the lease is held, but a flush does not wait for it
            await until(lambda: sql.permission_sql >= 3)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


async def test_app_keeps_the_cache_warm_from_start_and_after_a_flush(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=40)
    async with app_with(settings, permissions_cache_keep_warm=True) as (client, state):
        keys = [f"permissions:user:{i}" for i in range(1, 42)]

        async def cached() -> int:
            for _ in range(100):
                values = await redis_client.mget(keys)
                if all(values):
                    return len(values)
                await asyncio.sleep(0.02)
            return sum(v is not None for v in values)

        assert await cached() == 41  # filled at start, before anybody read them
        token = token_for(1, settings)
        await gql(
            client, "mutation { invalidatePermissionCache { __typename } }", token=token
        )
        epoch = (await stored(redis_client, "permissions:user:epoch")).decode()
        assert (
            await cached() == 41
        )  # the flush kicked a pass: refilled under the new epoch
        assert all(
            isinstance(v, bytes) and orjson.loads(v)["e"] == epoch
            for v in await redis_client.mget(keys)
        )
        with counting_sql() as sql:
            body = await gql(client, '{ user(id: "17") { permissions } }', token=token)
        assert sql.permission_sql == 0
        expected = (await access_store.select_access_by_user_ids(state["db"], [17]))[17]
        assert body["data"]["user"]["permissions"] == sorted(expected.permissions) != []


async def test_what_the_change_stream_invalidates_is_refilled_without_a_read(
    settings: Settings, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    """With the keeper on, a change made with SQL costs its user no miss: the
    stream invalidates the entry and the keeper reloads it (the new permissions)
    before anyone asks."""
    async with acquire(pool) as con:
        uid = await insert_user(con, "refill@example.com", roles=["editor"])
    tuned = {
        "permissions_cache_keep_warm": True,
        "change_listen": True,
        "change_poll_interval_s": 0.2,
    }
    async with app_with(settings, **tuned):
        key = f"permissions:user:{uid}"

        async def entry() -> dict[str, Any] | None:
            raw = await redis_client.get(key)
            return None if raw is None else orjson.loads(raw)

        for _ in range(200):  # the keeper's first pass warms it
            if await entry() is not None:
                break
            await asyncio.sleep(0.025)
        value = await entry()
        assert value is not None and value["roles"] == ["editor"]
        refilled = metric("permissions_cache_refilled_total")
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", uid)
        for _ in range(200):
            value = await entry()
            if value is not None and value["roles"] == []:
                break
            await asyncio.sleep(0.025)
        assert value is not None and value["roles"] == [] and value["permissions"] == []
        assert metric("permissions_cache_refilled_total") > refilled


async def test_of_two_instances_applying_a_change_only_the_last_refills(
    resources: State,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
) -> None:
    """Every instance applies every change to the shared Redis; a refill is done
    only where the entry still bears the token this instance's invalidation set,
    so of two instances one reloads the entry, not both."""
    async with acquire(pool) as con:
        uid = await insert_user(con, "twice@example.com", roles=["editor"])
    instances = []
    for name in ("one", "two"):
        cache = PermissionCache(resources["redis"], settings)
        cache.trusted = True
        stream = ChangeStream(resources["db"], cache, name=f"test-refill-{name}")
        await stream.apply_pending()
        keeper = CacheKeeper(resources["db"], cache, interval=60.0)
        queued: list[dict[int, str]] = []
        stream.on_invalidated = queued.append
        instances.append((stream, keeper, queued))
    async with acquire(pool) as con:
        await con.execute("delete from user_roles where user_id = $1", uid)
    for stream, _, _ in instances:  # one, then two: two's token is the last
        assert await stream.apply_pending() >= 1
    (_, first, first_tokens), (_, second, second_tokens) = instances
    with counting_sql() as sql:
        assert await first.refill([uid], first_tokens[-1]) == 0
    assert sql.permission_sql == 0
    with counting_sql() as sql:
        assert await second.refill([uid], second_tokens[-1]) == 1
    assert sql.permission_sql == 1
    value = orjson.loads(await stored(redis_client, f"permissions:user:{uid}"))
    assert value["roles"] == []
