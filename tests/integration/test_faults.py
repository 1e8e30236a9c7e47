"""Faults between the app and its servers, through a real TCP fault proxy
(tests/faultproxy.py), plus Redis CLIENT PAUSE and PostgreSQL terminating
backends. Every answer must be correct or a coded error, and nothing may ever
grant a permission the database does not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager

from api.main import create_app
from api.state import State
from permbase.settings import Settings
from tests.factories import acquire, codes, gql, insert_user, metric, token_for
from tests.faultproxy import FaultProxy, Mode


@dataclass
class Faulty:
    client: httpx.AsyncClient
    state: State
    redis: FaultProxy
    postgres: FaultProxy
    token: str


def _via(url: str, proxy: FaultProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(
        netloc=parts.netloc.replace(
            f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}"
        )
    ).geturl()


@asynccontextmanager
async def faulty_app(settings: Settings, **changes: Any) -> AsyncIterator[Faulty]:
    r, p = urlsplit(settings.redis_url), urlsplit(settings.database_url)
    redis_proxy = await FaultProxy(r.hostname or "127.0.0.1", r.port or 6379).start()
    pg_proxy = await FaultProxy(p.hostname or "127.0.0.1", p.port or 5432).start()
    app_settings = settings.model_copy(
        update={
            "redis_url": _via(settings.redis_url, redis_proxy),
            "database_url": _via(settings.database_url, pg_proxy),
            "db_acquire_timeout_s": 0.5,
            "db_connect_timeout_s": 1.0,
            **changes,
        }
    )
    application = create_app(app_settings)
    try:
        async with LifespanManager(application) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://testserver"
            ) as client:
                yield Faulty(
                    client,
                    application.state.resources,
                    redis_proxy,
                    pg_proxy,
                    token_for(1, settings),
                )
    finally:
        await redis_proxy.stop()
        await pg_proxy.stop()


@pytest.fixture
async def editor(pool: asyncpg.Pool) -> int:
    async with acquire(pool) as con:
        return await insert_user(con, "f@example.com", roles=["editor"])


EDITOR = ["permissions:read", "roles:read", "users:read", "users:write"]
VIEWER = ["permissions:read", "roles:read", "users:read"]


def perms_query(uid: int) -> str:
    return '{ user(id: "%d") { permissions hasPermission(code: "users:write") } }' % uid


async def answer(
    client: httpx.AsyncClient, query: str, token: str
) -> tuple[Any, list[str]]:
    response = await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    return body.get("data"), codes(body)


@pytest.mark.parametrize("mode", ["refuse", "reset", "blackhole"])
async def test_redis_faults_answer_from_postgres(
    settings: Settings, editor: int, mode: Mode
) -> None:
    async with faulty_app(settings) as f:
        await gql(f.client, perms_query(editor), token=f.token)  # warm
        await f.redis.set(mode)
        for _ in range(5):
            started = time.perf_counter()
            data, errs = await answer(f.client, perms_query(editor), f.token)
            assert errs == [] and data["user"]["permissions"] == EDITOR
            assert time.perf_counter() - started < 1.0
        assert f.state["cache"].guarded.breaker.is_open
        await f.redis.set("pass")
        await asyncio.sleep(settings.breaker_cooldown_s + 0.05)
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == EDITOR
        assert not f.state["cache"].guarded.breaker.is_open


async def test_slow_redis_beyond_the_timeout_is_a_miss_and_within_it_a_hit(
    settings: Settings, editor: int, redis_client: aioredis.Redis
) -> None:
    async with faulty_app(settings) as f:
        await gql(f.client, perms_query(editor), token=f.token)
        await f.redis.set("delay", 0.01)  # well within the 50 ms test timeout
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == EDITOR
        assert not f.state["cache"].guarded.breaker.is_open
        await f.redis.set("delay", 0.3)  # beyond it: misses, answered from PostgreSQL
        started = time.perf_counter()
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == EDITOR
        assert time.perf_counter() - started < 1.0


async def test_a_redis_call_cut_short_never_hands_its_reply_to_a_later_call(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Every Redis call is bounded as a whole (the client has no socket timeout
    of its own: permcore/client.py). A call cut short has sent its command;
    its reply arrives later. Were its connection reused, the next call on it
    would read that reply as its own: another user's entry."""
    async with acquire(pool) as con:
        editor = await insert_user(con, "cut-e@example.com", roles=["editor"])
        viewer = await insert_user(con, "cut-v@example.com", roles=["viewer"])
    # the breaker stays closed, so the calls after the faults go to Redis again
    async with faulty_app(settings, breaker_failure_threshold=1000) as f:
        for uid in (editor, viewer):
            await gql(f.client, perms_query(uid), token=f.token)  # cached
        cut = metric("redis_errors_total", {"op": "mget"})
        await f.redis.set("delay", 0.3)  # beyond each call's bound
        for _ in range(4):
            data, errs = await answer(f.client, perms_query(editor), f.token)
            assert errs == [] and data["user"]["permissions"] == EDITOR
        assert metric("redis_errors_total", {"op": "mget"}) >= cut + 4  # were cut
        await f.redis.set("pass")
        await asyncio.sleep(0.7)  # the late replies have arrived
        for _ in range(10):
            data, errs = await answer(f.client, perms_query(viewer), f.token)
            assert errs == [] and data["user"] == {
                "permissions": VIEWER,
                "hasPermission": False,
            }


async def test_postgres_down_is_a_coded_error_on_a_miss_while_cached_entries_still_answer(
    settings: Settings, editor: int, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        cold = await insert_user(con, "cold@example.com", roles=["viewer"])
    async with faulty_app(settings) as f:
        warm = await gql(
            f.client, perms_query(editor), token=f.token
        )  # editor's entry (and the admin's) cached
        await f.postgres.set("refuse")
        # the cached entry answers "what may this user do?" without PostgreSQL
        # (no mutation can commit meanwhile, so it cannot be stale)
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data == warm["data"]
        # the caller's own permissions too: its entry holds them
        data, errs = await answer(f.client, "{ me { id permissions } }", f.token)
        assert errs == [] and data["me"]["permissions"]
        # a miss, or anything that needs a row, is a coded error: never an empty list
        for query in (
            perms_query(cold),
            '{ user(id: "%d") { email permissions } }' % editor,
            "{ me { email permissions } }",
        ):
            data, errs = await answer(f.client, query, f.token)
            assert errs == ["SERVICE_UNAVAILABLE"], (query, data, errs)
        await f.postgres.set("pass")
        data, errs = await answer(f.client, perms_query(cold), f.token)
        assert errs == [] and data["user"]["permissions"] == VIEWER


async def test_a_remembered_answer_whose_entry_is_gone_while_postgres_is_down(
    settings: Settings, editor: int, redis_client: aioredis.Redis
) -> None:
    """The lane remembered the answer; the entry then left Redis (expired,
    invalidated) while PostgreSQL is down: the replay's read misses and cannot
    load it, and the request is answered as executing answers it (a coded
    SERVICE_UNAVAILABLE), never a bare HTTP 500."""
    async with faulty_app(settings) as f:
        for _ in range(4):  # full path twice, the lane executes, the lane replays
            warm = await gql(f.client, perms_query(editor), token=f.token)
        await redis_client.delete(f"{settings.permissions_cache_prefix}{editor}")
        await f.postgres.set("refuse")
        response = await f.client.post(
            "/graphql",
            json={"query": perms_query(editor)},
            headers={"Authorization": f"Bearer {f.token}"},
        )
        assert response.status_code == 200, response.text
        assert codes(response.json()) == ["SERVICE_UNAVAILABLE"]
        await f.postgres.set("pass")
        assert await gql(f.client, perms_query(editor), token=f.token) == warm


async def test_pool_exhaustion_is_a_quick_coded_error_and_the_pool_recovers(
    settings: Settings, editor: int
) -> None:
    async with faulty_app(
        settings, db_pool_min_size=1, db_pool_max_size=1, db_acquire_timeout_s=0.2
    ) as f:
        await gql(f.client, perms_query(editor), token=f.token)
        db = f.state["db"]
        async with db.pool.acquire():  # the only connection is busy
            started = time.perf_counter()
            data, errs = await answer(
                f.client, '{ user(id: "%d") { email } }' % editor, f.token
            )
            assert errs == [
                "SERVICE_BUSY"
            ]  # the database answers: busy, not down (test_limits.py)
            assert time.perf_counter() - started < 1.0
        data, errs = await answer(
            f.client, '{ user(id: "%d") { email } }' % editor, f.token
        )
        assert errs == [] and data["user"]["email"] == "f@example.com"


async def test_terminated_backends_give_coded_errors_then_recover(
    settings: Settings, editor: int, pool: asyncpg.Pool
) -> None:
    async with faulty_app(settings) as f:
        await gql(f.client, perms_query(editor), token=f.token)
        async with acquire(pool) as con:
            killed = await con.fetchval(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = 'permgraph' and pid <> pg_backend_pid()"
            )
        assert killed >= 1
        outcomes = []
        for _ in range(4):
            data, errs = await answer(
                f.client, '{ user(id: "%d") { email permissions } }' % editor, f.token
            )
            assert errs in ([], ["SERVICE_UNAVAILABLE"])
            if not errs:
                assert data["user"] == {"email": "f@example.com", "permissions": EDITOR}
            outcomes.append(errs)
        assert outcomes[-1] == []


async def test_a_change_redis_missed_is_applied_before_the_cache_is_trusted_again(
    settings: Settings, editor: int, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        editor_role = await con.fetchval("select id from roles where name = 'editor'")
    async with faulty_app(settings) as f:
        await gql(f.client, perms_query(editor), token=f.token)
        assert await redis_client.get(f"permissions:user:{editor}") is not None
        await f.redis.set("blackhole")
        body = await gql(
            f.client,
            "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed } } }",
            {"u": str(editor), "r": str(editor_role)},
            token=f.token,
        )
        assert body["data"]["removeRole"]["changed"] is True
        # this instance no longer trusts Redis: it answers from PostgreSQL
        assert f.state["cache"].trusted is False
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == []  # never the stale entry
        await f.redis.set("pass")
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == []
        # the stream's next pass applies the change from the log, then trusts Redis again
        deadline = time.monotonic() + 5
        while not f.state["cache"].trusted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert f.state["cache"].trusted
        value = await redis_client.get(f"permissions:user:{editor}")
        assert value is None or b'"permissions":[]' in value
        data, errs = await answer(f.client, perms_query(editor), f.token)
        assert errs == [] and data["user"]["permissions"] == []


async def test_a_transaction_that_fails_at_commit_invalidates_nothing_and_grants_nothing(
    client: httpx.AsyncClient,
    admin_token: str,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    resources: State,
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "c@example.com", roles=["viewer"])
        admin_role = await con.fetchval("select id from roles where name = 'admin'")
        # a deferred constraint: checked only at COMMIT
        await con.execute(
            """
            create or replace function fail_at_commit() returns trigger language plpgsql as $$
            begin raise exception 'refused at commit'; end $$;
            create constraint trigger user_roles_fail_at_commit after insert on user_roles
            deferrable initially deferred for each row when (new.user_id = %d) execute function fail_at_commit();
        """
            % uid
        )
    try:
        await resources["stream"].apply_pending()  # the rows written above
        await gql(client, perms_query(uid), token=admin_token)  # cached
        gen_before = await redis_client.get(f"permissions:user:{uid}:gen")
        async with acquire(pool) as con:
            logged = await con.fetchval("select count(*) from permission_changes")
        response = await client.post(
            "/graphql",
            json={
                "query": "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { __typename } }",
                "variables": {"u": str(uid), "r": str(admin_role)},
            },
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        body = response.json()
        assert codes(body) == ["INTERNAL_SERVER_ERROR"]
        assert "refused at commit" not in response.text  # no internals
        assert (
            await redis_client.get(f"permissions:user:{uid}") is not None
        )  # nothing invalidated
        assert await redis_client.get(f"permissions:user:{uid}:gen") == gen_before
        async with acquire(pool) as con:
            assert (
                await con.fetchval(
                    "select count(*) from user_roles where user_id = $1", uid
                )
                == 1
            )
            assert await con.fetchval("select count(*) from audit_log") == 0
            # nothing in the change log either: the trigger's row rolled back too
            assert (
                await con.fetchval("select count(*) from permission_changes") == logged
            )
        data = (await gql(client, perms_query(uid), token=admin_token))["data"]
        assert data["user"]["permissions"] == VIEWER
    finally:
        async with acquire(pool) as con:
            await con.execute(
                "drop trigger if exists user_roles_fail_at_commit on user_roles; drop function if exists fail_at_commit()"
            )
