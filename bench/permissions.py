"""Permission resolution benchmark: the replaced design against the loader.

    .venv/bin/python bench/permissions.py [--quick] [--zipf-seconds 60]

Starts its own PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set, in
which case it creates and drops a database of its own), seeds 10,000 users and
prints, side by side in one run:

1. in process, for a page of N users (N = 1, 10, 100, 1000): (a) the replaced
   design (one GET per user, one JOIN query per miss, one SET per miss) and
   (b) the loader (one MGET, one query for all misses, one write-back), on a
   cold and a warm cache: Redis round trips, SQL statements, median and p99;
2. through the real HTTP endpoint (uvicorn, one worker; load from wrk): the
   same page at concurrency 1 and 16, and the 100-user page with and without
   the permissions field;
3. a Zipf (s=1.1) read mix of `user(id) { permissions }` over all users for
   --zipf-seconds, with and without the cache, and the reduction in
   permission SQL statements (pg_stat_statements): read-through only, and with
   the keeper (permcore/keeper.py), each from a cold start and in a second minute;
4. the queries PostGraphile was measured on, with the fast lane (api/lane.py)
   on and off, against PostGraphile's numbers on this machine.

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loaders.permissions_per_user import load_access_one_by_one  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permcore.cache import PermissionCache  # noqa: E402
from permcore.client import CountingConnection, create_redis  # noqa: E402
from permcore.read import load_access_by_user_id  # noqa: E402
from permdev.embedded import free_port, services  # noqa: E402
from permdev.seed import ADMIN_EMAIL, seed  # noqa: E402
from permstore import changes  # noqa: E402
from permstore.db import create_database, query_listeners  # noqa: E402
from permstore.migrate import migrate  # noqa: E402

USERS = 10_000
ADMIN_PASSWORD = "bench-admin-password-" + secrets.token_hex(4)
JWT_SECRET = secrets.token_urlsafe(48)


def bench_settings(
    database_url: str, redis_url: str, *, prod: bool = True, **changes: Any
) -> Settings:
    """A benchmark's settings: its own servers, this run's JWT secret; `prod`:
    the production profile, logging warnings only (else the test profile)."""
    profile: dict[str, Any] = (
        {"environment": "prod", "log_level": "WARNING"}
        if prod
        else {"environment": "test"}
    )
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        **{**profile, **changes},
    )


PERMISSION_QUERY_MARK = (
    "coalesce(p.codes"  # in the loader query (pg_stat_statements drops comments)
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def count_statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def record(query: str) -> None:
        if (
            query not in changes.STREAM_SQL
        ):  # the change stream's own, in the background
            seen.append(query)

    query_listeners.append(record)
    try:
        yield seen
    finally:
        query_listeners.remove(record)


# -- 1. in process ------------------------------------------------------------


async def in_process(
    settings: Settings, sizes: list[int], reps: int
) -> list[dict[str, Any]]:
    db = await create_database(settings)
    redis = create_redis(settings)
    cache = PermissionCache(redis, settings)
    cache.trusted = True
    await cache.prepare()
    variants: dict[str, Callable[..., Awaitable[Any]]] = {
        "per-user (old)": load_access_one_by_one,
        "loader": load_access_by_user_id,
    }
    rows = []
    try:
        for n in sizes:
            ids = list(range(2, n + 2))
            for name, fn in variants.items():
                for temperature in ("cold", "warm"):
                    times, trips, stmts = [], [], []
                    runs = max(3, reps // (1 if n < 1000 else 4))
                    for _ in range(runs):
                        await redis.flushdb()
                        await cache.ensure_epoch()  # as an instance does at start
                        if temperature == "warm":
                            await fn(ids, db=db, cache=cache)
                        before = CountingConnection.round_trips
                        with count_statements() as seen:
                            started = time.perf_counter()
                            await fn(ids, db=db, cache=cache)
                            times.append((time.perf_counter() - started) * 1000)
                        trips.append(CountingConnection.round_trips - before)
                        stmts.append(len(seen))
                    rows.append(
                        {
                            "n": n,
                            "variant": name,
                            "cache": temperature,
                            "redis_round_trips": statistics.median(trips),
                            "sql": statistics.median(stmts),
                            "p50_ms": statistics.median(times),
                            "p99_ms": pct(times, 0.99),
                        }
                    )
    finally:
        await redis.aclose()
        await db.close()
    return rows


# -- 2. and 3. over HTTP ----------------------------------------------------------


class Server:
    """The real app under uvicorn, one worker, in a subprocess."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "ENVIRONMENT": "prod",
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url,
            "JWT_SECRET": JWT_SECRET,
            "LOG_LEVEL": "WARNING",
            "DB_POOL_MAX_SIZE": "10",
            # sections 1-2 compare loaders on caches they fill themselves; the
            # Zipf section turns the keeper on where it measures it
            "PERMISSIONS_CACHE_KEEP_WARM": "false",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=self.env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(timeout=20)


LOGIN = (
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) "
    "{ ... on AuthPayload { accessToken } } }"
)  # variables e, p; the benchmarks' one login


def login(url: str) -> str:
    body = httpx.post(
        f"{url}/graphql",
        json={"query": LOGIN, "variables": {"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD}},
        timeout=10,
    ).json()
    return str(body["data"]["login"]["accessToken"])


def lua_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def wrk(
    url: str, token: str, script_body: str, connections: int, seconds: int
) -> dict[str, float]:
    script = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
{script_body}
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %f %f %f\\n", summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                f.name,
                f"{url}/graphql",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(f.name)
    match = re.search(r"RESULT (\d+) (\d+) (\d+) ([\d.]+) ([\d.]+) ([\d.]+)", out)
    assert match, out
    requests, errors, duration_us = int(match[1]), int(match[2]), int(match[3])
    return {
        "rps": requests / (duration_us / 1e6),
        "errors": errors,
        "requests": requests,
        "p50_ms": float(match[4]) / 1000,
        "p99_ms": float(match[5]) / 1000,
    }


def aiohttp_load(
    url: str, token: str, body: str, connections: int, seconds: int
) -> dict[str, float]:
    """Fallback when wrk is not installed (apt-get install wrk)."""
    import aiohttp

    async def run() -> dict[str, float]:
        latencies: list[float] = []
        errors = 0
        deadline = time.monotonic() + seconds
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        }
        async with aiohttp.ClientSession(headers=headers) as session:

            async def worker() -> None:
                nonlocal errors
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    async with session.post(f"{url}/graphql", data=body) as response:
                        await response.read()
                        if response.status != 200:
                            errors += 1
                    latencies.append((time.perf_counter() - started) * 1000)

            started = time.monotonic()
            await asyncio.gather(*[worker() for _ in range(connections)])
            elapsed = time.monotonic() - started
        return {
            "rps": len(latencies) / elapsed,
            "errors": errors,
            "requests": len(latencies),
            "p50_ms": statistics.median(latencies),
            "p99_ms": pct(latencies, 0.99),
        }

    return asyncio.run(run())


def load(
    url: str, token: str, query: str, connections: int, seconds: int
) -> dict[str, float]:
    body = httpx.Request("POST", "http://x", json={"query": query}).content.decode()
    if shutil.which("wrk"):
        return wrk(url, token, f"wrk.body = '{lua_escape(body)}'", connections, seconds)
    return aiohttp_load(url, token, body, connections, seconds)


def page_query(n: int, permissions: bool = True, fields: str | None = None) -> str:
    fields = fields or ("id permissions" if permissions else "id")
    # after the admin (id 1): synthetic users only
    return '{ users(first: %d, after: "dXNlcjox") { edges { node { %s } } } }' % (
        n,
        fields,
    )


def http_matrix(
    settings: Settings, sizes: list[int], seconds: int, reps: int = 3
) -> list[dict[str, Any]]:
    """Both variants run at once (two servers, one loaded at a time); runs are
    interleaved old/new `reps` times and the median is kept, because on two
    shared cores one run of a few seconds varies by +-20 %."""
    rows = []
    with (
        Server(settings, PERMISSIONS_LOADER="per_user") as old,
        Server(settings) as new,
    ):
        servers = {
            "per-user (old)": (old, login(old.url)),
            "loader": (new, login(new.url)),
        }
        for n in sizes:
            query = page_query(n)
            for server, token in servers.values():
                load(
                    server.url, token, query, 4, 2
                )  # warm the cache and the connections
            for c in (1, 16):
                runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                for _ in range(reps):
                    for name, (server, token) in servers.items():
                        runs[name].append(load(server.url, token, query, c, seconds))
                for name, results in runs.items():
                    rows.append(
                        {"variant": name, "n": n, "c": c, **_median_run(results)}
                    )
        server, token = servers["loader"]
        queries = {
            "without": page_query(100, permissions=False),
            "with": page_query(100),
        }
        for query in queries.values():
            load(server.url, token, query, 4, 2)
        runs = {label: [] for label in queries}
        for _ in range(reps):
            for label, query in queries.items():
                runs[label].append(load(server.url, token, query, 8, seconds))
        for label, results in runs.items():
            rows.append(
                {
                    "variant": f"loader, 100 users, {label} permissions",
                    "n": 100,
                    "c": 8,
                    **_median_run(results),
                }
            )
    return rows


# PostGraphile serving the same 10,000 users on this machine (wrk, 8 connections)
POSTGRAPHILE_RPS = {
    "one user's permissions": 7900,
    "100 users with roles and permissions": 240,
}


def small_queries(
    settings: Settings, seconds: int, reps: int = 3
) -> list[dict[str, Any]]:
    """The queries PostGraphile was measured on, with the fast lane on and off
    (two servers, interleaved runs, medians), c=8."""
    queries = {
        "one user's permissions": '{ user(id: "4242") { permissions } }',
        "one user's email and permissions": '{ user(id: "4242") { email permissions } }',
        "100 users with roles and permissions": page_query(
            100, fields="id roles { name } permissions"
        ),
    }
    rows = []
    with Server(settings) as lane, Server(settings, GRAPHQL_FAST_LANE="false") as full:
        servers = {
            "fast lane": (lane, login(lane.url)),
            "full path": (full, login(full.url)),
        }
        for query in queries.values():
            for server, token in servers.values():
                load(
                    server.url, token, query, 4, 2
                )  # warm the cache, the connections, the lane
        for label, query in queries.items():
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
            for _ in range(reps):
                for name, (server, token) in servers.items():
                    runs[name].append(load(server.url, token, query, 8, seconds))
            for name, results in runs.items():
                rows.append(
                    {
                        "query": label,
                        "variant": name,
                        "c": 8,
                        **_median_run(results),
                        "postgraphile_rps": POSTGRAPHILE_RPS.get(label, ""),
                    }
                )
    return rows


def small_ratios(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    by = {(r["query"], r["variant"]): r for r in rows}
    for (query, variant), r in by.items():
        if variant != "fast lane":
            continue
        full = by[(query, "full path")]
        line = f"- {query}: fast lane {r['rps']:.0f} req/s vs full path {full['rps']:.0f} = {r['rps'] / full['rps']:.2f}x"
        if query in POSTGRAPHILE_RPS:
            line += f"; vs PostGraphile ~{POSTGRAPHILE_RPS[query]} = {r['rps'] / POSTGRAPHILE_RPS[query]:.2f}x"
        out.append(line)
    return out


def _median_run(results: list[dict[str, float]]) -> dict[str, float]:
    ordered = sorted(results, key=lambda r: r["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["errors"] = sum(r["errors"] for r in results)
    middle["runs"] = len(results)
    middle["rps_min"], middle["rps_max"] = ordered[0]["rps"], ordered[-1]["rps"]
    return middle


ZIPF_LUA = """
local n = %d
local s = 1.1
local cdf, total = {}, 0
for i = 1, n do total = total + 1 / (i ^ s); cdf[i] = total end
for i = 1, n do cdf[i] = cdf[i] / total end
math.randomseed(%d)
request = function()
  local r = math.random()
  local lo, hi = 1, n
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < r then lo = mid + 1 else hi = mid end
  end
  -- rank -> user id, scattered so that the hot users are not neighbours
  local id = ((lo * 7919) %% n) + 2
  return wrk.format(nil, nil, nil, '{"query":"{ user(id: \\\\"' .. id .. '\\\\") { permissions } }"}')
end
"""


async def pg_permission_calls(database_url: str) -> int:
    con = await asyncpg.connect(database_url)
    try:
        value = await con.fetchval(
            "select coalesce(sum(calls), 0) from pg_stat_statements where query like $1",
            f"%{PERMISSION_QUERY_MARK}%",
        )
        return int(value)
    finally:
        await con.close()


async def pg_reset(database_url: str) -> None:
    con = await asyncpg.connect(database_url)
    try:
        await con.execute("select pg_stat_statements_reset()")
    finally:
        await con.close()


def zipf_runs(settings: Settings, seconds: int) -> list[dict[str, Any]]:
    """Each variant starts a server on an empty Redis; a cold-start window counts
    every permission query from before the server started (the keeper's passes
    included), a second window the minute after."""
    rows = []
    variants = [
        ({"PERMISSIONS_CACHE_ENABLED": "false"}, ["no cache"]),
        ({}, ["read-through, cold start", "read-through, second minute"]),
        (
            {"PERMISSIONS_CACHE_KEEP_WARM": "true"},
            ["keeper, cold start", "keeper, second minute"],
        ),
    ]
    for env, windows in variants:
        asyncio.run(_flush(settings.redis_url))
        asyncio.run(pg_reset(settings.database_url))
        with Server(settings, **env) as server:
            token = login(server.url)
            for window, label in enumerate(windows):
                if window:
                    asyncio.run(pg_reset(settings.database_url))
                script = ZIPF_LUA % (USERS, 42 + window)
                result = wrk(server.url, token, script, 16, seconds)
                calls = asyncio.run(pg_permission_calls(settings.database_url))
                rows.append(
                    {
                        "variant": label,
                        **result,
                        "permission_sql": calls,
                        "sql_per_request": calls / max(1, result["requests"]),
                    }
                )
    return rows


async def _flush(redis_url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()


# -- setup and report ------------------------------------------------------------


async def create(admin_url: str, prefix: str) -> str:
    """A new database beside `admin_url`'s, migrated; its URL (drop it with `drop`)."""
    name = f"{prefix}_{secrets.token_hex(3)}"
    con = await asyncpg.connect(admin_url)
    await con.execute(f'create database "{name}"')
    await con.close()
    url = re.sub(r"/[^/]*$", f"/{name}", admin_url)
    await migrate(url)
    return url


async def prepare(admin_url: str) -> str:
    url = await create(admin_url, "permgraph_bench")
    con = await asyncpg.connect(url)
    try:
        await con.execute("create extension if not exists pg_stat_statements")
        started = time.perf_counter()
        await seed(con, admin_password=ADMIN_PASSWORD, users=USERS)
        print(f"seeded {USERS} users in {time.perf_counter() - started:.2f}s")
    finally:
        await con.close()
    return url


async def drop(admin_url: str, url: str) -> None:
    con = await asyncpg.connect(admin_url)
    await con.execute(f'drop database if exists "{url.rsplit("/", 1)[1]}" with (force)')
    await con.close()


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.2f}" if v < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows
    ]
    return "\n".join(lines)


def ratios(http_rows: list[dict[str, Any]]) -> list[str]:
    out = []
    by = {(r["variant"], r["n"], r["c"]): r for r in http_rows}
    for (variant, n, c), r in sorted(by.items(), key=lambda kv: (kv[0][1], kv[0][2])):
        if (
            variant == "loader"
            and ("per-user (old)", n, c) in by
            and by[("per-user (old)", n, c)]["rps"] > 0
        ):
            old = by[("per-user (old)", n, c)]
            out.append(
                f"- N={n}, c={c}: loader {r['rps']:.0f} req/s vs old {old['rps']:.0f} req/s = {r['rps'] / old['rps']:.2f}x"
            )
    with_p = by.get(("loader, 100 users, with permissions", 100, 8))
    without = by.get(("loader, 100 users, without permissions", 100, 8))
    if with_p and without:
        out.append(
            f"- warm 100-user page, with / without permissions: cost ratio {without['rps'] / with_p['rps']:.2f}x (target <= 1.5x)"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short runs (smoke test of the script)"
    )
    parser.add_argument("--zipf-seconds", type=int, default=60)
    parser.add_argument("--http-seconds", type=int, default=5)
    parser.add_argument(
        "--parts", default="1,2,3,4", help="which sections to run, e.g. 2 or 3,4"
    )
    args = parser.parse_args()
    sizes = [1, 10, 100, 1000]
    http_seconds = 2 if args.quick else args.http_seconds
    zipf_seconds = 5 if args.quick else args.zipf_seconds
    reps = 5 if args.quick else 30

    with services() as (admin_db, redis_url):
        url = asyncio.run(prepare(admin_db))
        settings = bench_settings(url, redis_url, prod=False)
        try:
            report = [
                f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
                f"load generator: {'wrk' if shutil.which('wrk') else 'aiohttp'}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            ]
            parts = set(args.parts.split(","))
            if "1" in parts:
                rows = asyncio.run(in_process(settings, sizes, reps))
                report += [
                    "",
                    "## 1. Permission resolution in process (per page of N users)",
                    "",
                    table(
                        rows,
                        [
                            "n",
                            "variant",
                            "cache",
                            "redis_round_trips",
                            "sql",
                            "p50_ms",
                            "p99_ms",
                        ],
                    ),
                ]
            print("\n".join(report), flush=True)
            http_rows = (
                http_matrix(settings, sizes, http_seconds) if "2" in parts else []
            )
            section = (
                []
                if not http_rows
                else [
                    "",
                    "## 2. Through HTTP (uvicorn, 1 worker, wrk; median of interleaved runs; the caller's own check adds 1 MGET per request)",
                    "",
                    table(
                        http_rows,
                        [
                            "variant",
                            "n",
                            "c",
                            "rps",
                            "rps_min",
                            "rps_max",
                            "p50_ms",
                            "p99_ms",
                            "errors",
                        ],
                    ),
                    "",
                    *ratios(http_rows),
                ]
            )
            print("\n".join(section), flush=True)
            report += section
            if "4" in parts:
                small = small_queries(settings, http_seconds)
                section = [
                    "",
                    "## 4. The queries PostGraphile was measured on (wrk -c8; fast lane on and off; median of interleaved runs)",
                    "",
                    table(
                        small,
                        [
                            "query",
                            "variant",
                            "rps",
                            "rps_min",
                            "rps_max",
                            "p50_ms",
                            "p99_ms",
                            "errors",
                            "postgraphile_rps",
                        ],
                    ),
                    "",
                    *small_ratios(small),
                ]
                print("\n".join(section), flush=True)
                report += section
            if "3" not in parts:
                return
            zipf = zipf_runs(settings, zipf_seconds)
            base = next(r for r in zipf if r["variant"] == "no cache")[
                "sql_per_request"
            ]
            lines = [
                f"- {r['variant']}: {r['sql_per_request']:.4f} permission SQL per request, "
                f"{100 * (1 - r['sql_per_request'] / base):.2f} % fewer than no cache"
                for r in zipf
                if r["variant"] != "no cache"
            ]
            section = [
                "",
                f"## 3. Zipf (s=1.1) over {USERS} users, {zipf_seconds} s per window, c=16",
                "",
                table(
                    zipf,
                    [
                        "variant",
                        "requests",
                        "rps",
                        "p50_ms",
                        "p99_ms",
                        "errors",
                        "permission_sql",
                        "sql_per_request",
                    ],
                ),
                "",
                *lines,
            ]
            print("\n".join(section), flush=True)
            report += section
            out = ROOT / "bench" / "results"
            out.mkdir(exist_ok=True)
            (out / "permissions-latest.md").write_text("\n".join(report) + "\n")
        finally:
            asyncio.run(drop(admin_db, url))


if __name__ == "__main__":
    main()
