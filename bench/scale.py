"""Every list field and filter of the schema at 10k, 100k and 1M users.

    .venv/bin/python bench/scale.py [--sizes 10000,100000,1000000] [--runs 30] [--out results.json]

One database per size (own PostgreSQL and Redis unless DATABASE_URL / REDIS_URL
are set), filled by the seed (permdev/seed.py: synthetic users with 1-3 of 20 team
roles each), the last 20 users deactivated, then VACUUM ANALYZE (what autovacuum
leaves behind). One app per size (prod profile; the keeper off so that it does
not compete for the CPU; its own Redis database) answers every query below
through its real HTTP stack in process (httpx's ASGI transport). Per query: 5
warm-up requests to each app, then `--runs` rounds of one request to each app in
turn, so that the load of a shared machine weighs on every size alike; the
median and p90 are printed in ms, then a table with the ratio of the largest
size to the smallest.

A page must not get more than 2x slower from 10k to 1M users. The rows of kind
"count" are exact counts (totalCount): they read every match, O(matches), by
design; "2 filters" rows merge the role's members with the emails holding the
text, in id order, until the page is full
(sql/queries/users/select_page_by_email_and_role.sql says what that costs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from bench.permissions import LOGIN, create, drop  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permdev.embedded import services  # noqa: E402
from permdev.seed import ADMIN_EMAIL, seed  # noqa: E402
from schema.pagination import encode_cursor  # noqa: E402

ADMIN_PASSWORD = "bench-" + secrets.token_urlsafe(12)
JWT_SECRET = secrets.token_urlsafe(48)
INACTIVE = 20


@dataclass(frozen=True)
class Case:
    label: str
    kind: str  # "page", "count", "2 filters", "small table"
    query: str
    variables: dict[str, Any]


def cases(size: int, role_id: str) -> list[Case]:
    """The queries at one size; texts and cursors that depend on the size are
    chosen the same way at every size (the last user, the middle user)."""
    middle = encode_cursor("user", size // 2)
    edges = "edges { node { id email } } pageInfo { hasNextPage endCursor }"
    page = (
        "query($f: UserFilter, $after: String) { users(first: 20, after: $after, filter: $f) { %s } }"
        % edges
    )
    members = "query($after: String) { roles { name members(first: 5, after: $after) { edges { node { id } } } } }"
    return [
        Case("users(first: 20)", "page", page, {}),
        Case(
            "users(first: 20, after: the middle user)", "page", page, {"after": middle}
        ),
        Case(
            "users(first: 100) { email roles { name } permissions }, warm",
            "page",
            "{ users(first: 100) { edges { node { email roles { name } permissions } } } }",
            {},
        ),
        Case(
            'users(filter: {emailContains: "user<last id>@"})',
            "page",
            page,
            {"f": {"emailContains": f"user{size}@"}},
        ),
        Case(
            'users(filter: {emailContains: "user<middle id>"})',
            "page",
            page,
            {"f": {"emailContains": f"user{size // 2}"}},
        ),
        Case(
            'users(filter: {emailContains: "example"}) (every user)',
            "page",
            page,
            {"f": {"emailContains": "example"}},
        ),
        Case(
            'users(filter: {emailContains: "9"})',
            "page",
            page,
            {"f": {"emailContains": "9"}},
        ),
        Case(
            'users(filter: {emailContains: "user1000"}) (2 at 10k, 1,112 at 1M)',
            "page",
            page,
            {"f": {"emailContains": "user1000"}},
        ),
        Case(
            'users(filter: {emailContains: "er50"}) (1.1% of users)',
            "page",
            page,
            {"f": {"emailContains": "er50"}},
        ),
        Case(
            'users(filter: {emailContains: "example", isActive: false}) (the last 20)',
            "page",
            page,
            {"f": {"emailContains": "example", "isActive": False}},
        ),
        Case(
            "users(filter: {isActive: false}) (the last 20)",
            "page",
            page,
            {"f": {"isActive": False}},
        ),
        Case(
            'users(filter: {role: "team-03"})', "page", page, {"f": {"role": "team-03"}}
        ),
        Case(
            'users(filter: {role: "team-03"}, after: the middle user)',
            "page",
            page,
            {"f": {"role": "team-03"}, "after": middle},
        ),
        Case(
            'users(filter: {role: "admin"}) (1 member)',
            "page",
            page,
            {"f": {"role": "admin"}},
        ),
        Case(
            'users(filter: {role: "team-03", emailContains: "user1"})',
            "2 filters",
            page,
            {"f": {"role": "team-03", "emailContains": "user1"}},
        ),
        Case(
            'users(filter: {role: "team-03", emailContains: "user<last id>@"})',
            "2 filters",
            page,
            {"f": {"role": "team-03", "emailContains": f"user{size}@"}},
        ),
        Case(
            'users(filter: {role: "team-03", emailContains: "er50"}) (0.1% of users)',
            "2 filters",
            page,
            {"f": {"role": "team-03", "emailContains": "er50"}},
        ),
        Case(
            'users(filter: {role: "admin", emailContains: "@example.com"}) (none)',
            "2 filters",
            page,
            {"f": {"role": "admin", "emailContains": "@example.com"}},
        ),
        Case(
            "roles { name members(first: 5) { edges { node { id } } } }",
            "page",
            members,
            {},
        ),
        Case(
            "roles { members(first: 5, after: the middle user) }",
            "page",
            members,
            {"after": middle},
        ),
        Case(
            "role(id) { members(first: 20) { email } }",
            "page",
            "query($id: ID!) { role(id: $id) { members(first: 20) { edges { node { id email } } } } }",
            {"id": role_id},
        ),
        Case(
            "roles { name description permissions { code } }",
            "small table",
            "{ roles { name description permissions { code } } }",
            {},
        ),
        Case("permissions { code }", "small table", "{ permissions { code } }", {}),
        Case(
            "auditLog(first: 20)",
            "small table",
            "{ auditLog(first: 20) { entries { id action } hasNextPage } }",
            {},
        ),
        Case("users { totalCount }", "count", "{ users(first: 1) { totalCount } }", {}),
        Case(
            'users(filter: {emailContains: "user<last id>@"}) { totalCount }',
            "count",
            "query($f: UserFilter) { users(first: 1, filter: $f) { totalCount } }",
            {"f": {"emailContains": f"user{size}@"}},
        ),
        Case(
            'users(filter: {role: "team-03"}) { totalCount }',
            "count",
            "query($f: UserFilter) { users(first: 1, filter: $f) { totalCount } }",
            {"f": {"role": "team-03"}},
        ),
        Case(
            "role(id) { members { totalCount } }",
            "count",
            "query($id: ID!) { role(id: $id) { members(first: 1) { totalCount } } }",
            {"id": role_id},
        ),
    ]


async def fill(url: str, size: int) -> float:
    """The seed with `size` users, settled; seconds it took."""
    con = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await seed(con, admin_password=ADMIN_PASSWORD, users=size)
        await con.execute(
            "update users set is_active = false where id in (select id from users order by id desc limit $1)",
            INACTIVE,
        )
        await con.execute("vacuum analyze")
        return time.perf_counter() - started
    finally:
        await con.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Instance:
    size: int
    client: httpx.AsyncClient
    headers: dict[str, str]
    cases: list[Case]


async def start(
    stack: contextlib.AsyncExitStack, settings: Settings, size: int
) -> Instance:
    manager = await stack.enter_async_context(LifespanManager(create_app(settings)))
    transport = httpx.ASGITransport(app=manager.app)
    client = await stack.enter_async_context(
        httpx.AsyncClient(transport=transport, base_url="http://bench", timeout=60)
    )
    login = await client.post(
        "/graphql",
        json={
            "query": LOGIN,
            "variables": {"e": ADMIN_EMAIL, "p": ADMIN_PASSWORD},
        },
    )
    headers = {
        "Authorization": f"Bearer {login.json()['data']['login']['accessToken']}"
    }
    roles = await client.post(
        "/graphql", headers=headers, json={"query": "{ roles { id name } }"}
    )
    role_id = next(
        r["id"] for r in roles.json()["data"]["roles"] if r["name"] == "team-03"
    )
    return Instance(size, client, headers, cases(size, role_id))


async def timed(instance: Instance, case: Case) -> float:
    started = time.perf_counter()
    response = await instance.client.post(
        "/graphql",
        headers=instance.headers,
        json={"query": case.query, "variables": case.variables},
    )
    elapsed = (time.perf_counter() - started) * 1000
    answer = response.json()
    if response.status_code != 200 or answer.get("errors"):
        msg = f"{case.label} at {instance.size}: HTTP {response.status_code} {answer}"
        raise RuntimeError(msg)
    return elapsed


async def measure(
    settings: dict[int, Settings], runs: int
) -> dict[int, dict[str, dict[str, Any]]]:
    out: dict[int, dict[str, dict[str, Any]]] = {size: {} for size in settings}
    async with contextlib.AsyncExitStack() as stack:
        instances = [
            await start(stack, s, size) for size, s in sorted(settings.items())
        ]
        for n, label in enumerate(c.label for c in instances[0].cases):
            times: dict[int, list[float]] = {i.size: [] for i in instances}
            for i in instances:
                for _ in range(5):
                    await timed(i, i.cases[n])
            for _ in range(runs):
                for i in instances:
                    times[i.size].append(await timed(i, i.cases[n]))
            line = []
            for i in instances:
                out[i.size][label] = {
                    "kind": i.cases[n].kind,
                    "median": statistics.median(times[i.size]),
                    "p90": pct(times[i.size], 0.9),
                }
                line.append(f"{i.size:,}: {out[i.size][label]['median']:.2f}")
            print(f"{label}: median ms {', '.join(line)}", flush=True)
    return out


def table(results: dict[int, dict[str, dict[str, Any]]]) -> str:
    sizes = sorted(results)
    first, last = sizes[0], sizes[-1]
    head = [
        "query",
        "kind",
        *[f"{s:,} users" for s in sizes],
        f"{last // 1000:,}k / {first // 1000:,}k",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, row in results[first].items():
        cells = [f"{results[s][label]['median']:.2f}" for s in sizes]
        ratio = results[last][label]["median"] / row["median"]
        lines.append(
            f"| `{label}` | {row['kind']} | " + " | ".join(cells) + f" | {ratio:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path, help="also write the results here (JSON)")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with services() as (admin_db, redis_url):
        urls: dict[int, str] = {}
        try:
            for size in sizes:
                urls[size] = asyncio.run(create(admin_db, "permgraph_scale"))
                seconds = asyncio.run(fill(urls[size], size))
                print(f"seeded {size:,} users in {seconds:.0f} s", flush=True)
            settings = {
                size: Settings(
                    environment="prod",
                    database_url=urls[size],
                    redis_url=re.sub(r"/\d*$", f"/{n + 1}", redis_url),
                    jwt_secret=JWT_SECRET,
                    log_level="WARNING",
                    permissions_cache_keep_warm=False,
                )
                for n, size in enumerate(sizes)
            }
            results = asyncio.run(measure(settings, args.runs))
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
        finally:
            for url in urls.values():
                asyncio.run(drop(admin_db, url))
    print()
    print(
        f"median ms per request ({args.runs} rounds after 5 warm-up requests, one request at a time, "
        f"in process; {os.cpu_count()} cores shared with PostgreSQL and Redis)"
    )
    print(table(results))


if __name__ == "__main__":
    main()
