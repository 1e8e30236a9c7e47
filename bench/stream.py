"""The permission change stream (migration 0013, permcore/stream.py): how soon a
committed change reaches Redis, and what the triggers cost writers.

    .venv/bin/python bench/stream.py [--runs 200]

Own PostgreSQL and Redis (embedded), the demo seed plus 10,000 synthetic users.
1. Commit to invalidated: a consumer runs (with LISTEN, then polling only at its
   default interval); a user's entry is cached; another connection commits
   `delete from user_roles where user_id = N` (what psql does); the time until
   Redis no longer holds the entry. p50 and p99 in ms. Then the API's way: the
   same write, and the writer waits for its own change (`ChangeStream.settle`,
   what a mutation does before it returns) while the consumer runs with LISTEN.
2. The triggers' cost: a 10,000-row `insert into user_roles` and 1,000
   single-row membership changes (one transaction each), with the triggers and
   with them disabled (ALTER TABLE ... DISABLE TRIGGER; the foreign-key checks
   stay on), alternately.
3. The same through the API: `assignRole` / `removeRole` mutations per second
   (the real app under uvicorn, aiohttp, 4 connections, 10 s per window; each
   mutation waits for its change to reach Redis), triggers on and off,
   alternately.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.permissions import Server, bench_settings, create  # noqa: E402
from permauth.tokens import TokenService  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permcore.cache import PermissionCache  # noqa: E402
from permcore.client import create_redis  # noqa: E402
from permcore.read import load_access_by_user_id  # noqa: E402
from permcore.stream import ChangeStream  # noqa: E402
from permdev.embedded import services  # noqa: E402
from permdev.seed import seed  # noqa: E402
from permstore.db import create_database  # noqa: E402

USERS = 10_000


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


@contextlib.asynccontextmanager
async def consumer(
    settings: Settings, name: str, *, listen: bool
) -> AsyncIterator[tuple[PermissionCache, ChangeStream, asyncpg.Connection]]:
    """A change stream running as an instance runs it (caught up first), its
    cache, and a connection of another writer."""
    db = await create_database(settings)
    cache = PermissionCache(create_redis(settings), settings)
    await cache.prepare()
    stream = ChangeStream(db, cache, name=name, poll_interval=1.0)
    await stream.apply_pending()
    con = await asyncpg.connect(settings.database_url)
    connect = partial(asyncpg.connect, settings.database_url)
    task = asyncio.create_task(stream.run(connect if listen else None))
    try:
        yield cache, stream, con
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await con.close()
        await cache.guarded.client.aclose()
        await db.close()


async def members(con: asyncpg.Connection, runs: int, order: str) -> list[int]:
    """`runs` users holding a role, not the admin (id 1: the API part acts as it)."""
    rows = await con.fetch(
        "select distinct user_id from user_roles where user_id > 1"
        f" order by 1 {order} limit $1",
        runs,
    )
    return [r["user_id"] for r in rows]


async def latency(settings: Settings, runs: int, listen: bool) -> list[float]:
    out = []
    async with consumer(settings, f"bench-{listen}", listen=listen) as (
        cache,
        stream,
        con,
    ):
        for user_id in await members(con, runs, "asc"):
            await load_access_by_user_id([user_id], db=stream.db, cache=cache)
            key = cache.key(user_id)
            assert await cache.guarded.client.exists(key)
            await con.execute("delete from user_roles where user_id = $1", user_id)
            committed = time.perf_counter()
            while await cache.guarded.client.exists(key):
                await asyncio.sleep(0.0005)
            out.append((time.perf_counter() - committed) * 1000)
    return out


async def settled(settings: Settings, runs: int) -> list[float]:
    """Commit to `settle(xid)` returning (the entry then gone), in ms."""
    out = []
    async with consumer(settings, "bench-settle", listen=True) as (cache, stream, con):
        for user_id in await members(con, runs, "desc"):
            await load_access_by_user_id([user_id], db=stream.db, cache=cache)
            key = cache.key(user_id)
            assert await cache.guarded.client.exists(key)
            async with con.transaction():
                await con.execute("delete from user_roles where user_id = $1", user_id)
                xid = int(await con.fetchval("select pg_current_xact_id()::text"))
            committed = time.perf_counter()
            assert await stream.settle(xid)
            out.append((time.perf_counter() - committed) * 1000)
            assert not await cache.guarded.client.exists(key)
    return out


async def writes(url: str, triggers: bool) -> tuple[float, float]:
    """(seconds for a 10,000-row insert, seconds for 1,000 one-row transactions)."""
    con = await asyncpg.connect(url)
    try:
        # only the change-log triggers: the foreign-key checks stay on in both
        switch = "enable" if triggers else "disable"
        for name in ("ins", "del", "upd"):
            await con.execute(
                f"alter table user_roles {switch} trigger permission_changes_{name}"
            )
        role = await con.fetchval("select id from roles where name = 'viewer'")
        await con.execute("delete from user_roles where role_id = $1", role)
        started = time.perf_counter()
        await con.execute(
            "insert into user_roles (user_id, role_id)"
            " select id, $1 from users order by id limit 10000",
            role,
        )
        bulk = time.perf_counter() - started
        await con.execute("delete from user_roles where role_id = $1", role)
        ids = [
            r["id"]
            for r in await con.fetch("select id from users order by id limit 1000")
        ]
        started = time.perf_counter()
        for user_id in ids:
            await con.execute(
                "insert into user_roles (user_id, role_id) values ($1, $2)",
                user_id,
                role,
            )
        single = time.perf_counter() - started
        await con.execute("delete from permission_changes")
        return bulk, single
    finally:
        for name in ("ins", "del", "upd"):
            await con.execute(
                f"alter table user_roles enable trigger permission_changes_{name}"
            )
        await con.close()


MUTATE = "mutation($u: ID!, $r: ID!) { %s(userId: $u, roleId: $r) { __typename } }"


async def api_writes(url: str, token: str, users: list[int], role: int) -> float:
    """Mutations per second: each connection assigns then removes `role` for
    its own users, for 10 s."""
    import aiohttp

    done = 0
    stop = time.perf_counter() + 10

    async def worker(session: aiohttp.ClientSession, mine: list[int]) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            user = mine[i % len(mine)]
            for op in ("assignRole", "removeRole"):
                async with session.post(
                    f"{url}/graphql",
                    json={
                        "query": MUTATE % op,
                        "variables": {"u": str(user), "r": str(role)},
                    },
                ) as response:
                    body = await response.json()
                    answer = (body.get("data") or {}).get(op) or {}
                    assert answer.get("__typename") == "RoleAssignment", body
                    done += 1
            i += 1

    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers=headers) as session:
        await asyncio.gather(*(worker(session, users[k::4]) for k in range(4)))
    return done / (time.perf_counter() - started)


async def switch_triggers(url: str, on: bool) -> None:
    con = await asyncpg.connect(url)
    try:
        for name in ("ins", "del", "upd"):
            await con.execute(
                f"alter table user_roles {'enable' if on else 'disable'}"
                f" trigger permission_changes_{name}"
            )
    finally:
        await con.close()


async def prepare(admin_url: str) -> str:
    url = await create(admin_url, "permgraph_stream")
    con = await asyncpg.connect(url)
    await seed(con, users=USERS)
    await con.close()
    return url


async def pick(url: str) -> tuple[int, list[int]]:
    """The viewer role and 200 users without it."""
    con = await asyncpg.connect(url)
    try:
        role = await con.fetchval("select id from roles where name = 'viewer'")
        users = [
            r["id"]
            for r in await con.fetch(
                "select id from users u where id > 1 and not exists (select 1 from"
                " user_roles ur where ur.user_id = u.id and ur.role_id = $1)"
                " order by id limit 200",
                role,
            )
        ]
    finally:
        await con.close()
    return int(role), users


def print_latency(settings: Settings, runs: int) -> None:
    print("commit -> Redis invalidated (ms), psql-style direct SQL:")
    for listen in (True, False):
        ms = asyncio.run(latency(settings, runs, listen))
        label = "LISTEN/NOTIFY" if listen else "polling only (1 s)"
        print(
            f"  {label:20s} n={len(ms)} p50={statistics.median(ms):7.1f}"
            f" p99={pct(ms, 0.99):7.1f} max={max(ms):7.1f}"
        )
    ms = asyncio.run(settled(settings, runs))
    print("commit -> the writer's settle() returned (ms), the API's mutations:")
    print(
        f"  {'settle(xid)':20s} n={len(ms)} p50={statistics.median(ms):7.1f}"
        f" p99={pct(ms, 0.99):7.1f} max={max(ms):7.1f}"
    )


def print_triggers(url: str) -> None:
    print("writers, triggers on vs off (s), alternately:")
    rows: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(3):
        for triggers in (True, False):
            rows[triggers].append(asyncio.run(writes(url, triggers)))
    for triggers in (True, False):
        bulk = statistics.median(b for b, _ in rows[triggers])
        single = statistics.median(s for _, s in rows[triggers])
        print(
            f"  triggers {'on ' if triggers else 'off'}: 10,000-row insert {bulk:6.3f} s,"
            f" 1,000 one-row transactions {single:6.3f} s ({1000 / single:,.0f}/s)"
        )
    on_b = statistics.median(b for b, _ in rows[True])
    off_b = statistics.median(b for b, _ in rows[False])
    on_s = statistics.median(s for _, s in rows[True])
    off_s = statistics.median(s for _, s in rows[False])
    print(f"  ratio on/off: bulk {on_b / off_b:.2f}x, one-row {on_s / off_s:.2f}x")


def print_api(settings: Settings, url: str) -> None:
    print("API mutations per second (assignRole/removeRole, c=4), alternately:")
    token = TokenService(settings).issue(1, "access").token
    role, users = asyncio.run(pick(url))
    per_s: dict[bool, list[float]] = {True: [], False: []}
    with Server(settings, JWT_SECRET=settings.jwt_secret.get_secret_value()) as app:
        for _ in range(2):
            for on in (True, False):
                asyncio.run(switch_triggers(url, on))
                per_s[on].append(asyncio.run(api_writes(app.url, token, users, role)))
    asyncio.run(switch_triggers(url, True))
    on_m, off_m = statistics.median(per_s[True]), statistics.median(per_s[False])
    windows = ", ".join(f"{v:.0f}" for v in per_s[True] + per_s[False])
    print(
        f"  triggers on {on_m:6.0f}/s, off {off_m:6.0f}/s (windows on, on, off, off:"
        f" {windows}): on/off {on_m / off_m:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--parts", default="latency,triggers,api", help="which parts to run"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with services() as (admin_db, redis_url):
        url = asyncio.run(prepare(admin_db))
        settings = bench_settings(url, redis_url)
        if "latency" in parts:
            print_latency(settings, args.runs)
        if "triggers" in parts:
            print_triggers(url)
        if "api" in parts:
            print_api(settings, url)


if __name__ == "__main__":
    main()
