"""What the query limits save (schema/engine/limits.py; issue 12, items 3, 5 and 6).

    .venv/bin/python bench/limits.py              # documents only, in process (~20 s, no servers)
    .venv/bin/python bench/limits.py --fan-out    # and the fan-out query against seeded servers (~1 min)

1. Documents: milliseconds per request of Strawberry's full path (parse,
   validation, execution; every document unique, as an attacker sends them, so
   no cache answers) for a trivial query, 990 unknown directives on one field
   and 1,000 copies of one field, with the shape limits off (`before`: what main
   did) and on (`after`: the defaults), and each one's ratio to the trivial query.
2. `--fan-out`: the fan-out query of item 3 from a holder of `viewer`, over
   10,000 seeded users, while a second client sends `me` requests one after
   another: the fan-out's time and answer, and the `me` requests' latencies and
   errors, with the cost limits off and a request allowed the whole pools, off
   with the default share of the pools (0.25), and the defaults. In process
   (httpx over ASGI): both clients share the event loop with the server, so
   compare rows, not absolute numbers. Run on main's code, the first two rows
   are main's behaviour.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from permbase.settings import Settings  # noqa: E402
from schema.root import build_schema  # noqa: E402

OFF = 10**9
SHAPE_OFF = {
    "max_directives_per_location": OFF,
    "max_directives": OFF,
    "max_selections_per_set": OFF,
    "max_selections": OFF,
}
COST_OFF = {"max_query_nodes": OFF, "max_query_cost": OFF}
VARIANTS: dict[str, dict[str, Any]] = {  # for the fan-out query
    "no cost limit, whole pools": {**COST_OFF, "request_pool_share": 1.0},
    "no cost limit, share 0.25": COST_OFF,
    "defaults": {},
}

DOCUMENTS = {
    "trivial": "query q0 { __typename }",
    "990 directives": "query q1 { __typename " + "@aa " * 990 + "}",
    "1,000 copies of a field": "query q2 { " + "__typename " * 1000 + "}",
}

FAN_OUT = (
    "{ roles { name members(first: null) { edges { node { createdAt roles { description"
    " members(first: null) { edges { node { email permissions } } } } } } } } }"
)


# -- 1. documents, in process ------------------------------------------------------


async def per_request_ms(
    settings: Settings, document: str, n: int
) -> tuple[float, str]:
    schema = build_schema(
        max_depth=8, max_aliases=30, max_tokens=2000, introspection=False
    )
    context = SimpleNamespace(settings=settings, principal=None, request_id="bench")
    times, outcome = [], ""
    for _ in range(n):
        # a new operation name: neither the parser nor the validation cache knows it
        query = document.replace("query q", f"query u{uuid.uuid4().hex}q", 1)
        started = time.perf_counter()
        result = await schema.execute(query, context_value=context)
        times.append((time.perf_counter() - started) * 1000)
        errors = result.errors or []
        codes = {
            (e.extensions or {}).get("code", "GRAPHQL_VALIDATION_FAILED")
            for e in errors
        }
        outcome = f"{len(errors)} errors {sorted(codes)}" if errors else "data"
    return statistics.median(times), outcome


async def documents(n: int) -> None:
    base = Settings(
        environment="prod", jwt_secret="bench-" + "x" * 40, log_level="WARNING"
    )
    rows = []
    for variant, settings in (
        ("before", base.model_copy(update=SHAPE_OFF)),
        ("after", base),
    ):
        for label, document in DOCUMENTS.items():
            await per_request_ms(settings, document, 5)  # warm imports and code paths
            ms, outcome = await per_request_ms(settings, document, n)
            rows.append((variant, label, ms, outcome))
    trivial = {v: ms for v, label, ms, _ in rows if label == "trivial"}
    print(
        "\n| document | limits | ms per request (median) | x trivial | answer |\n|---|---|---|---|---|"
    )
    for variant, label, ms, outcome in sorted(
        rows, key=lambda r: (list(DOCUMENTS).index(r[1]), r[0] != "before")
    ):
        print(
            f"| {label} | {variant} | {ms:.2f} | {ms / trivial[variant]:.1f} | {outcome} |"
        )


# -- 2. the fan-out query, against seeded servers -------------------------------------


async def fan_out(settings: Settings, label: str) -> dict[str, Any]:
    import asyncpg
    import httpx
    from asgi_lifespan import LifespanManager

    from api.main import create_app
    from permauth.tokens import TokenService

    con = await asyncpg.connect(settings.database_url)
    try:  # a holder of `viewer` (the demo seed may give it to nobody)
        email = "bench-viewer@example.com"
        viewer = await con.fetchval(
            "select id from users where email = $1", email
        ) or await con.fetchval(
            "insert into users (email, display_name) values ($1, 'bench viewer') returning id",
            email,
        )
        await con.execute(
            "insert into user_roles (user_id, role_id) select $1, id from roles where name = 'viewer' on conflict do nothing",
            viewer,
        )
    finally:
        await con.close()
    tokens = TokenService(settings)
    viewer_auth = {
        "Authorization": "Bearer " + tokens.issue(int(viewer), "access").token
    }
    admin_auth = {"Authorization": "Bearer " + tokens.issue(1, "access").token}
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=60
        ) as client:
            await client.post(
                "/graphql", json={"query": "{ me { email } }"}, headers=admin_auth
            )
            done = asyncio.Event()
            me_ms: list[float] = []
            me_errors: list[str] = []

            async def me_loop() -> None:
                while not done.is_set():
                    started = time.perf_counter()
                    body = (
                        await client.post(
                            "/graphql",
                            json={"query": "{ me { email } }"},
                            headers=admin_auth,
                        )
                    ).json()
                    me_ms.append((time.perf_counter() - started) * 1000)
                    me_errors.extend(
                        e["extensions"]["code"] for e in body.get("errors", [])
                    )

            loop = asyncio.create_task(me_loop())
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/graphql", json={"query": FAN_OUT}, headers=viewer_auth
                )
                answer = describe(response)
            except asyncio.CancelledError:
                # main's plain-text HTTP 500 (issue 12, item 4), as seen in process
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                answer = "CancelledError escaped the app (HTTP 500 under uvicorn)"
            fan_ms = (time.perf_counter() - started) * 1000
            done.set()
            await loop
    return {
        "variant": label,
        "fan-out ms": fan_ms,
        "answer": answer,
        "me requests": len(me_ms),
        "me p50 ms": statistics.median(me_ms) if me_ms else 0.0,
        "me max ms": max(me_ms, default=0.0),
        "me errors": ", ".join(sorted(set(me_errors))) or "none",
    }


def describe(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}, not JSON: {response.text[:40]!r}"
    codes = sorted(
        {e.get("extensions", {}).get("code") for e in body.get("errors", [])}
    )
    return (
        f"HTTP {response.status_code}, {len(body.get('errors', []))} errors {codes}"
        if codes
        else "data"
    )


def fan_outs(rounds: int) -> None:
    from bench.permissions import bench_settings, drop, prepare
    from permdev.embedded import services

    with services() as (admin_db, redis_url):
        url = asyncio.run(prepare(admin_db))
        settings = bench_settings(
            url, redis_url, log_level="ERROR", permissions_cache_keep_warm=False
        )
        rows = []
        try:
            for _ in range(rounds):
                for label, changes in VARIANTS.items():
                    rows.append(
                        asyncio.run(fan_out(settings.model_copy(update=changes), label))
                    )
        finally:
            asyncio.run(drop(admin_db, url))
    columns = list(rows[0])
    print("\n| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print(
            "| "
            + " | ".join(
                f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()
            )
            + " |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", type=int, default=50, help="unique documents per row (default 50)"
    )
    parser.add_argument(
        "--fan-out",
        action="store_true",
        help="also run the fan-out query against seeded servers",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="fan-out runs per variant (default 2)"
    )
    args = parser.parse_args()
    asyncio.run(documents(args.n))
    if args.fan_out:
        fan_outs(args.rounds)


if __name__ == "__main__":
    main()
