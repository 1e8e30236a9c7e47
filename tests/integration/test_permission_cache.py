"""The permission loader and its Redis cache, against real servers.

Round trips are counted by the connection wrapper (permcore.client.CountingConnection,
one per packet sent), commands by Redis itself (INFO commandstats), SQL
statements by asyncpg's query logger (permstore.db.query_listeners).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from api.state import State
from permbase.settings import Settings
from permcore.client import CountingConnection
from permcore.codec import encode_access
from permcore.read import load_access_by_user_id
from permdev.embedded import free_port
from permdev.seed import seed
from permstore.models import UserAccess
from tests.factories import (
    acquire,
    app_with,
    codes,
    counting_sql,
    gql,
    insert_user,
    metric,
    stored,
    token_for,
)


async def commandstats(client: aioredis.Redis) -> dict[str, int]:
    info = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}


async def redis_calls(client: aioredis.Redis, before: dict[str, int]) -> dict[str, int]:
    after = await commandstats(client)
    return {
        k: after[k] - before.get(k, 0)
        for k in after
        if after[k] != before.get(k, 0) and k != "info"
    }


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
async def test_one_mget_one_sql_one_write_back_per_batch(
    n: int, resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=n)
    ids = list(range(2, n + 2))  # synthetic users follow the admin (id 1)
    db, cache = resources["db"], resources["cache"]

    before, trips = await commandstats(redis_client), CountingConnection.round_trips
    with counting_sql() as sql:
        cold = await load_access_by_user_id(ids, db=db, cache=cache)
    cold_trips = CountingConnection.round_trips - trips
    calls = await redis_calls(redis_client, before)
    assert all(a is not None and a.user_id == u for a, u in zip(cold, ids, strict=True))
    assert sql.permission_sql == 1 and len(sql.statements) == 1
    assert calls.get("mget") == 1
    assert (
        calls.get("evalsha", 0) + calls.get("eval", 0) == 1
    )  # the whole write-back, one script call
    assert cold_trips == 2  # MGET + write-back

    before, trips = await commandstats(redis_client), CountingConnection.round_trips
    with counting_sql() as sql:
        warm = await load_access_by_user_id(ids, db=db, cache=cache)
    assert warm == cold
    assert sql.statements == []  # warm cache: zero SQL
    assert await redis_calls(redis_client, before) == {"mget": 1}
    assert CountingConnection.round_trips - trips == 1


@pytest.mark.parametrize("n", [1, 10, 100, 1000])
async def test_http_page_costs_one_redis_round_trip_and_at_most_one_permission_query(
    n: int,
    client: httpx.AsyncClient,
    admin_token: str,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=n)
    # after the admin (id 1): a page of synthetic users; the caller's own entry
    # travels in the same MGET as the page's (schema/engine/viewer.py)
    query = (
        '{ users(first: %d, after: "dXNlcjox") { edges { node { id permissions hasPermission(code: "res_01:read") roles { name } } } } }'
        % n
    )
    for temperature in ("cold", "warm"):
        before, trips = await commandstats(redis_client), CountingConnection.round_trips
        with counting_sql() as sql:
            body = await gql(client, query, token=admin_token)
        assert len(body["data"]["users"]["edges"]) == n
        calls = await redis_calls(redis_client, before)
        assert calls["mget"] == 1, temperature
        assert sql.permission_sql == (1 if temperature == "cold" else 0)
        # cold: the MGET and the write-back; warm: the MGET alone
        assert CountingConnection.round_trips - trips == (
            2 if temperature == "cold" else 1
        )


async def test_user_list_authorizes_before_returning_rows(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with acquire(pool) as con:
        await con.execute("insert into roles (name) values ('nobody')")
        uid = await insert_user(con, "nope@example.com", roles=["nobody"])
    with counting_sql() as sql:
        anonymous = await gql(
            client, "{ users { edges { node { email } } } }", expect_errors=True
        )
    assert codes(anonymous) == ["UNAUTHENTICATED"] and anonymous["data"] is None
    assert sql.statements == []  # refused before any I/O
    for query in [
        "{ users { edges { node { email } } } }",
        '{ user(id: "1") { email } }',
    ]:
        denied = await gql(
            client, query, token=token_for(uid, settings), expect_errors=True
        )
        assert codes(denied) == ["FORBIDDEN"]
        assert "admin@" not in str(denied)
    missing = await gql(
        client,
        '{ user(id: "424242") { email } }',
        token=token_for(uid, settings),
        expect_errors=True,
    )
    assert codes(missing) == [
        "FORBIDDEN"
    ]  # not NOT_FOUND: existence is not told either


async def test_value_format_and_ttl(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "fmt@example.com", roles=["viewer", "editor"])
        lonely = await insert_user(con, "lonely@example.com")
    await load_access_by_user_id(
        [uid, lonely, 1], db=resources["db"], cache=resources["cache"]
    )
    value = json.loads(await stored(redis_client, f"permissions:user:{uid}"))
    assert value["roles"] == ["editor", "viewer"]
    assert value["permissions"] == [
        "permissions:read",
        "roles:read",
        "users:read",
        "users:write",
    ]
    assert value["active"] is True
    empty = json.loads(await stored(redis_client, f"permissions:user:{lonely}"))
    assert empty["roles"] == [] and empty["permissions"] == []
    settings = resources["settings"]
    for key in [f"permissions:user:{u}" for u in (uid, lonely, 1)]:
        ttl = await redis_client.ttl(key)
        assert (
            settings.permissions_cache_ttl_s
            <= ttl
            <= settings.permissions_cache_ttl_s
            + settings.permissions_cache_ttl_jitter_s
        )


async def test_user_without_roles_is_cached_too(
    resources: State, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        lonely = await insert_user(con, "lonely@example.com")
    first = await load_access_by_user_id(
        [lonely], db=resources["db"], cache=resources["cache"]
    )
    with counting_sql() as sql:
        second = await load_access_by_user_id(
            [lonely], db=resources["db"], cache=resources["cache"]
        )
    assert (
        first == second
        and second[0] is not None
        and second[0].permissions == frozenset()
    )
    assert sql.statements == []


async def test_unknown_ids_resolve_to_null_without_failing_the_batch(
    resources: State, client: httpx.AsyncClient, admin_token: str
) -> None:
    got = await load_access_by_user_id(
        [1, 999_999, 1], db=resources["db"], cache=resources["cache"]
    )
    assert got[0] is not None and got[1] is None and got[2] == got[0]
    with counting_sql() as sql:  # the unknown id is cached as unknown
        again = await load_access_by_user_id(
            [999_999], db=resources["db"], cache=resources["cache"]
        )
    assert again == [None] and sql.statements == []
    # creating the user later must not leave it "unknown" in the cache
    body = await gql(
        client,
        'mutation { createUser(input: {email: "late@example.com"}) { ... on UserPayload { user { id } } } }',
        token=admin_token,
    )
    new_id = int(body["data"]["createUser"]["user"]["id"])
    fresh = await load_access_by_user_id(
        [new_id], db=resources["db"], cache=resources["cache"]
    )
    assert fresh[0] is not None and fresh[0].user_id == new_id


async def test_slow_reader_cannot_write_back_permissions_read_before_a_role_change(
    client: httpx.AsyncClient,
    admin_token: str,
    resources: State,
    pool: asyncpg.Pool,
    settings: Settings,
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "racer@example.com", roles=["editor"])
        editor = await con.fetchval("select id from roles where name = 'editor'")
    await gql(
        client, "{ me { id } }", token=admin_token
    )  # keep the admin's entry out of the race
    cache = resources["cache"]
    read_done, release = asyncio.Event(), asyncio.Event()

    async def pause(
        misses: Any,
    ) -> None:  # between the reader's SQL read and its write-back
        if uid in misses:
            read_done.set()
            await release.wait()

    cache.before_fill = pause
    query = '{ user(id: "%d") { permissions } }' % uid
    reader = asyncio.create_task(gql(client, query, token=admin_token))
    await asyncio.wait_for(read_done.wait(), 5)
    # while the reader holds rows read before it, the role change commits and invalidates
    body = await gql(
        client,
        "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed } } }",
        {"u": str(uid), "r": str(editor)},
        token=admin_token,
    )
    assert body["data"]["removeRole"] == {
        "__typename": "RoleAssignment",
        "changed": True,
    }
    refused = metric("permissions_cache_stale_writebacks_refused_total")
    release.set()
    old = await reader
    cache.before_fill = None
    assert (
        "users:write" in old["data"]["user"]["permissions"]
    )  # it began before the commit
    assert metric("permissions_cache_stale_writebacks_refused_total") == refused + 1
    assert await resources["redis"].get(f"permissions:user:{uid}") is None
    after = await gql(client, query, token=admin_token)
    assert after["data"]["user"]["permissions"] == []


async def test_flush_all_makes_in_flight_fills_stale_too(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "f@example.com", roles=["viewer"])
    cache = resources["cache"]

    async def flush_meanwhile(misses: Any) -> None:
        await cache.invalidate_all()

    cache.before_fill = flush_meanwhile
    await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    cache.before_fill = None
    assert await redis_client.get(f"permissions:user:{uid}") is None
    # entries filled before a flush are misses afterwards, even before the sweep reaches them
    await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert await redis_client.get(f"permissions:user:{uid}") is not None
    await redis_client.set(f"{settings_prefix()}epoch", "something-else")
    with counting_sql() as sql:
        await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert sql.permission_sql == 1


async def test_flush_all_sweeps_every_value_and_keeps_tokens_and_epoch(
    resources: State, redis_client: aioredis.Redis
) -> None:
    """The sweep after a flush reclaims every value, over several SCAN pages,
    one bounded step at a time; fill tokens stay (they order invalidations) and
    the epoch is the new one."""
    prefix, n = settings_prefix(), 2500
    async with redis_client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.set(f"{prefix}{900000 + i}", b"{}")
            pipe.set(f"{prefix}{900000 + i}:gen", b"t")
        await pipe.execute()
    before = await redis_client.get(f"{prefix}epoch")
    await resources["cache"].invalidate_all()
    left = [k async for k in redis_client.scan_iter(match=f"{prefix}9?????*")]
    assert left and all(k.endswith(b":gen") for k in left)
    assert len(left) == n
    after = await redis_client.get(f"{prefix}epoch")
    assert after is not None and after != before


def settings_prefix() -> str:
    return "permissions:user:"


async def test_corrupted_value_is_a_miss_and_is_overwritten(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "c@example.com", roles=["viewer"])
    key = f"permissions:user:{uid}"
    for garbage in [
        b"not json",
        b"[]",
        b'{"roles": "admin", "permissions": ["roles:write"], "active": true, "e": ""}',
        orjson.dumps(
            {
                "roles": ["admin"],
                "role_ids": [1, 2],
                "permissions": ["roles:write"],
                "active": True,
                "e": "",
            }
        ),
    ]:
        await redis_client.set(key, garbage)
        corrupt = metric("permissions_cache_corrupt_entries_total")
        got = await load_access_by_user_id(
            [uid], db=resources["db"], cache=resources["cache"]
        )
        assert got[0] is not None and "roles:write" not in got[0].permissions
        assert got[0].permissions == frozenset(
            {"users:read", "roles:read", "permissions:read"}
        )
        assert metric("permissions_cache_corrupt_entries_total") == corrupt + 1
        assert json.loads(await stored(redis_client, key))["roles"] == ["viewer"]


async def test_redis_down_answers_from_postgres_and_the_breaker_skips_it(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "d@example.com", roles=["viewer"])
    token = token_for(1, settings)
    query = (
        '{ user(id: "%d") { permissions hasPermission(code: "users:write") } }' % uid
    )
    async with app_with(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0") as (
        client,
        state,
    ):
        errors = metric("redis_errors_total", {"op": "mget"})
        for i in range(6):
            started = time.perf_counter()
            body = await gql(client, query, token=token)
            elapsed = time.perf_counter() - started
            assert body["data"]["user"] == {
                "permissions": ["permissions:read", "roles:read", "users:read"],
                "hasPermission": False,
            }
            assert elapsed < 1.0, f"request {i} took {elapsed:.3f}s"
        # after `threshold` failures Redis is skipped, not hammered
        assert state["cache"].guarded.breaker.is_open
        assert (
            metric("redis_errors_total", {"op": "mget"}) - errors
            <= settings.breaker_failure_threshold + 1
        )
        assert metric("redis_circuit_breaker_open") == 1


async def test_hung_redis_costs_a_bounded_delay_and_the_breaker_recovers(
    client: httpx.AsyncClient,
    admin_token: str,
    resources: State,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "h@example.com", roles=["editor"])
    query = '{ user(id: "%d") { permissions } }' % uid
    expected = ["permissions:read", "roles:read", "users:read", "users:write"]
    cache = resources["cache"]
    await redis_client.client_pause(1500, all=True)
    try:
        for _ in range(settings.breaker_failure_threshold + 1):
            started = time.perf_counter()
            body = await gql(client, query, token=admin_token)
            assert body["data"]["user"]["permissions"] == expected
            assert (
                time.perf_counter() - started < 0.8
            )  # a few socket timeouts, not a hang
        assert cache.guarded.breaker.is_open
    finally:
        await redis_client.client_unpause()
    await asyncio.sleep(settings.breaker_cooldown_s + 0.1)
    body = await gql(client, query, token=admin_token)  # the half-open probe succeeds
    assert body["data"]["user"]["permissions"] == expected
    assert not cache.guarded.breaker.is_open
    assert metric("redis_circuit_breaker_open") == 0


async def test_postgres_down_on_a_miss_is_a_coded_error_not_an_empty_list(
    settings: Settings, client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "pg@example.com", roles=["viewer"])
    await gql(
        client, "{ me { id } }", token=admin_token
    )  # the admin's entry is in Redis
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    async with app_with(
        settings, database_url=dead, db_pool_min_size=0, db_connect_timeout_s=0.5
    ) as (dead_client, _):
        response = await dead_client.post(
            "/graphql",
            json={"query": '{ user(id: "%d") { permissions } }' % uid},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        body = response.json()
        assert codes(body) == ["SERVICE_UNAVAILABLE"]
        assert body["data"] is None or body["data"]["user"] is None


async def test_a_cold_stampede_fills_each_user_once(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "hot@example.com", roles=["viewer"])
    await gql(client, "{ me { id } }", token=admin_token)
    query = '{ user(id: "%d") { permissions } }' % uid
    with counting_sql() as sql:
        bodies = await asyncio.gather(
            *[gql(client, query, token=admin_token) for _ in range(20)]
        )
    assert all(
        b["data"]["user"]["permissions"]
        == ["permissions:read", "roles:read", "users:read"]
        for b in bodies
    )
    # one load shared by the others; at most one more, by a request whose MGET
    # was answered just before the fill landed and that looked after it finished
    assert sql.permission_sql <= 2


async def test_single_flight_never_shares_a_load_that_began_before_an_invalidation(
    client: httpx.AsyncClient, admin_token: str, resources: State, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "sf@example.com", roles=["editor"])
        editor = await con.fetchval("select id from roles where name = 'editor'")
    await gql(client, "{ me { id } }", token=admin_token)
    cache = resources["cache"]
    read_done, release = asyncio.Event(), asyncio.Event()

    async def pause(misses: Any) -> None:
        if uid in misses and not read_done.is_set():  # the first reader only
            read_done.set()
            await release.wait()

    cache.before_fill = pause
    query = '{ user(id: "%d") { permissions } }' % uid
    slow = asyncio.create_task(gql(client, query, token=admin_token))
    await asyncio.wait_for(read_done.wait(), 5)
    await gql(
        client,
        "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename } }",
        {"u": str(uid), "r": str(editor)},
        token=admin_token,
    )
    # begun after the mutation returned: must not join the slow reader's load
    after = await asyncio.wait_for(gql(client, query, token=admin_token), 5)
    assert after["data"]["user"]["permissions"] == []
    release.set()
    await slow
    cache.before_fill = None


async def test_no_fill_under_an_empty_epoch_after_redis_lost_its_data(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "lost@example.com", roles=["editor"])
    cache = resources["cache"]
    await (
        redis_client.flushdb()
    )  # Redis restarted without persistence: no epoch, no tokens

    async def lose_data_again_and_revoke(misses: Any) -> None:
        # the reader holds rows from before the revocation; Redis loses its data
        # once more, then the revocation commits and is invalidated
        await redis_client.flushdb()
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", uid)
        await cache.invalidate_users([uid])

    cache.before_fill = lose_data_again_and_revoke
    old = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    cache.before_fill = None
    assert (
        old[0] is not None and "users:write" in old[0].permissions
    )  # it began before the revocation
    assert (
        await redis_client.get(f"permissions:user:{uid}") is None
    )  # but it stored nothing
    assert await redis_client.get(
        "permissions:user:epoch"
    )  # and gave the cache a fresh epoch
    with counting_sql() as sql:
        now = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert (
        now[0] is not None
        and now[0].permissions == frozenset()
        and sql.permission_sql == 1
    )
    cached = await redis_client.get(f"permissions:user:{uid}")
    assert cached is not None and json.loads(cached)["permissions"] == []


async def test_what_a_user_may_do_is_answered_from_the_entry_alone(
    client: httpx.AsyncClient,
    admin_token: str,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    settings: Settings,
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "entry@example.com", roles=["editor"])
        off = await insert_user(con, "off@example.com", roles=["editor"], active=False)
        plain = await insert_user(con, "plain@example.com")
        editor = await con.fetchval("select id from roles where name = 'editor'")
    query = '{ user(id: "%d") { __typename id isActive permissions hasPermission(code: "users:write") roles { id name } } }'
    expected = {
        "__typename": "User",
        "id": str(uid),
        "isActive": True,
        "hasPermission": True,
        "permissions": ["permissions:read", "roles:read", "users:read", "users:write"],
        "roles": [{"id": str(editor), "name": "editor"}],
    }
    for temperature in ("cold", "warm"):
        before, trips = await commandstats(redis_client), CountingConnection.round_trips
        with counting_sql() as sql:
            body = await gql(client, query % uid, token=admin_token)
        assert body["data"]["user"] == expected
        # no row read: the permission query on a miss, nothing at all when warm
        assert (
            len(sql.statements)
            == sql.permission_sql
            == (1 if temperature == "cold" else 0)
        )
        assert (await redis_calls(redis_client, before))["mget"] == 1
        assert CountingConnection.round_trips - trips == (
            2 if temperature == "cold" else 1
        )
    body = await gql(client, query % off, token=admin_token)
    assert (
        body["data"]["user"]["isActive"] is False
        and body["data"]["user"]["permissions"] == []
    )
    missing = await gql(client, query % 999_999, token=admin_token, expect_errors=True)
    assert codes(missing) == ["NOT_FOUND"] and missing["data"] == {"user": None}
    # users:read is checked before "not found" is told
    denied = await gql(
        client, query % 999_999, token=token_for(plain, settings), expect_errors=True
    )
    assert codes(denied) == ["FORBIDDEN"]


@pytest.mark.parametrize(
    "selection",
    [
        "email permissions",
        "permissions ... on User { email }",
        "permissions ...Who",
        "permissions createdAt",
    ],
)
async def test_a_selection_that_needs_the_row_reads_it(
    selection: str, client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "row@example.com", roles=["viewer"])
    query = '{ user(id: "%d") { %s } }' % (uid, selection)
    if "...Who" in selection:
        query += " fragment Who on User { email }"
    await gql(client, query, token=admin_token)  # entries warm
    with counting_sql() as sql:
        body = await gql(client, query, token=admin_token)
    assert len(sql.statements) == 1 and sql.permission_sql == 0  # the row
    user = body["data"]["user"]
    assert user["permissions"] == ["permissions:read", "roles:read", "users:read"]
    assert (
        user.get("email", "row@example.com") == "row@example.com"
        and user.get("createdAt", "x") != ""
    )


async def test_a_value_replaced_in_redis_is_read_anew(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    """Decoded values are remembered by their exact bytes; any other bytes under
    the key (another instance's fill, garbage) are decoded again."""
    async with acquire(pool) as con:
        uid = await insert_user(con, "memo@example.com", roles=["viewer"])
    cache = resources["cache"]
    for _ in range(2):
        got = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
        assert got[0] is not None and got[0].roles == ("viewer",)
    epoch = (await stored(redis_client, "permissions:user:epoch")).decode()
    other = UserAccess(uid, True, (2,), ("editor",), ("users:read", "users:write"))
    await redis_client.set(f"permissions:user:{uid}", encode_access(uid, other, epoch))
    with counting_sql() as sql:
        got = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert got[0] is not None and got[0].roles == ("editor",) and sql.statements == []
    corrupt = metric("permissions_cache_corrupt_entries_total")
    await redis_client.set(f"permissions:user:{uid}", b'{"roles": "admin"}')
    with counting_sql() as sql:
        got = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert (
        got[0] is not None and got[0].roles == ("viewer",) and sql.permission_sql == 1
    )
    assert metric("permissions_cache_corrupt_entries_total") == corrupt + 1
    # another user's value under this user's key (a crossed reply, a copied key):
    # corrupt, read from PostgreSQL, never taken as this user's
    admin_value = encode_access(1, UserAccess(1, True, (1,), ("admin",), ("*",)), epoch)
    await redis_client.set(f"permissions:user:{uid}", admin_value)
    with counting_sql() as sql:
        got = await load_access_by_user_id([uid], db=resources["db"], cache=cache)
    assert got[0] is not None and got[0].roles == ("viewer",)
    assert sql.permission_sql == 1
    assert metric("permissions_cache_corrupt_entries_total") == corrupt + 2


async def test_concurrent_requests_share_their_mget_and_each_gets_its_own_answer(
    client: httpx.AsyncClient,
    admin_token: str,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    resources: State,
) -> None:
    """Requests whose reads meet in one turn of the event loop read Redis with
    one MGET (permcore/client.py); each answer is its own, and a change made
    before they start is seen by every one of them."""
    async with acquire(pool) as con:
        await seed(con, users=20)
    ids = list(range(2, 22))
    queries = [f'{{ user(id: "{u}") {{ id permissions }} }}' for u in ids]
    alone = [await gql(client, q, token=admin_token) for q in queries]  # warm
    before = await commandstats(redis_client)
    together = await asyncio.gather(
        *(gql(client, q, token=admin_token) for q in queries)
    )
    assert together == alone
    assert 1 <= (await redis_calls(redis_client, before))["mget"] < len(queries)

    async with acquire(pool) as con, con.transaction():
        await con.execute("delete from user_roles where user_id = $1", ids[0])
        xid = int(await con.fetchval("select pg_current_xact_id()::text"))
    assert await resources["stream"].settle(xid)  # as a mutation waits for it
    after = await asyncio.gather(*(gql(client, q, token=admin_token) for q in queries))
    assert after[0]["data"]["user"]["permissions"] == []
    assert after[1:] == alone[1:]
