from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.main import create_app
from api.state import State
from permbase.settings import Settings
from permdev.seed import seed
from tests.conftest import ADMIN_PASSWORD
from tests.factories import APP_TABLES, acquire, token_for


@pytest.fixture(scope="session")
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, Any]]:
    """The app with its lifespan started once per session: (FastAPI app, ASGI app)."""
    application = create_app(settings)
    async with LifespanManager(application) as manager:
        yield application, manager.app


@pytest.fixture
def resources(running: tuple[FastAPI, Any]) -> State:
    state: State = running[0].state.resources
    return state


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    yield p
    await p.close()


@pytest.fixture(autouse=True)
async def clean(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, running: tuple[FastAPI, Any]
) -> None:
    """Every test starts from the seed (base roles, permissions, the admin as id 1),
    an empty Redis and a closed breaker."""
    async with acquire(pool) as con:
        await con.execute(f"truncate {APP_TABLES} restart identity cascade")
        await seed(con, admin_password=ADMIN_PASSWORD)
        # the truncate and the seed are changes too (the stream's log): an app
        # started by the test must not replay them (they would flush its cache)
        await con.execute("delete from permission_changes")
    await redis_client.flushdb()
    cache = running[0].state.resources["cache"]
    await cache.ensure_epoch()  # what an instance does at start
    cache.guarded.breaker.success()
    cache.trusted = True
    cache.before_fill = None


@pytest.fixture
async def client(running: tuple[FastAPI, Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=running[1])
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver"
    ) as c:
        yield c


@pytest.fixture
def admin_token(settings: Settings) -> str:
    return token_for(1, settings)
