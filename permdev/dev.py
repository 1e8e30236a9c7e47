"""`make run`: the service with everything it needs, on a fresh machine.

Validates the settings first (a wrong one is one line naming it, before anything
touches a database). Uses DATABASE_URL / REDIS_URL when set, servers on the
default ports when they answer, and otherwise starts PostgreSQL and Redis itself
(permdev/embedded.py) with their data under .data/ (demo data survives a restart).
Then migrates, seeds, writes the URLs it uses to .data/dev-servers.json (for
`python -m permcore.keeper`; removed on exit), prints what is served and the admin
credentials, and serves on HOST:PORT (127.0.0.1:8000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import asyncpg
import uvicorn

from permbase.log_setup import configure_logging
from permbase.settings import Settings, settings_or_exit
from permdev.embedded import services
from permdev.seed import seed
from permstore.migrate import migrate

logger = logging.getLogger("permgraph")

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"
# read by `python -m permcore.keeper` when DATABASE_URL / REDIS_URL are not set
SERVERS_FILE = DATA_DIR / "dev-servers.json"


def _fail(message: str) -> NoReturn:
    print(f"make run: {message}", file=sys.stderr)  # noqa: T201 - this is the command's output
    raise SystemExit(2)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    try:
        return int(raw)
    except ValueError:
        _fail(f"{name}={raw!r} is not a whole number")


@contextlib.contextmanager
def _servers_file(database_url: str, redis_url: str) -> Iterator[None]:
    SERVERS_FILE.write_text(
        json.dumps({"database_url": database_url, "redis_url": redis_url})
    )
    SERVERS_FILE.chmod(0o600)
    try:
        yield
    finally:
        SERVERS_FILE.unlink(missing_ok=True)


def _served(settings: Settings, base: str) -> str:
    if settings.ide_enabled:
        return f"  GraphiQL:  {base}/graphql\n"
    return (
        f"  GraphQL:   POST {base}/graphql  (GraphiQL is off with ENVIRONMENT={settings.environment};"
        " GRAPHQL_IDE=true turns it on)\n"
    )


def _secret_file(name: str, make: str) -> str:
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make)
        path.chmod(0o600)
    return path.read_text().strip()


async def _prepare(database_url: str, admin_password: str, users: int) -> None:
    await migrate(database_url)
    con = await asyncpg.connect(database_url)
    try:
        await seed(con, admin_password=admin_password, users=users)
    finally:
        await con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
    parser.add_argument("--port", type=int, default=_int_env("PORT", 8000))
    parser.add_argument("--users", type=int, default=_int_env("SEED_USERS", 200))
    args = parser.parse_args()

    admin_password = os.environ.get("ADMIN_PASSWORD") or _secret_file(
        "admin-password", secrets.token_urlsafe(18)
    )
    if not os.environ.get("JWT_SECRET"):
        os.environ["JWT_SECRET"] = _secret_file("jwt-secret", secrets.token_urlsafe(48))
    settings = settings_or_exit("make run")
    configure_logging(settings.log_level)
    with services(DATA_DIR) as (database_url, redis_url):
        os.environ["DATABASE_URL"] = database_url
        os.environ["REDIS_URL"] = redis_url
        asyncio.run(_prepare(database_url, admin_password, args.users))
        base = f"http://{args.host}:{args.port}"
        print(  # noqa: T201 - this is the command's output
            "\n  permgraph is starting\n"
            f"{_served(settings, base)}"
            f"  admin:     admin@permgraph.local / {admin_password}\n"
            f"  postgres:  {database_url}\n  redis:     {redis_url}\n",
            flush=True,
        )
        with _servers_file(database_url, redis_url):
            uvicorn.run(
                "api.main:create_app",
                factory=True,
                host=args.host,
                port=args.port,
                log_level="warning",
                server_header=False,  # as api/serve.py
            )


if __name__ == "__main__":
    main()
