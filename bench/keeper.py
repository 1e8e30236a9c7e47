"""What keeping the permission cache warm costs at 10k and 1M users (issue 14,
item 7): the keeper's full pass and the refill of what the change stream
invalidated.

    .venv/bin/python bench/keeper.py [--sizes 10000,1000000]

One database per size (own PostgreSQL and Redis, embedded), filled by the demo
seed. Per size, on an empty Redis:

1. One full keeper pass (`CacheKeeper.refresh_all`, every active user, 1,000 per
   query): seconds, SQL statements, Redis round trips, and Redis memory after it
   (INFO used_memory; entries plus fill tokens).
2. The refill after a change: 1,000 users' memberships deleted with SQL in one
   statement, the stream's pass (invalidation), then `CacheKeeper.refill` of
   those users: milliseconds, SQL statements, Redis round trips.

From (1) it prints the load per hour of the old defaults (TTL 300 s: a pass
every 150 s over the lowest 200,000 ids), of the new ones (TTL 3600 s: a pass
every 1,800 s, the same bound) and of the new ones with the bound raised to
1,000,000 (every user warm).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.permissions import bench_settings, create  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permcore.cache import PermissionCache  # noqa: E402
from permcore.client import CountingConnection, create_redis  # noqa: E402
from permcore.keeper import CacheKeeper  # noqa: E402
from permcore.stream import ChangeStream  # noqa: E402
from permdev.embedded import services  # noqa: E402
from permdev.seed import seed  # noqa: E402
from permstore.changes import STREAM_SQL  # noqa: E402
from permstore.db import create_database, query_listeners  # noqa: E402

OLD = (150.0, 200_000)  # the keeper's interval (s) and bound (users)
NEW = (1800.0, 200_000)
EVERYONE = (1800.0, 1_000_000)


async def prepare(admin_url: str, users: int) -> str:
    url = await create(admin_url, "permgraph_keeper")
    con = await asyncpg.connect(url, command_timeout=None)
    try:
        started = time.perf_counter()
        await seed(con, users=users)
        await con.execute("vacuum analyze")
        print(f"  seeded {users:,} users in {time.perf_counter() - started:.1f} s")
    finally:
        await con.close()
    return url


class Counts:
    def __enter__(self) -> Counts:
        self.sql = 0
        self.trips = CountingConnection.round_trips
        self.started = time.perf_counter()
        query_listeners.append(self._record)
        return self

    def _record(self, query: str) -> None:
        if query not in STREAM_SQL:
            self.sql += 1

    def __exit__(self, *_: object) -> None:
        query_listeners.remove(self._record)
        self.seconds = time.perf_counter() - self.started
        self.trips = CountingConnection.round_trips - self.trips


async def measure(settings: Settings, users: int) -> dict[str, float]:
    db = await create_database(settings)
    redis = create_redis(settings)
    cache = PermissionCache(redis, settings)
    await redis.flushdb()
    await cache.prepare()
    cache.trusted = True
    keeper = CacheKeeper(db, cache, interval=3600.0, max_users=users + 10)
    stream = ChangeStream(db, cache, name="bench-keeper")
    await stream.apply_pending()
    out: dict[str, float] = {}
    try:
        base = (await redis.info("memory"))["used_memory"]
        with Counts() as full:
            loaded = await keeper.refresh_all()
        memory = (await redis.info("memory"))["used_memory"] - base
        out |= {
            "users": loaded,
            "pass_s": full.seconds,
            "pass_sql": full.sql,
            "pass_trips": full.trips,
            "memory_mb": memory / 2**20,
            "bytes_per_user": memory / max(loaded, 1),
        }
        con = await asyncpg.connect(settings.database_url)
        try:
            ids = [
                r["user_id"]
                for r in await con.fetch(
                    "select distinct user_id from user_roles order by 1 desc limit 1000"
                )
            ]
            await con.execute(
                "delete from user_roles where user_id = any($1::bigint[])", ids
            )
        finally:
            await con.close()
        with Counts() as applied:
            await stream.apply_pending()
        with Counts() as refill:
            await keeper.refill(ids)
        present = sum(
            v is not None for v in await redis.mget([cache.key(u) for u in ids])
        )
        out |= {
            "apply_ms": applied.seconds * 1000,
            "refill_ms": refill.seconds * 1000,
            "refill_sql": refill.sql,
            "refill_trips": refill.trips,
            "refilled_present": present,
        }
    finally:
        await redis.aclose()
        await db.close()
    return out


def per_hour(r: dict[str, float], interval_s: float, max_users: int) -> str:
    users = min(r["users"], max_users)
    share = users / max(r["users"], 1)
    passes = 3600 / interval_s
    return (
        f"{passes:4.1f} passes/h x {users:>9,.0f} users: "
        f"{passes * r['pass_sql'] * share:6,.0f} SQL/h, "
        f"{passes * r['pass_trips'] * share:6,.0f} Redis round trips/h, "
        f"{passes * r['pass_s'] * share:6.1f} s of passes/h"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,1000000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with services() as (admin_db, redis_url):
        for users in sizes:
            print(f"{users:,} users:")
            url = asyncio.run(prepare(admin_db, users))
            settings = bench_settings(url, redis_url)
            r = asyncio.run(measure(settings, users))
            print(
                f"  full pass: {r['users']:,.0f} users in {r['pass_s']:.1f} s,"
                f" {r['pass_sql']:.0f} SQL, {r['pass_trips']:.0f} Redis round trips;"
                f" Redis memory +{r['memory_mb']:.1f} MB ({r['bytes_per_user']:.0f} B/user)"
            )
            print(
                f"  1,000 users changed with SQL: stream pass {r['apply_ms']:.0f} ms;"
                f" refill {r['refill_ms']:.0f} ms, {r['refill_sql']:.0f} SQL,"
                f" {r['refill_trips']:.0f} Redis round trips;"
                f" {r['refilled_present']:.0f}/1000 entries present after"
            )
            print(f"  old keeper (TTL 300 s):  {per_hour(r, *OLD)}")
            print(f"  new keeper (TTL 3600 s): {per_hour(r, *NEW)}")
            print(f"  new, bound 1,000,000:    {per_hour(r, *EVERYONE)}")


if __name__ == "__main__":
    main()
