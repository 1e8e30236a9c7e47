"""The management operations (permadmin/) called as another service or a script
would call them: no GraphQL request, no context; a plain `Actor`. What they
change is read at once through the API, what they refuse changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from api.state import State
from permadmin import permissions, roles, users
from permadmin.refusals import Conflict, Invalid, NotAllowed, NotFound, Refused
from permadmin.unit import Actor
from permbase.settings import Settings
from tests.factories import acquire, gql, insert_user, token_for


def actor_for(
    resources: State, user_id: int, held: frozenset[str] = frozenset()
) -> Actor:
    stream = resources["stream"]

    async def settle(xid: int, *, logged: bool = True) -> bool:
        return await stream.settle(xid) if logged else True

    return Actor(resources["db"], user_id, settle, held)


async def _state(pool: asyncpg.Pool) -> list[list[tuple[Any, ...]]]:
    out = []
    async with acquire(pool) as con:
        for sql in (
            "select user_id, role_id from user_roles order by 1, 2",
            "select role_id, permission_id from role_permissions order by 1, 2",
            "select id, name, description from roles order by id",
            "select id, email, display_name, is_active from users order by id",
            "select id, code from permissions order by id",
            "select count(*) from audit_log",
        ):
            out.append([tuple(r) for r in await con.fetch(sql)])
    return out


async def test_an_operation_is_seen_by_the_next_read(
    resources: State, pool: asyncpg.Pool, client: httpx.AsyncClient, settings: Settings
) -> None:
    admin = actor_for(resources, 1)
    created = await users.create_user(admin, "Ops@Example.com", "Ops", None, None)
    assert created.email == "ops@example.com"
    viewer = await roles.create_role(admin, "ops-viewer", "", ["users:read"])
    token = token_for(created.id, settings)
    query = "{ me { permissions } }"
    before = await gql(client, query, token=token)
    assert before["data"]["me"]["permissions"] == []
    done = await roles.change_membership(admin, created.id, viewer.id, assign=True)
    assert done.changed
    after = await gql(client, query, token=token)
    assert after["data"]["me"]["permissions"] == ["users:read"]
    again = await roles.change_membership(admin, created.id, viewer.id, assign=True)
    assert not again.changed
    async with acquire(pool) as con:
        actions = [
            r["action"]
            for r in await con.fetch(
                "select action from audit_log where actor_id = 1 order by id"
            )
        ]
    assert actions == ["user.create", "role.create", "user.assign_role"]


async def test_what_an_operation_refuses_it_does_not_change(
    resources: State, pool: asyncpg.Pool
) -> None:
    admin = actor_for(resources, 1)
    async with acquire(pool) as con:
        delegate_id = await insert_user(con, "delegate@example.com")
        await con.execute(
            "insert into roles (name) values ('only-roles-write');"
            "insert into role_permissions select r.id, p.id from roles r, permissions p"
            " where r.name = 'only-roles-write' and p.code = 'roles:write'"
        )
        await con.execute(
            "insert into user_roles select $1, id from roles where name = 'only-roles-write'",
            delegate_id,
        )
        admin_role = await con.fetchval("select id from roles where name = 'admin'")
    delegate = actor_for(resources, delegate_id)
    refusals: list[Refused] = []
    calls: list[tuple[type[Refused], Callable[[], Awaitable[object]]]] = [
        (
            NotAllowed,
            lambda: roles.change_membership(
                delegate, delegate_id, admin_role, assign=True
            ),
        ),
        (
            NotAllowed,
            lambda: roles.change_grant(
                delegate, admin_role, "users:write", grant=False
            ),
        ),
        (NotFound, lambda: roles.delete_role(admin, 999_999)),
        (NotFound, lambda: users.set_active(admin, 999_999, active=False)),
        (
            Invalid,
            lambda: roles.change_grant(admin, admin_role, "not a code", grant=True),
        ),
        (Invalid, lambda: roles.create_role(admin, "Bad Name", "", [])),
        (
            Invalid,
            lambda: users.create_user(admin, "x@example.com", "x", None, "short"),
        ),
        (Conflict, lambda: roles.create_role(admin, "admin", "", [])),
        (
            Conflict,
            lambda: users.create_user(admin, "delegate@example.com", "d", None, None),
        ),
        (NotAllowed, lambda: permissions.create_permission(admin, "audit:erase", "")),
        (
            NotFound,
            lambda: permissions.invalidate_cache(
                actor_for(resources, 1, frozenset({"users:read"})), 999_999
            ),
        ),
    ]
    state = await _state(pool)
    for kind, call in calls:
        with pytest.raises(kind) as caught:
            await call()
        assert isinstance(caught.value, Refused)
        refusals.append(caught.value)
        assert await _state(pool) == state, kind
    assert all(refused.message for refused in refusals)  # each says why
    assert isinstance(refusals[4], Invalid) and refusals[4].field == "code"
