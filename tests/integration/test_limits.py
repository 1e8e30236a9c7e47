"""Limits a client cannot get around, and failures that stay inside the response:
the query cost computed before execution, each request's share of the pools,
pool exhaustion told apart from an outage, a failed load that cancels nothing
else, and document shapes refused before validation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
import strawberry.schema.schema as strawberry_schema
from graphql import validate as graphql_validate

from permbase.errors import ServiceUnavailable
from permbase.settings import Settings
from permdev.seed import seed
from permstore import (
    permissions as permission_store,
    roles as role_store,
    users as user_store,
)
from tests.factories import (
    acquire,
    app_with,
    codes,
    counting_sql,
    insert_user,
    metric,
    token_for,
)

LANE = "graphql_prepared_requests_total"


async def post(
    client: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, **extra}, headers=headers
    )


async def both_paths(
    client: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> list[httpx.Response]:
    """The same new document three times: twice on the full path (a document is
    kept from its second validation on), then on the fast lane."""
    query = f"{query}\n# {uuid.uuid4().hex}"
    responses = [await post(client, query, token, **extra) for _ in range(2)]
    before = metric(LANE)
    responses.append(await post(client, query, token, **extra))
    assert metric(LANE) == before + 1, "the third request did not take the lane"
    return responses


# -- a failed load cancels nothing else (issue 12, item 4) ----------------------


async def test_a_field_failing_mid_flight_does_not_cancel_a_shared_load(
    client: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a` and `b` both read the admin role's description through the request's
    one `roles_by_id` load. `a.roles[0].members` fails while that load is in
    flight: graphql-core cancels `a`'s other pending fields, and that must not
    cancel the load `b` is waiting for (it did: a CancelledError escaped the
    executor and the client got a plain-text HTTP 500)."""
    failed = asyncio.Event()
    select_roles = role_store.select_by_ids

    async def members_fail(*args: Any, **kwargs: Any) -> Any:
        failed.set()
        raise ServiceUnavailable("The database is unavailable; retry shortly.")

    async def roles_after_the_failure(*args: Any, **kwargs: Any) -> Any:
        await failed.wait()
        await asyncio.sleep(0.05)  # let the failure's cancellations run first
        return await select_roles(*args, **kwargs)

    monkeypatch.setattr(user_store, "select_members_by_role_ids", members_fail)
    monkeypatch.setattr(role_store, "select_by_ids", roles_after_the_failure)
    query = '{ a: user(id: "1") { roles { description members { totalCount } } } b: user(id: "1") { roles { description } } }'
    for response in await both_paths(client, query, admin_token):
        failed.clear()
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["data"] == {
            "a": None,
            "b": {"roles": [{"description": "Everything"}]},
        }
        assert codes(body) == ["SERVICE_UNAVAILABLE"]


async def test_a_load_that_ends_in_a_stray_cancellation_is_an_error_of_the_response(
    client: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch function that raises CancelledError (something it awaited was
    cancelled by another task) left every waiter of its batch pending for ever:
    now its keys fail with a masked, coded error, and the rest answers."""

    async def cancelled(*args: Any, **kwargs: Any) -> Any:
        raise asyncio.CancelledError

    monkeypatch.setattr(role_store, "select_by_ids", cancelled)
    query = '{ me { email } user(id: "1") { roles { description } } }'
    async with asyncio.timeout(30):  # not a timing assertion: it used to hang
        responses = await both_paths(client, query, admin_token)
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == {"me": {"email": "admin@permgraph.local"}, "user": None}
        assert codes(body) == ["INTERNAL_SERVER_ERROR"]
        assert body["errors"][0]["path"] == ["user", "roles", 0, "description"]


# -- the cost, before execution (issue 12, item 3) -------------------------------


async def mgets(redis_client: aioredis.Redis) -> int:
    stats = await redis_client.info("commandstats")
    return int(stats.get("cmdstat_mget", {}).get("calls", 0))


FAN_OUT = (
    "{ roles { name members(first: null) { edges { node { createdAt roles { description"
    " members(first: null) { edges { node { email permissions } } } } } } } } }"
)


async def test_the_fan_out_query_is_refused_with_its_cost_before_any_io(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    settings: Settings,
    redis_client: aioredis.Redis,
) -> None:
    async with acquire(pool) as con:
        await seed(con, users=200)
        viewer = await insert_user(con, "viewer@example.com", roles=["viewer"])
    before = await mgets(redis_client)
    with counting_sql() as sql:
        response = await post(client, FAN_OUT, token_for(viewer, settings))
    body = response.json()
    assert response.status_code == 200 and body["data"] is None
    assert codes(body) == ["QUERY_TOO_COMPLEX"]
    # roles 20, members 20 x 20, roles 400 x 20, members 8,000 x 20 (DEFAULT_PAGE_SIZE each)
    cost = {"nodes": 168_420, "maxNodes": 50_000, "cost": 8_421, "maxCost": 2_000}
    assert body["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "cost": cost,
    }
    message = body["errors"][0]["message"]
    assert all(str(n) in message for n in cost.values()), message
    assert sql.statements == []  # nothing ran: not even the caller's entry
    assert await mgets(redis_client) == before


async def test_a_cost_that_depends_on_variables_is_checked_on_each_request_on_both_paths(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    query = (
        "query($n: Int) { roles { members(first: $n) { edges { node { roles"
        " { members(first: $n) { edges { node { email } } } } } } } } }"
    )
    allowed = await both_paths(client, query, admin_token, variables={"n": 2})
    assert all(r.status_code == 200 and "errors" not in r.json() for r in allowed)
    # the third request took the lane: the same text, now with a page that costs too much
    body = orjson.loads(allowed[0].request.content)
    body["variables"] = {"n": 50}
    before = metric(LANE)
    refused = await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert metric(LANE) == before + 1
    assert codes(refused.json()) == ["QUERY_TOO_COMPLEX"]
    # 20 + 20 x 50 + 1,000 x 20 + 20,000 x 50
    assert refused.json()["errors"][0]["extensions"]["cost"]["nodes"] == 1_021_020
    body["query"] += " "  # a new text: the full path says the same
    again = await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert again.json() == refused.json()


async def test_the_cost_of_an_answered_query_is_in_extensions_on_request(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    query = "{ users(first: 100) { edges { node { email roles { name } } } } roles { name } }"
    # users: 100 + 100 x 20 roles; roles: 20. Lists resolved: 1 + 100 + 1
    cost = {"nodes": 2_120, "maxNodes": 50_000, "cost": 102, "maxCost": 2_000}
    for response in await both_paths(
        client, query, admin_token, extensions={"cost": True}
    ):
        body = response.json()
        assert "errors" not in body and body["extensions"] == {"cost": cost}
    for response in await both_paths(client, query, admin_token):
        assert "extensions" not in response.json()  # only on request


async def test_pages_the_readme_and_the_tests_ask_for_stay_allowed(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    for query in (
        '{ users(first: 1000) { edges { node { id permissions hasPermission(code: "users:read") roles { name } } } } }',
        "{ roles { id name description permissions { code } members(first: 10) { totalCount edges { node { email } } } }"
        " permissions { code description } auditLog(first: 20) { entries { action } endCursor hasNextPage } }",
    ):
        body = (await post(client, query, admin_token)).json()
        assert "errors" not in body, body


# -- each request's share of the pools (issue 12, item 3) ------------------------

LOCK = 4242  # an advisory lock the test holds: statements that wait for it hold their connection


async def waiting_on_the_lock(pool: asyncpg.Pool) -> int:
    async with acquire(pool) as con:
        return int(
            await con.fetchval(
                "select count(*) from pg_locks where locktype = 'advisory' and objid = $1 and not granted",
                LOCK,
            )
        )


async def test_a_costly_query_does_not_starve_a_concurrent_request(
    settings: Settings, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query that is allowed but needs many statements at once: eight members
    pages, each loading its users' permission entries (the cache is off here, so
    each is a statement). Held in PostgreSQL (they wait for an advisory lock the
    test holds), they took all eight connections of the pool and a concurrent
    `me` failed; now the query holds at most its share (8 x 0.25 = 2) and `me`
    answers, and the query completes once the lock is released."""
    async with acquire(pool) as con:
        await seed(con, users=60)
        team_roles = [
            r["id"]
            for r in await con.fetch(
                "select id from roles where name like 'team-%' order by id limit 8"
            )
        ]
    select_access = permission_store.select_access_by_user_ids

    async def held(db: Any, user_ids: Any) -> Any:
        if 1 not in user_ids:  # not the caller's own entry: a members page's
            await db.fetchval("select pg_advisory_xact_lock_shared($1::bigint)", LOCK)
        return await select_access(db, user_ids)

    costly = "{ %s }" % " ".join(
        f'r{rid}: role(id: "{rid}") {{ members(first: 50) {{ edges {{ node {{ email permissions }} }} }} }}'
        for rid in team_roles
    )
    changes = {
        "db_pool_min_size": 1,
        "db_pool_max_size": 8,
        "db_acquire_timeout_s": 0.5,
        "permissions_cache_enabled": False,
    }
    async with app_with(settings, **changes) as (app, _):
        token = token_for(1, settings)
        async with pool.acquire() as locker:
            await locker.execute("select pg_advisory_lock($1::bigint)", LOCK)
            monkeypatch.setattr(permission_store, "select_access_by_user_ids", held)
            try:
                running = asyncio.create_task(post(app, costly, token))
                async with asyncio.timeout(
                    10
                ):  # not a timing assertion: a guard against a hang
                    while (
                        await waiting_on_the_lock(pool) < 2
                    ):  # the costly query holds connections
                        await asyncio.sleep(0.01)
                me = (await post(app, "{ me { email } }", token)).json()
            finally:
                await locker.execute("select pg_advisory_unlock($1::bigint)", LOCK)
            body = (await running).json()
        assert me == {"data": {"me": {"email": "admin@permgraph.local"}}}
        assert "errors" not in body and all(
            body["data"][f"r{rid}"]["members"]["edges"] for rid in team_roles
        )


async def test_a_full_postgres_pool_is_busy_not_down(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "busy@example.com")
    async with app_with(
        settings, db_pool_min_size=2, db_pool_max_size=2, db_acquire_timeout_s=0.2
    ) as (app, state):
        token = token_for(1, settings)
        await post(app, "{ me { id } }", token)
        held = [
            await state["db"].pool.acquire() for _ in range(2)
        ]  # every connection in use
        try:
            body = (await post(app, '{ user(id: "%d") { email } }' % uid, token)).json()
        finally:
            for held_con in held:
                await state["db"].pool.release(held_con)
        assert body["errors"][0]["message"] == "The service is busy; retry shortly."
        assert codes(body) == ["SERVICE_BUSY"]
        body = (await post(app, '{ user(id: "%d") { email } }' % uid, token)).json()
        assert body == {"data": {"user": {"email": "busy@example.com"}}}


async def test_a_full_redis_pool_is_a_miss_and_does_not_open_the_breaker(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "r@example.com", roles=["viewer"])
    query = '{ user(id: "%d") { permissions } }' % uid
    async with app_with(settings, redis_max_connections=2) as (app, state):
        token = token_for(1, settings)
        await post(app, query, token)
        redis_pool = state["redis"].connection_pool
        held = [  # every connection in use
            await redis_pool.get_connection()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            for _ in range(2)
        ]
        try:
            for _ in range(settings.breaker_failure_threshold + 2):
                body = (await post(app, query, token)).json()
                assert body == {
                    "data": {
                        "user": {
                            "permissions": [
                                "permissions:read",
                                "roles:read",
                                "users:read",
                            ]
                        }
                    }
                }
            assert not state["cache"].guarded.breaker.is_open
        finally:
            for connection in held:
                await redis_pool.release(connection)


# -- the document's shape, before validation (issue 12, items 5 and 6) -----------


@pytest.fixture
async def prod_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_with(settings, environment="prod", graphql_ide=None) as (app, _):
        yield app


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the runs of graphql-core's `validate` (through Strawberry's
    validation step, cache misses included)."""
    runs: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        runs.append(1)
        return graphql_validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counted)
    return runs


def unique(document: str) -> str:
    """A document never seen: no cache answers it (the validation cache compares
    documents by their syntax tree, so a new comment is not enough)."""
    return document.replace("query ", f"query u{uuid.uuid4().hex}", 1)


SHAPES = [
    # 990 unknown directives on one field
    ("query q1 { __typename " + "@aa " * 990 + "}", "directivesPerLocation", 990, 5),
    # 5 directives on each of 11 fields: 55 in the document
    (
        "query q1 { "
        + " ".join(f"f{i}: __typename" + " @include(if: true)" * 5 for i in range(11))
        + " }",
        "directives",
        55,
        50,
    ),
    # 1,000 copies of one field
    ("query q2 { " + "__typename " * 1000 + "}", "selectionsPerSet", 1000, 100),
    # 6 sets of 100 copies, each set within its limit: 606 selections in the document
    (
        "query q2 { "
        + " ".join(f"a{i}: me {{ " + "id " * 100 + "}" for i in range(6))
        + " }",
        "selections",
        606,
        500,
    ),
]


@pytest.mark.parametrize("profile", ["dev", "prod"])
@pytest.mark.parametrize(
    ("document", "limit", "found", "maximum"), SHAPES, ids=[s[1] for s in SHAPES]
)
async def test_documents_over_a_shape_limit_are_refused_before_validation(
    client: httpx.AsyncClient,
    prod_client: httpx.AsyncClient,
    validations: list[int],
    profile: str,
    document: str,
    limit: str,
    found: int,
    maximum: int,
) -> None:
    body = (
        await post(prod_client if profile == "prod" else client, unique(document))
    ).json()
    assert body["data"] is None and codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["extensions"] == {
        "code": "QUERY_TOO_COMPLEX",
        "limit": limit,
        "found": found,
        "max": maximum,
    }
    assert f"{found} (at most {maximum})" in body["errors"][0]["message"]
    assert validations == []  # refused before validation ran
    # the spy does see a document within the limits being validated
    assert (await post(client, unique("query { __typename }"))).json() == {
        "data": {"__typename": "Query"}
    }
    assert validations == [1]
