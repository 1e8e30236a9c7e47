"""Migrations, seed, health: against a real PostgreSQL (a database of their own)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.main import create_app
from permbase.settings import Settings
from permdev.embedded import free_port
from permdev.seed import ADMIN_EMAIL, seed
from permstore.migrate import MigrationError, apply, discover


@pytest.fixture
async def empty_db(servers: tuple[str, str]) -> AsyncIterator[asyncpg.Connection]:
    admin_url = servers[0]
    name = f"permgraph_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'create database "{name}"')
    con = await asyncpg.connect(
        urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    )
    yield con
    await con.close()
    await admin.execute(f'drop database "{name}" with (force)')
    await admin.close()


async def test_migrations_apply_once_and_refuse_a_changed_file(
    empty_db: asyncpg.Connection,
) -> None:
    migrations = discover()
    assert await apply(empty_db, migrations) == [m.name for m in migrations]
    tables = {
        r["tablename"]
        for r in await empty_db.fetch(
            "select tablename from pg_tables where schemaname = 'public'"
        )
    }
    assert {
        "users",
        "roles",
        "permissions",
        "user_roles",
        "role_permissions",
        "audit_log",
        "schema_migration",
    } <= tables
    assert await apply(empty_db, migrations) == []  # a no-op the second time
    recorded = await empty_db.fetch(
        "select version, checksum from schema_migration order by version"
    )
    assert [(r["version"], r["checksum"]) for r in recorded] == [
        (m.version, m.checksum) for m in migrations
    ]
    changed = [
        *migrations[:-1],
        replace(
            migrations[-1], sql=migrations[-1].sql + "\n-- edited after the fact\n"
        ),
    ]
    with pytest.raises(MigrationError, match="has changed since it was applied"):
        await apply(empty_db, changed)


async def test_schema_has_indexes_for_both_directions_of_every_join(
    empty_db: asyncpg.Connection,
) -> None:
    await apply(empty_db)
    indexes = {
        r["indexname"]: r["indexdef"]
        for r in await empty_db.fetch(
            "select indexname, indexdef from pg_indexes where schemaname = 'public'"
        )
    }
    assert (
        "(user_id, role_id)" in indexes["user_roles_pkey"]
        and "(role_id, user_id)" in indexes["user_roles_role_id_user_id_idx"]
    )
    assert (
        "(role_id, permission_id)" in indexes["role_permissions_pkey"]
        and "(permission_id, role_id)" in indexes["role_permissions_permission_id_idx"]
    )
    assert "lower(email)" in indexes["users_email_lower_key"]
    await empty_db.execute("insert into users (email) values ('A@x.io')")
    with pytest.raises(asyncpg.UniqueViolationError):
        await empty_db.execute("insert into users (email) values ('a@X.IO')")


async def test_seed_prints_a_generated_password_once_and_makes_synthetic_users(
    empty_db: asyncpg.Connection,
) -> None:
    await apply(empty_db)
    first = await seed(empty_db, users=50)
    assert (
        first.admin_created and first.admin_password and len(first.admin_password) >= 20
    )
    second = await seed(empty_db, users=50)
    assert not second.admin_created and second.admin_password is None
    assert await empty_db.fetchval("select count(*) from users") == 51  # idempotent
    counts = [
        r["n"]
        for r in await empty_db.fetch(
            "select count(*) n from user_roles ur join users u on u.id = ur.user_id join roles r on r.id = ur.role_id"
            " where u.email like 'user%' and r.name like 'team-%' group by ur.user_id"
        )
    ]
    assert len(counts) == 50 and set(counts) <= {1, 2, 3} and {1, 2, 3} <= set(counts)
    # the demo roles have holders: every 10th synthetic user a viewer, every 50th an editor
    holders = {
        r["name"]: r["count"]
        for r in await empty_db.fetch(
            "select r.name, count(*) from user_roles ur join roles r on r.id = ur.role_id group by r.name"
        )
    }
    assert holders["viewer"] == 4 and holders["editor"] == 1 and holders["admin"] == 1
    # the demo admin holds every seeded permission (it may assign every role)
    missing = await empty_db.fetchval(
        "select count(*) from permissions p where not exists (select 1 from role_permissions rp"
        " join roles r on r.id = rp.role_id where r.builtin_key = 'admin' and rp.permission_id = p.id)"
    )
    assert missing == 0
    # a restart inserts nothing: no identity value is used up
    before = await empty_db.fetchval("select last_value from users_id_seq")
    await seed(empty_db, users=50)
    assert await empty_db.fetchval("select last_value from users_id_seq") == before
    assert (
        await empty_db.fetchval(
            "select count(*) from users where lower(email) = lower($1)", ADMIN_EMAIL
        )
        == 1
    )


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "postgres": "ok",
        "redis": "ok",
        "changes": "ok",
    }
    metrics = (await client.get("/metrics")).text
    for name in [
        "permissions_cache_hits_total",
        "permissions_cache_misses_total",
        "permissions_cache_invalidations_total",
        "permissions_cache_stale_writebacks_refused_total",
        "redis_errors_total",
        "redis_circuit_breaker_open",
        "permissions_loader_batch_size_bucket",
        "permissions_loader_sql_seconds_bucket",
    ]:
        assert name in metrics


@pytest.mark.parametrize("dead", ["redis", "postgres"])
async def test_readyz_reports_a_dead_server(settings: Settings, dead: str) -> None:
    port = free_port()
    changes = (
        {"redis_url": f"redis://127.0.0.1:{port}/0"}
        if dead == "redis"
        else {
            "database_url": f"postgresql://postgres@127.0.0.1:{port}/postgres",
            "db_pool_min_size": 0,
            "db_connect_timeout_s": 0.5,
        }
    )
    application = create_app(settings.model_copy(update=changes))
    async with (
        LifespanManager(application) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
        ) as client,
    ):
        response = await client.get("/readyz")
        assert (await client.get("/healthz")).status_code == 200
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks[dead].startswith("error")
    assert checks["postgres" if dead == "redis" else "redis"] == "ok"
