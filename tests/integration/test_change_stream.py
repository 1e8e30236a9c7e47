"""Permission changes streamed from the database (migration 0013, permcore/stream.py).

Every change here is made by another connection with plain SQL, as psql, a
migration or another service would: never through the API. What a user would
see is the permission entry the next read returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import (
    HealthCheck,
    given,
    settings as hypothesis_settings,
    strategies as st,
)

from api.state import State
from permbase.settings import Settings
from permcore.cache import InvalidationFailed, PermissionCache
from permcore.client import create_redis
from permcore.read import load_access_by_user_id
from permcore.stream import ChangeStream
from permdev.embedded import free_port
from tests.factories import (
    acquire,
    app_with,
    codes,
    gql,
    insert_user,
    metric,
    token_for,
)


async def permissions_of(resources: State, user_id: int) -> tuple[str, ...] | None:
    """What the next read of the user's entry returns (None: no such user)."""
    [access] = await load_access_by_user_id(
        [user_id], db=resources["db"], cache=resources["cache"]
    )
    if access is None or not access.is_active:
        return None
    return tuple(sorted(access.permissions))


async def drained(resources: State, name: str = "test") -> ChangeStream:
    """A consumer at the current end of the log (the fixture's own truncate and
    seed are changes too)."""
    stream = ChangeStream(resources["db"], resources["cache"], name=name)
    await stream.apply_pending()
    return stream


async def cached(redis_client: aioredis.Redis, user_id: int) -> bool:
    return bool(await redis_client.exists(f"permissions:user:{user_id}"))


VIEWER = ("permissions:read", "roles:read", "users:read")

# (SQL with $1 = the user's id, the permissions the user then has)
CHANGES = {
    "insert user_roles": (
        "insert into user_roles (user_id, role_id) select $1, id from roles where name = 'admin'",
        "admin",
    ),
    "delete user_roles": ("delete from user_roles where user_id = $1", ()),
    "update user_roles": (
        "update user_roles set role_id = (select id from roles where name = 'admin')"
        " where user_id = $1",
        "admin",
    ),
    "insert role_permissions": (
        "insert into role_permissions (role_id, permission_id)"
        " select r.id, p.id from roles r, permissions p"
        " where r.name = 'viewer' and p.code = 'audit:read' and $1::bigint is not null",
        (*VIEWER, "audit:read"),
    ),
    "delete role_permissions": (
        "delete from role_permissions where $1::bigint is not null and role_id ="
        " (select id from roles where name = 'viewer') and permission_id ="
        " (select id from permissions where code = 'roles:read')",
        ("permissions:read", "users:read"),
    ),
    "rename a permission": (
        "update permissions set code = 'users:look' where code = 'users:read'"
        " and $1::bigint is not null",
        ("permissions:read", "roles:read", "users:look"),
    ),
    "delete a role (cascade)": (
        "delete from roles where name = 'viewer' and $1::bigint is not null",
        (),
    ),
    "delete a permission (cascade)": (
        "delete from permissions where code = 'roles:read' and $1::bigint is not null",
        ("permissions:read", "users:read"),
    ),
    "deactivate the user": ("update users set is_active = false where id = $1", None),
    "delete the user": ("delete from users where id = $1", None),
    "truncate user_roles": (
        "truncate user_roles -- $1 unused",
        (),
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_a_change_made_with_sql_reaches_the_next_read(
    change: str,
    resources: State,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
) -> None:
    sql, expected = CHANGES[change]
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    stream = await drained(resources)
    assert await permissions_of(resources, user_id) == VIEWER
    assert await cached(redis_client, user_id)

    async with acquire(pool) as con:
        if "$1" in sql and "-- $1" not in sql:
            await con.execute(sql, user_id)
        else:
            await con.execute(sql.split(" --")[0])
    assert await stream.apply_pending() >= 1
    if expected == "admin":
        async with acquire(pool) as con:
            admin = await con.fetchval(
                "select array_agg(distinct p.code order by p.code) from role_permissions rp"
                " join permissions p on p.id = rp.permission_id join roles r on r.id = rp.role_id"
                " where r.name = 'admin'"
            )
        assert set(await permissions_of(resources, user_id) or ()) == set(admin)
    else:
        assert expected is None or isinstance(expected, tuple)
        assert await permissions_of(resources, user_id) == (
            None if expected is None else tuple(sorted(expected))
        )


async def test_one_transaction_of_several_statements_and_a_rolled_back_one(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    async with acquire(pool) as con:
        a = await insert_user(con, "a@example.com", roles=["viewer"])
        b = await insert_user(con, "b@example.com", roles=["viewer"])
    stream = await drained(resources)
    assert await permissions_of(resources, a) == VIEWER
    assert await permissions_of(resources, b) == VIEWER

    async with acquire(pool) as con:
        tx = con.transaction()
        await tx.start()
        await con.execute("delete from user_roles where user_id = $1", b)
        await tx.rollback()
        async with con.transaction():
            await con.execute("delete from user_roles where user_id = $1", a)
            await con.execute("update users set is_active = false where id = $1", a)
    await stream.apply_pending()
    assert await permissions_of(resources, a) is None
    # the rolled-back change invalidated nothing: b's entry is still the cached one
    assert await cached(redis_client, b)
    assert await permissions_of(resources, b) == VIEWER


async def test_transactions_committing_out_of_order_are_both_applied(
    resources: State, pool: asyncpg.Pool
) -> None:
    """The first transaction takes the smaller id but commits last: a reader
    that kept "the last id seen" would skip it."""
    async with acquire(pool) as con:
        a = await insert_user(con, "a@example.com", roles=["viewer"])
        b = await insert_user(con, "b@example.com", roles=["viewer"])
    stream = await drained(resources)
    assert await permissions_of(resources, a) == VIEWER
    assert await permissions_of(resources, b) == VIEWER

    first = await pool.acquire()
    try:
        tx = first.transaction()
        await tx.start()
        await first.execute("delete from user_roles where user_id = $1", a)
        async with acquire(pool) as second:
            await second.execute("delete from user_roles where user_id = $1", b)
        await stream.apply_pending()  # b's change, visible above the horizon
        assert await permissions_of(resources, b) == ()
        assert await permissions_of(resources, a) == VIEWER  # not committed yet
        await tx.commit()
    finally:
        await pool.release(first)
    await stream.apply_pending()
    assert await permissions_of(resources, a) == ()
    # and b's change is not applied twice (a refill of b is not thrown away)
    assert await permissions_of(resources, b) == ()
    assert await stream.apply_pending() == 0


async def test_a_restarted_consumer_resumes_where_it_stopped(
    resources: State, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    await drained(resources, name="restarting")
    assert await permissions_of(resources, user_id) == VIEWER
    # the consumer is stopped; a change is made meanwhile
    async with acquire(pool) as con:
        await con.execute("delete from user_roles where user_id = $1", user_id)
    restarted = ChangeStream(resources["db"], resources["cache"], name="restarting")
    await restarted.start()
    assert await restarted.apply_pending() >= 1
    assert await permissions_of(resources, user_id) == ()


async def test_redis_down_while_changes_arrive_then_replayed(
    resources: State, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    await drained(resources, name="flaky")
    assert await permissions_of(resources, user_id) == VIEWER
    async with acquire(pool) as con:
        await con.execute("delete from user_roles where user_id = $1", user_id)

    down = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    )
    dead = create_redis(down)
    try:
        broken = ChangeStream(
            resources["db"], PermissionCache(dead, down), name="flaky"
        )
        await broken.start()
        before = broken.position
        with pytest.raises(InvalidationFailed):
            await broken.apply_pending()
        assert broken.position == before  # nothing counted as applied
    finally:
        await dead.aclose()
    healthy = ChangeStream(resources["db"], resources["cache"], name="flaky")
    await healthy.start()
    assert await healthy.apply_pending() >= 1
    assert await permissions_of(resources, user_id) == ()


ME = "{ me { permissions } }"


async def until(predicate: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `predicate()` holds (fails after 5 s)."""
    started = time.perf_counter()
    while not await predicate():
        assert time.perf_counter() - started < 5.0, "not seen in time"
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


async def until_revoked(client: httpx.AsyncClient, token: str) -> None:
    """Until the caller's next request shows no permissions (fails after 5 s)."""

    async def revoked() -> bool:
        body = await gql(client, ME, token=token)
        return bool(body["data"]["me"]["permissions"] == [])

    await until(revoked)


@pytest.mark.parametrize("listen", [True, False], ids=["notify", "polling only"])
async def test_psql_revoke_reaches_every_instance(
    listen: bool, settings: Settings, pool: asyncpg.Pool
) -> None:
    """The issue's "done when": `delete from user_roles where user_id = N` while
    two instances run; the user's next request on either shows it. Without
    LISTEN (a lost notification) polling catches it."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    token = token_for(user_id, settings)
    tuned = {"change_listen": listen, "change_poll_interval_s": 0.2}
    async with (
        app_with(settings, instance_name="one", **tuned) as (one, _),
        app_with(settings, instance_name="two", **tuned) as (two, _),
    ):
        for client in (one, two):
            body = await gql(client, ME, token=token)
            assert sorted(body["data"]["me"]["permissions"]) == list(VIEWER)
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", user_id)
        for client in (one, two):
            await until_revoked(client, token)


async def test_readyz_reports_a_consumer_that_fell_behind(
    client: httpx.AsyncClient, resources: State
) -> None:
    stream = resources["stream"]
    await stream.apply_pending()
    exposed = (await client.get("/metrics")).text
    assert f"permission_changes_position {float(stream.position or 0)}" in exposed
    assert "permission_changes_seconds_since_pass " in exposed
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["changes"] == "ok"
    saved = stream.applied_at, stream.poll_interval
    stream.poll_interval = 1.0
    stream.applied_at = time.monotonic() - 60  # no good pass for a minute
    try:
        late = await client.get("/readyz")
    finally:
        stream.applied_at, stream.poll_interval = saved
    assert late.status_code == 503
    assert late.json()["checks"]["changes"].startswith("behind by 6")


# -- the mutation's promise and the consistency token (items 4 and 5) ------------

REMOVE = (
    "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) "
    "{ __typename ... on RoleAssignment { changed } } }"
)
PERMS = "query($u: ID!) { user(id: $u) { permissions } }"


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: Mapping[str, object],
    token: str,
    consistency: str | None = None,
) -> httpx.Response:
    headers = {b"Authorization": f"Bearer {token}".encode()}
    if consistency is not None:  # any byte a header may carry, as a client may send it
        headers[b"X-Consistency-Token"] = consistency.encode("latin-1")
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


async def test_a_mutation_returns_once_no_instance_can_read_the_old_permissions(
    settings: Settings, pool: asyncpg.Pool, admin_token: str
) -> None:
    """Two instances whose streams never poll on their own (no LISTEN, an hour
    between polls): a revoke through one is seen by the other's very next read,
    because the mutation returned only after its change reached Redis. The
    response carries the write's consistency token."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
        viewer = await con.fetchval("select id from roles where name = 'viewer'")
    idle = {"change_listen": False, "change_poll_interval_s": 3600}
    async with (
        app_with(settings, **idle) as (one, _),
        app_with(settings, **idle) as (two, _),
    ):
        # both instances started after the user was written: entries cached now
        for client in (one, two):
            body = await gql(client, PERMS, {"u": str(user_id)}, token=admin_token)
            assert sorted(body["data"]["user"]["permissions"]) == list(VIEWER)
        response = await post(
            one, REMOVE, {"u": str(user_id), "r": str(viewer)}, admin_token
        )
        body = response.json()
        assert body["data"]["removeRole"] == {
            "__typename": "RoleAssignment",
            "changed": True,
        }
        token = body["extensions"]["consistencyToken"]
        assert token.isdigit()
        for client in (two, one):
            body = await gql(client, PERMS, {"u": str(user_id)}, token=admin_token)
            assert body["data"]["user"]["permissions"] == []
        # a query carries no token of its own
        assert "extensions" not in (await post(two, ME, {}, admin_token)).json()


async def test_a_read_carrying_a_token_waits_for_the_instance_to_reach_it(
    settings: Settings, pool: asyncpg.Pool, admin_token: str
) -> None:
    """A write this instance has not applied (made with SQL; its stream idle):
    without the token the cached entry answers, with it the instance first
    applies the log that far."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    idle = {"change_listen": False, "change_poll_interval_s": 3600}
    async with app_with(settings, **idle) as (client, state):
        variables = {"u": str(user_id)}
        body = await gql(client, PERMS, variables, token=admin_token)
        assert sorted(body["data"]["user"]["permissions"]) == list(VIEWER)
        async with acquire(pool) as con, con.transaction():
            await con.execute("delete from user_roles where user_id = $1", user_id)
            xid = await con.fetchval("select pg_current_xact_id()::text")
        stale = (await post(client, PERMS, variables, admin_token)).json()
        assert sorted(stale["data"]["user"]["permissions"]) == list(VIEWER)
        fresh = (await post(client, PERMS, variables, admin_token, xid)).json()
        assert fresh["data"]["user"]["permissions"] == []
        assert state["stream"].reached(int(xid))


async def test_a_token_the_instance_cannot_reach_in_time_reads_postgresql(
    settings: Settings,
    pool: asyncpg.Pool,
    admin_token: str,
    redis_client: aioredis.Redis,
) -> None:
    """The stream cannot make a pass (held here) within CHANGE_WAIT_S: the read
    answers from PostgreSQL and writes nothing back; never the older entry."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    tuned = {
        "change_listen": False,
        "change_poll_interval_s": 3600,
        "change_wait_s": 0.1,
    }
    async with app_with(settings, **tuned) as (client, state):
        variables = {"u": str(user_id)}
        await gql(client, PERMS, variables, token=admin_token)  # cached
        key = f"permissions:user:{user_id}"
        async with acquire(pool) as con, con.transaction():
            await con.execute("delete from user_roles where user_id = $1", user_id)
            xid = await con.fetchval("select pg_current_xact_id()::text")
        before = await redis_client.get(key)
        async with state["stream"]._lock:  # a pass that does not end in time
            fresh = (await post(client, PERMS, variables, admin_token, xid)).json()
        assert fresh["data"]["user"]["permissions"] == []
        assert await redis_client.get(key) == before  # nothing written back


@given(
    text=st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF),
        min_size=1,
        max_size=40,
    ).filter(
        lambda t: (
            not (t.strip().isascii() and t.strip().isdigit() and len(t.strip()) <= 19)
        )
    )
)
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_a_token_that_is_not_one_is_a_coded_bad_input(
    client: httpx.AsyncClient, admin_token: str, text: str
) -> None:
    for query in (ME, "{ __typename }"):  # the fast lane and the full path
        response = await post(client, query, {}, admin_token, text)
        assert response.status_code == 400, (text, response.text)
        assert codes(response.json()) == ["BAD_USER_INPUT"]


async def test_a_change_written_while_no_instance_ran_reaches_a_new_instance(
    settings: Settings, pool: asyncpg.Pool, admin_token: str
) -> None:
    """Every instance stopped (a deploy), a role revoked with psql meanwhile, then
    an instance with a name never seen (a new pod): it starts where the
    furthest-behind reader stopped, so the revoke is applied before it serves."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    idle = {"change_listen": False, "change_poll_interval_s": 3600}
    variables = {"u": str(user_id)}
    async with app_with(settings, **idle) as (client, _):
        body = await gql(client, PERMS, variables, token=admin_token)
        assert sorted(body["data"]["user"]["permissions"]) == list(VIEWER)  # cached
    async with acquire(pool) as con:
        await con.execute("delete from user_roles where user_id = $1", user_id)
    async with app_with(settings, **idle) as (client, _):
        body = await gql(client, PERMS, variables, token=admin_token)
        assert body["data"]["user"]["permissions"] == []


async def test_a_lost_listen_connection_is_opened_again(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The LISTEN backend terminated (a PostgreSQL restart does the same): the
    stream opens a new one, and a change made after it arrives by NOTIFY, with
    no poll due for an hour."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    token = token_for(user_id, settings)
    tuned = {"change_listen": True, "change_poll_interval_s": 3600}

    async def listening() -> list[int]:
        async with acquire(pool) as con:
            return [
                r["pid"]
                for r in await con.fetch(
                    "select pid from pg_stat_activity"
                    " where application_name = 'permgraph-listen'"
                )
            ]

    async with app_with(settings, **tuned) as (client, _):
        body = await gql(client, ME, token=token)
        assert sorted(body["data"]["me"]["permissions"]) == list(VIEWER)
        [first] = await listening()
        async with acquire(pool) as con:
            await con.execute("select pg_terminate_backend($1)", first)

        async def reopened() -> bool:
            return any(pid != first for pid in await listening())

        await until(reopened)
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", user_id)

        await until_revoked(client, token)


async def test_a_token_no_write_returned_is_a_coded_bad_input(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    """Digits, but no transaction has that id yet: refused after one pass, not
    an endless reason to skip the cache."""
    for query in (ME, "{ me { email } }"):
        response = await post(client, query, {}, admin_token, "999999999999999")
        assert codes(response.json()) == ["BAD_USER_INPUT"], response.text


async def flush_as_writer(con: asyncpg.Connection) -> None:
    async with con.transaction():
        await con.execute("set local role permgraph_test_writer")
        await con.execute("select permission_changes_note(null, null, true)")


async def test_a_writer_without_rights_on_the_log_cannot_hide_from_it_or_flush(
    pool: asyncpg.Pool,
) -> None:
    """The triggers run as their owner, on the tables of the migration's
    search_path: a service whose role may only write memberships, with a
    search_path of its own, still has its change recorded."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
        await con.execute(
            """
            do $$ begin
                if not exists (select from pg_roles where rolname = 'permgraph_test_writer') then
                    create role permgraph_test_writer nologin;
                end if;
            end $$;
            grant usage on schema public to permgraph_test_writer;
            grant select, delete on public.user_roles to permgraph_test_writer;
            """
        )
        before = await con.fetchval("select count(*) from permission_changes")
        async with con.transaction():
            await con.execute("set local role permgraph_test_writer")
            # a log of its own, where the functions would look first if their
            # search_path let a session's temporary schema in
            await con.execute(
                "create temp table permission_changes (id bigint, xid xid8,"
                " user_ids bigint[], role_ids bigint[], everyone boolean,"
                " created_at timestamptz)"
            )
            await con.execute("set local search_path = pg_temp, pg_catalog")
            await con.execute(
                "delete from public.user_roles where user_id = $1", user_id
            )
            assert (
                await con.fetchval("select count(*) from pg_temp.permission_changes")
                == 0
            )
            await con.execute("drop table pg_temp.permission_changes")
        logged = await con.fetch(
            "select user_ids from permission_changes order by id offset $1", before
        )
        assert [r["user_ids"] for r in logged] == [[user_id]]
        # nor may such a role write to the log by calling the functions: a flush
        # of every instance's cache is the owner's to order
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await flush_as_writer(con)


async def test_a_slow_reader_cannot_write_back_rows_read_before_a_sql_change(
    resources: State, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> None:
    """A real reader paused between its SQL read and its write-back while a
    revoke commits with plain SQL and the stream applies it: the write-back of
    the old rows is refused, and the next read shows the revoke."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    stream = await drained(resources)
    cache = resources["cache"]
    refused = metric("permissions_cache_stale_writebacks_refused_total")

    async def revoke_meanwhile(misses: object) -> None:
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", user_id)
        assert await stream.apply_pending() >= 1

    cache.before_fill = revoke_meanwhile
    try:
        # this read saw the rows before the revoke: it answers with them (it is
        # ordered before the change), but may not store them
        assert await permissions_of(resources, user_id) == VIEWER
    finally:
        cache.before_fill = None
    assert not await cached(redis_client, user_id)
    assert metric("permissions_cache_stale_writebacks_refused_total") == refused + 1
    assert await permissions_of(resources, user_id) == ()


async def test_a_log_that_cannot_be_read_while_postgresql_answers_distrusts_the_cache(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The stream's reads fail while PostgreSQL is up (here: the log renamed away;
    in life, rights revoked or a bug): once it is behind, the instance stops
    answering from the cache, since writes may be going on unseen; it trusts it
    again after a pass succeeds. (PostgreSQL down altogether is another matter:
    nobody can commit, and the cache keeps answering: test_faults.py.)"""
    tuned = {"change_listen": False, "change_poll_interval_s": 0.2}
    async with app_with(settings, **tuned) as (_, state):
        cache, stream = state["cache"], state["stream"]
        assert cache.trusted
        async with acquire(pool) as con:
            await con.execute(
                "alter table permission_changes rename to permission_changes_away"
            )
        try:
            deadline = time.monotonic() + 10
            while cache.trusted and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert not cache.trusted
            assert stream.behind_s() is not None
        finally:
            async with acquire(pool) as con:
                await con.execute(
                    "alter table permission_changes_away rename to permission_changes"
                )
        deadline = time.monotonic() + 5
        while not cache.trusted and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert cache.trusted


async def test_a_write_waiting_for_a_pass_cancelled_under_it_gets_an_answer(
    resources: State,
) -> None:
    """At shutdown the stream's pass is cancelled: a mutation waiting in settle()
    gets False (unconfirmed, the cache distrusted), not a CancelledError that no
    GraphQL error handling would catch."""
    stream = await drained(resources, name="test-cancel")
    async with stream._lock:  # the pass cannot start before it is cancelled
        waiting = asyncio.create_task(stream.settle(2**62))
        while stream._passing is None:
            await asyncio.sleep(0)
        stream._passing.cancel()
        assert await waiting is False
    assert not resources["cache"].trusted
    await stream.apply_pending()
    assert resources["cache"].trusted
