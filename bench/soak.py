"""Load, soak and fault runs: `.venv/bin/python bench/soak.py [--seconds 60]`.

Starts its own PostgreSQL and Redis (so it can stop and restart them), seeds
10,000 users, runs the real app under uvicorn (one worker) and drives it from
aiohttp (16 connections; GraphQL errors arrive in 200 responses, so bodies are
read and counted by code):

1. steady:         90 % reads (`user(id) { permissions }`, Zipf) / 10 % role
                   mutations (assignRole/removeRole of `viewer`), for --seconds;
2. redis killed:   the same, Redis stopped half-way (and not restarted);
3. postgres restart: the same, PostgreSQL stopped half-way and started again 2 s later;
4. stampede:       every read on one hot user, the whole cache flushed every
                   second: permission SQL statements against flushes.

After each run, the permissions the API reports for 300 users are compared with
what PostgreSQL says: any difference is a wrong answer. Loopback only; every
loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.permissions import (  # noqa: E402
    PERMISSION_QUERY_MARK,
    USERS,
    Server,
    bench_settings,
    login,
    pct,
    prepare,
    table,
)
from permdev.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: E402

READ = '{ user(id: "%d") { permissions } }'
ASSIGN = 'mutation { %s(userId: "%d", roleId: "%d") { __typename } }'
TRUTH = """
select u.id, coalesce(array_agg(distinct p.code order by p.code) filter (where p.code is not null and u.is_active), '{}') as codes
from users u
left join user_roles ur on ur.user_id = u.id
left join role_permissions rp on rp.role_id = ur.role_id
left join permissions p on p.id = rp.permission_id
where u.id = any($1::bigint[])
group by u.id
"""


def zipf_sampler(n: int, s: float = 1.1) -> Any:
    weights = [1 / (i**s) for i in range(1, n + 1)]
    total, cdf, acc = sum(weights), [], 0.0
    for w in weights:
        acc += w
        cdf.append(acc / total)

    def sample(rng: random.Random) -> int:
        rank = bisect.bisect_left(cdf, rng.random()) + 1
        return (rank * 7919) % n + 2

    return sample


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self.started = time.monotonic()

    def row(self, name: str, **extra: Any) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        lat = self.latencies or [0.0]
        return {
            "scenario": name,
            "requests": len(self.latencies),
            "rps": len(self.latencies) / elapsed,
            "p50_ms": statistics.median(lat),
            "p99_ms": pct(lat, 0.99),
            "errors": sum(self.errors.values()),
            "error_codes": ", ".join(f"{k} {v}" for k, v in self.errors.most_common())
            or "-",
            **extra,
        }


async def drive(
    url: str,
    token: str,
    seconds: float,
    viewer_role: int,
    *,
    hot_user: int | None = None,
    events: Sequence[tuple[float, Any]] = (),
    connections: int = 16,
) -> Stats:
    stats = Stats()
    sample = zipf_sampler(USERS)
    deadline = time.monotonic() + seconds
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        async with aiohttp.ClientSession(
            headers=headers, timeout=aiohttp.ClientTimeout(total=15)
        ) as session:
            while time.monotonic() < deadline:
                if hot_user is None and rng.random() < 0.1:
                    op = rng.choice(["assignRole", "removeRole"])
                    query = ASSIGN % (op, rng.randint(2, USERS + 1), viewer_role)
                else:
                    query = READ % (hot_user or sample(rng))
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"{url}/graphql", json={"query": query}
                    ) as response:
                        body = await response.json(content_type=None)
                        if response.status != 200 or body.get("errors"):
                            codes = [
                                e.get("extensions", {}).get("code", "?")
                                for e in body.get("errors") or [{}]
                            ]
                            stats.errors[
                                codes[0] if codes else str(response.status)
                            ] += 1
                except (TimeoutError, aiohttp.ClientError) as exc:
                    stats.errors[type(exc).__name__] += 1
                stats.latencies.append((time.perf_counter() - started) * 1000)

    async def run_events() -> None:
        for at, action in events:
            await asyncio.sleep(max(0.0, stats.started + at - time.monotonic()))
            result = action()
            if asyncio.iscoroutine(result):
                await result

    await asyncio.gather(run_events(), *[worker(i) for i in range(connections)])
    return stats


async def wrong_answers(url: str, token: str, database_url: str) -> int:
    rng = random.Random(7)
    ids = rng.sample(range(2, USERS + 2), 300)
    con = await asyncpg.connect(database_url)
    try:
        truth = {r["id"]: list(r["codes"]) for r in await con.fetch(TRUTH, ids)}
    finally:
        await con.close()
    wrong = 0
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {token}"}
    ) as session:
        for uid in ids:
            async with session.post(
                f"{url}/graphql", json={"query": READ % uid}
            ) as response:
                body = await response.json()
            if body.get("data", {}).get("user", {}).get("permissions") != truth[uid]:
                wrong += 1
    return wrong


async def permission_sql(database_url: str, reset: bool = False) -> int:
    con = await asyncpg.connect(database_url)
    try:
        if reset:
            await con.execute("select pg_stat_statements_reset()")
            return 0
        return int(
            await con.fetchval(
                "select coalesce(sum(calls), 0) from pg_stat_statements where query like $1",
                f"%{PERMISSION_QUERY_MARK}%",
            )
        )
    finally:
        await con.close()


def with_fault(load: Any, at: float, fault: Any) -> Stats:
    """Run the load in a thread and the fault in this one: servers started here
    stay children of the main thread (they die with the thread that started them)."""
    result: list[Stats] = []
    thread = threading.Thread(target=lambda: result.append(load()))
    thread.start()
    time.sleep(at)
    fault()
    thread.join()
    return result[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    seconds = args.seconds
    base = Path(tempfile.mkdtemp(prefix="permgraph-soak-"))
    base.chmod(0o755)  # PostgreSQL may run as another user beneath it
    pg = EmbeddedPostgres(base / "postgres", durable=False).start()
    rd = EmbeddedRedis(base / "redis").start()
    rows: list[dict[str, Any]] = []
    try:
        url = asyncio.run(prepare(pg.url))

        async def viewer_role_id() -> int:
            con = await asyncpg.connect(url)
            try:
                return int(
                    await con.fetchval("select id from roles where name = 'viewer'")
                )
            finally:
                await con.close()

        viewer = asyncio.run(viewer_role_id())
        settings = bench_settings(url, rd.url, prod=False)

        with Server(settings) as server:
            token = login(server.url)
            stats = asyncio.run(drive(server.url, token, seconds, viewer))
            rows.append(
                stats.row(
                    "steady 90/10",
                    wrong=asyncio.run(wrong_answers(server.url, token, url)),
                )
            )
            print(table(rows[-1:], list(rows[-1])), flush=True)

            stats = with_fault(
                lambda: asyncio.run(drive(server.url, token, seconds, viewer)),
                seconds / 2,
                rd.stop,
            )
            rows.append(
                stats.row(
                    "90/10, Redis killed half-way",
                    wrong=asyncio.run(wrong_answers(server.url, token, url)),
                )
            )
            print(table(rows[-1:], list(rows[-1])), flush=True)
            rd.start()  # same port: the breaker's probe finds it again

        with Server(settings) as server:
            token = login(server.url)

            def restart_postgres() -> None:
                pg.stop()
                time.sleep(2)
                pg.start()

            stats = with_fault(
                lambda: asyncio.run(drive(server.url, token, seconds, viewer)),
                seconds / 2,
                restart_postgres,
            )
            rows.append(
                stats.row(
                    "90/10, PostgreSQL restarted half-way",
                    wrong=asyncio.run(wrong_answers(server.url, token, url)),
                )
            )
            print(table(rows[-1:], list(rows[-1])), flush=True)

            async def flush() -> None:
                async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {token}"}
                ) as s:
                    await s.post(
                        f"{server.url}/graphql",
                        json={
                            "query": "mutation { invalidatePermissionCache { __typename } }"
                        },
                    )

            hot = 2
            asyncio.run(permission_sql(url, reset=True))
            flushes = int(min(seconds, 20))
            stats = asyncio.run(
                drive(
                    server.url,
                    token,
                    flushes + 0.5,
                    viewer,
                    hot_user=hot,
                    events=[(i + 0.5, flush) for i in range(flushes)],
                )
            )
            sql = asyncio.run(permission_sql(url))
            rows.append(
                stats.row(
                    f"stampede: 1 hot user, c=16, {flushes} flushes",
                    wrong=0,
                    permission_sql=sql,
                    sql_per_flush=sql / flushes,
                )
            )
            print(table(rows[-1:], list(rows[-1])), flush=True)
        report = "\n".join(
            [
                f"# soak ({seconds:.0f} s per run, 16 connections, aiohttp client, uvicorn 1 worker)",
                "",
                table(
                    rows,
                    [
                        "scenario",
                        "requests",
                        "rps",
                        "p50_ms",
                        "p99_ms",
                        "errors",
                        "error_codes",
                        "wrong",
                        "permission_sql",
                        "sql_per_flush",
                    ],
                ),
            ]
        )
        print("\n" + report)
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "soak-latest.md").write_text(report + "\n")
    finally:
        rd.stop()
        pg.stop()


if __name__ == "__main__":
    main()
