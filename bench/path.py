"""Which files and folders one request goes through (issue 13's measure).

    .venv/bin/python bench/path.py ['{ user(id: "2") { permissions } }']

Starts its own PostgreSQL and Redis, seeds 50 users and answers the query
(default: one user's permissions) through the app's real HTTP stack in process,
as the seeded admin, five times, recording three: the first (the document
unseen, the user's entry not cached), the second (the entry cached; the
document is kept from its second validation on, schema/engine/prepared.py) and
the fifth (the steady state: the fast lane, api/lane.py, and the answer
remembered, `ResponseCache` in schema/engine/prepared.py), with the recorder of
permdev/path.py (a profile hook: every project function that starts, and its
nearest project caller). Printed per run: the files in the order first entered,
and every call that crosses from one folder into another, marked "up" when it
runs against the layer order of the import contract (pyproject.toml). Counts,
not time. tests/integration/test_request_path.py holds the steady state to it.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import sys
from pathlib import Path

import asyncpg
import httpx
from asgi_lifespan import LifespanManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.main import create_app  # noqa: E402
from bench.permissions import LOGIN, create  # noqa: E402
from permbase.settings import Settings  # noqa: E402
from permdev.embedded import services  # noqa: E402
from permdev.path import Recorder, layer_of  # noqa: E402
from permdev.seed import ADMIN_EMAIL, seed  # noqa: E402

PASSWORD = "path-" + secrets.token_urlsafe(12)
QUERY = '{ user(id: "2") { permissions } }'


def report(label: str, rec: Recorder, layers: dict[str, int]) -> None:
    print(f"{label}: {len(rec.files)} files in {len(rec.folders)} folders")
    for f in rec.files:
        print(f"    {f}")
    across, up = rec.across(), rec.upward(layers)
    print(
        f"  {len(across)} caller -> callee pairs cross a folder, {len(up)} of them up:"
    )
    for a, b, n in across:
        mark = "up " if (a, b, n) in up else "   "
        print(f"    {mark}{a} -> {b} (x{n})")


async def run(database_url: str, redis_url: str, query: str) -> None:
    settings = Settings(
        environment="prod",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=secrets.token_urlsafe(48),
        log_level="WARNING",
        permissions_cache_keep_warm=False,
    )
    con = await asyncpg.connect(database_url)
    try:
        await seed(con, admin_password=PASSWORD, users=50)
    finally:
        await con.close()
    layers = layer_of()
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://path"
        ) as client:
            login = await client.post(
                "/graphql",
                json={"query": LOGIN, "variables": {"e": ADMIN_EMAIL, "p": PASSWORD}},
            )
            token = login.json()["data"]["login"]["accessToken"]
            headers = {"Authorization": f"Bearer {token}"}
            for n in range(1, 6):
                label = {1: "first", 2: "second", 5: "steady"}.get(n)
                if label is None:
                    await client.post(
                        "/graphql", headers=headers, json={"query": query}
                    )
                    continue
                rec = Recorder()
                sys.setprofile(rec)
                try:
                    response = await client.post(
                        "/graphql", headers=headers, json={"query": query}
                    )
                finally:
                    sys.setprofile(None)
                answer = response.json()
                if response.status_code != 200 or answer.get("errors"):
                    raise RuntimeError(f"HTTP {response.status_code} {answer}")
                report(label, rec, layers)


def main() -> None:
    query = sys.argv[1] if len(sys.argv) > 1 else QUERY
    with services() as (admin_db, redis_url):
        database_url = asyncio.run(create(admin_db, "permgraph_path"))
        asyncio.run(run(database_url, re.sub(r"/\d*$", "/1", redis_url), query))


if __name__ == "__main__":
    main()
