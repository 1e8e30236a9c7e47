"""CPU per request, in process, without HTTP: the number to watch when changing
the GraphQL layer (HTTP runs on two shared cores vary by +-20 %; this varies
by a few per cent).

    .venv/bin/python bench/cpu.py [--rounds 7]

Seeds 10,000 users (own PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are
set), warms the cache, then for each query runs rounds of N executions and
prints the CPU milliseconds per request (time.process_time: the event loop,
the Redis client and GraphQL execution; PostgreSQL and Redis run in other
processes), minimum and median over rounds, for:

- the prepared path (schema/engine/prepared.py: execution as the fast lane runs it),
- Strawberry's full `Schema.execute` with the parser and validation caches, and
- the lane's whole answer with remembered answers (`ResponseCache`, schema/engine/prepared.py):
  the same as prepared, plus serialisation, for answers that read rows; an MGET
  and the remembered bytes for those made of permission entries alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from asgi_lifespan import LifespanManager
from graphql import parse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from bench.permissions import bench_settings, drop, prepare  # noqa: E402
from permauth.tokens import TokenService  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permdev.embedded import services  # noqa: E402
from schema.context import Context  # noqa: E402
from schema.engine.prepared import (  # noqa: E402
    Prepared,
    ResponseCache,
    answer_prepared,
    execute_prepared,
)
from schema.root import build_schema  # noqa: E402

QUERIES = {
    "one user's permissions": ('{ user(id: "4242") { permissions } }', 3000),
    "the caller's permissions": ("{ me { id permissions } }", 3000),
    "one user's email and permissions": (
        '{ user(id: "4242") { email permissions } }',
        2000,
    ),
    "100 users, ids only": (
        '{ users(first: 100, after: "dXNlcjox") { edges { node { id } } } }',
        300,
    ),
    "100 users with permissions": (
        '{ users(first: 100, after: "dXNlcjox") { edges { node { id permissions } } } }',
        300,
    ),
    "100 users with roles and permissions": (
        '{ users(first: 100, after: "dXNlcjox") { edges { node { id roles { name } permissions } } } }',
        300,
    ),
}


async def measure(settings: Settings, rounds: int) -> list[dict[str, Any]]:
    app = create_app(settings)
    rows = []
    async with LifespanManager(app):
        state = app.state.resources
        authorization = "Bearer " + TokenService(settings).issue(1, "access").token
        schema = build_schema(
            max_depth=8, max_aliases=30, max_tokens=2000, introspection=False
        )
        for label, (query, n) in QUERIES.items():
            document = parse(query)

            async def prepared(document: Any = document) -> Any:
                ctx = Context(state, authorization, None)
                return await execute_prepared(
                    schema._schema,
                    document,
                    context=ctx,
                    variables=None,
                    operation_name=None,
                )

            async def full(query: str = query) -> Any:
                ctx = Context(state, authorization, None)
                return await schema.execute(query, context_value=ctx)

            async def remembered(
                query: str = query,
                document: Any = document,
                responses: ResponseCache = ResponseCache(16),  # noqa: B008 - one per query, on purpose
            ) -> Any:
                ctx = Context(state, authorization, None)
                return await answer_prepared(
                    schema._schema,
                    Prepared(document),
                    query,
                    context=ctx,
                    variables=None,
                    operation_name=None,
                    want_cost=False,
                    responses=responses,
                )

            variants: dict[str, Callable[[], Awaitable[Any]]] = {
                "prepared": prepared,
                "full": full,
                # the lane with remembered answers (only entry-only answers replay)
                "remembered": remembered,
            }
            times: dict[str, list[float]] = {name: [] for name in variants}
            for fn in variants.values():
                for _ in range(20):  # warm: cache entries, parser and validation caches
                    result = await fn()
                    if isinstance(result, bytes):
                        result = orjson.loads(result)
                    assert not (
                        result.get("errors")
                        if isinstance(result, dict)
                        else result.errors
                    ), result
            for _ in range(rounds):  # interleaved, so drift hits both alike
                for name, fn in variants.items():
                    started = time.process_time()
                    for _ in range(n):
                        await fn()
                    times[name].append((time.process_time() - started) / n * 1000)
            for name, values in times.items():
                rows.append(
                    {
                        "query": label,
                        "path": name,
                        "min": min(values),
                        "median": statistics.median(values),
                    }
                )
            medians = {name: statistics.median(v) for name, v in times.items()}
            print(
                f"{label}: "
                + ", ".join(f"{name} {m:.3f} ms" for name, m in medians.items())
                + f" of CPU per request (full/prepared {medians['full'] / medians['prepared']:.2f}x,"
                f" prepared/remembered {medians['prepared'] / medians['remembered']:.2f}x)",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with services() as (admin_db, redis_url):
        url = asyncio.run(prepare(admin_db))
        settings = bench_settings(url, redis_url, permissions_cache_keep_warm=False)
        try:
            rows = asyncio.run(measure(settings, args.rounds))
        finally:
            asyncio.run(drop(admin_db, url))
    print("\n| query | path | CPU ms per request (min) | (median) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['query']} | {r['path']} | {r['min']:.3f} | {r['median']:.3f} |")


if __name__ == "__main__":
    main()
