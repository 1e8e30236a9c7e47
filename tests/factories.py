"""Helpers to build state and talk to the API the way a client does."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import httpx
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from prometheus_client import REGISTRY

from api.main import create_app
from api.state import State
from permauth.tokens import TokenService
from permbase.settings import Settings
from permstore.changes import STREAM_SQL
from permstore.db import query_listeners

APP_TABLES = (
    "audit_log, refresh_tokens, role_permissions, user_roles, permissions, roles, users,"
    " seed_mark, granted_permission_code, login_throttle, permission_changes"
)


class StatementLog:
    """SQL statements the app sent, as asyncpg logged them (the change stream's
    passes, which a mutation waits for but which serve every request, are left out)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def record(self, query: str) -> None:
        if query not in STREAM_SQL:
            self.statements.append(query)

    @property
    def permission_sql(self) -> int:
        """Runs of the permission loader's one query."""
        return sum(
            "role_ids bigint[], roles text[], codes text[]" in s
            for s in self.statements
        )


@asynccontextmanager
async def acquire(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection from the pool, typed as the Connection the app's functions
    take (as `permstore.db.Database.connection` yields it)."""
    async with pool.acquire() as con:
        yield con  # type: ignore[misc]  # a pool proxy behaves as its Connection; asyncpg-stubs type it apart


@contextmanager
def counting_sql() -> Iterator[StatementLog]:
    log = StatementLog()
    query_listeners.append(log.record)
    try:
        yield log
    finally:
        query_listeners.remove(log.record)


@asynccontextmanager
async def app_with(
    settings: Settings, **changes: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, State]]:
    # a reader of its own: a new reader starts at the log's current end, so an
    # app started mid-test does not replay the changes made before it
    changes.setdefault("instance_name", f"test-{secrets.token_hex(4)}")
    application = create_app(settings.model_copy(update=changes))
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as c:
            yield c, application.state.resources


async def stored(redis: aioredis.Redis, key: str) -> bytes:
    """The value Redis holds at `key`, which the test expects to be there."""
    value = await redis.get(key)
    assert isinstance(value, bytes), (key, value)
    return value


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def token_for(user_id: int, settings: Settings) -> str:
    return TokenService(settings).issue(user_id, "access").token


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    expect_errors: bool = False,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    if expect_errors:
        assert body.get("errors"), body
    else:
        assert response.status_code == 200, body
        assert "errors" not in body, body["errors"]
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors", [])]


async def insert_user(
    con: asyncpg.Connection,
    email: str,
    *,
    roles: Sequence[str] = (),
    active: bool = True,
) -> int:
    user_id = await con.fetchval(
        "insert into users (email, display_name, is_active) values ($1, $2, $3) returning id",
        email,
        email.split("@")[0],
        active,
    )
    for role in roles:
        await con.execute(
            "insert into user_roles (user_id, role_id) select $1, id from roles where name = $2",
            user_id,
            role,
        )
    return int(user_id)


__all__ = [
    "APP_TABLES",
    "StatementLog",
    "acquire",
    "app_with",
    "codes",
    "counting_sql",
    "gql",
    "insert_user",
    "metric",
    "stored",
    "token_for",
]
