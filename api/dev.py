"""`make run`: the service with everything it needs, on a fresh machine.

Uses DATABASE_URL / REDIS_URL when set, servers on the default ports when they
answer, and otherwise starts PostgreSQL and Redis itself (api/embedded.py) with
their data under .data/ (demo data survives a restart). Then migrates, seeds,
prints the GraphiQL URL and the admin credentials, and serves on 127.0.0.1:8000.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from pathlib import Path

import asyncpg
import uvicorn

from api.embedded import services
from api.log_setup import configure_logging
from api.migrate import migrate
from api.seed import seed

logger = logging.getLogger("permgraph")

DATA_DIR = Path(__file__).resolve().parent.parent / ".data"


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
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--users", type=int, default=int(os.environ.get("SEED_USERS", "200")))
    args = parser.parse_args()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO"))

    admin_password = os.environ.get("ADMIN_PASSWORD") or _secret_file("admin-password", secrets.token_urlsafe(18))
    os.environ.setdefault("JWT_SECRET", _secret_file("jwt-secret", secrets.token_urlsafe(48)))
    with services(DATA_DIR) as (database_url, redis_url):
        os.environ["DATABASE_URL"] = database_url
        os.environ["REDIS_URL"] = redis_url
        asyncio.run(_prepare(database_url, admin_password, args.users))
        print(  # noqa: T201 - this is the command's output
            "\n  permgraph is starting\n"
            f"  GraphiQL:  http://{args.host}:{args.port}/graphql\n"
            f"  admin:     admin@permgraph.local / {admin_password}\n"
            f"  postgres:  {database_url}\n  redis:     {redis_url}\n",
            flush=True,
        )
        uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
