"""Test session: real PostgreSQL and Redis, started once per session.

DATABASE_URL / REDIS_URL are used when set; otherwise servers already answering
on 5432/6379; otherwise throwaway servers from pip-installed binaries in a
temporary directory (permdev/embedded.py). Either way the session works in a
database of its own (random name, dropped at the end) and a Redis database it
flushes, so it never touches anything else.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from permbase.settings import Settings
from permdev.embedded import services
from permstore.migrate import migrate

JWT_SECRET = "test-secret-" + "x" * 40
ADMIN_PASSWORD = "admin-password-for-tests"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    with services() as (database_url, redis_url):
        yield database_url, redis_url


@pytest.fixture(scope="session")
async def database_url(servers: tuple[str, str]) -> AsyncIterator[str]:
    admin_url = servers[0]
    name = f"permgraph_test_{secrets.token_hex(4)}"
    con = await asyncpg.connect(admin_url)
    await con.execute(f'create database "{name}"')
    await con.close()
    url = _with_database(admin_url, name)
    await migrate(url)
    yield url
    con = await asyncpg.connect(admin_url)
    await con.execute(f'drop database if exists "{name}" with (force)')
    await con.close()


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str]) -> str:
    url = servers[1]
    if os.environ.get(
        "REDIS_URL"
    ):  # a shared server: use database 15, flushed per test
        parts = urlsplit(url)
        url = urlunsplit(parts._replace(path="/15"))
    return url


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        jwt_secret=JWT_SECRET,
        db_pool_min_size=1,
        breaker_cooldown_s=0.5,
        redis_socket_timeout_s=0.05,  # the hung-Redis tests stay quick; nothing here saturates the CPU
        # the change stream of the shared app stays idle (tests count Redis calls
        # and fills); tests/integration/test_change_stream.py drives its own
        change_poll_interval_s=3600,
        change_listen=False,
        instance_name=f"test-session-{secrets.token_hex(4)}",
        permissions_cache_keep_warm=False,  # tests count permission SQL; test_warm.py runs the keeper itself
        log_level="WARNING",
    )


@pytest.fixture(scope="session")
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()
