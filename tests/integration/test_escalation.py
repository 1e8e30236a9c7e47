"""No escalation: the attacker's sequences of issue 11 (R1-R4), each refused with
a typed result and leaving nothing changed, and two delegates racing to remove
the last holders of roles:write. The stateful search is in test_delegation_machine.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from permbase.settings import Settings
from permdev.seed import seed
from tests.conftest import ADMIN_PASSWORD
from tests.factories import acquire, app_with, codes, gql, token_for

ALL_READS = ["users:read", "roles:read", "permissions:read"]


@pytest.fixture(params=["dev", "prod"])
async def client(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """Every sequence in both profiles."""
    async with app_with(settings, environment=request.param, graphql_ide=None) as (
        c,
        _,
    ):
        yield c


async def delegate(
    pool: asyncpg.Pool,
    settings: Settings,
    name: str,
    perms: list[str],
    *,
    active: bool = True,
) -> tuple[int, int, str]:
    """A user holding one role of its own with `perms`: (user id, role id, token)."""
    async with acquire(pool) as con:
        role_id = await con.fetchval(
            "insert into roles (name) values ($1) returning id", name
        )
        await con.execute(
            "insert into role_permissions select $1, id from permissions where code = any($2::text[])",
            role_id,
            perms,
        )
        user_id = await con.fetchval(
            "insert into users (email, is_active) values ($1, $2) returning id",
            f"{name}@example.com",
            active,
        )
        await con.execute(
            "insert into user_roles (user_id, role_id) values ($1, $2)",
            user_id,
            role_id,
        )
    return user_id, role_id, token_for(user_id, settings)


async def held(pool: asyncpg.Pool, user_id: int) -> list[str]:
    async with acquire(pool) as con:
        return list(
            await con.fetchval(
                "select coalesce(array_agg(distinct p.code order by p.code), '{}') from user_roles ur"
                " join role_permissions rp on rp.role_id = ur.role_id join permissions p on p.id = rp.permission_id"
                " where ur.user_id = $1",
                user_id,
            )
        )


async def snapshot(pool: asyncpg.Pool) -> tuple[Any, ...]:
    """Everything a privilege change could touch."""
    async with acquire(pool) as con:
        return (
            await con.fetch("select user_id, role_id from user_roles order by 1, 2"),
            await con.fetch(
                "select role_id, permission_id from role_permissions order by 1, 2"
            ),
            await con.fetch("select id, name from roles order by id"),
            await con.fetch("select id, code from permissions order by id"),
            await con.fetch("select id, email, is_active from users order by id"),
            await con.fetchval("select count(*) from audit_log"),
        )


async def mutate(
    client: httpx.AsyncClient,
    token: str,
    document: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = await gql(client, document, variables, token=token)
    return next(iter(body["data"].values()))


async def raw(
    client: httpx.AsyncClient, token: str, document: str, variables: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post(
        "/graphql",
        json={"query": document, "variables": variables},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def role_id(pool: asyncpg.Pool, key: str) -> int:
    async with acquire(pool) as con:
        return int(
            await con.fetchval("select id from roles where builtin_key = $1", key)
        )


ASSIGN = "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { __typename ... on NotAllowedError { message missingPermissions } } }"
REMOVE = "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed } ... on NotAllowedError { message } } }"
GRANT = "mutation($r: ID!, $c: String!) { grantPermission(roleId: $r, code: $c) { __typename ... on RoleGrant { changed } ... on NotAllowedError { message missingPermissions } } }"
REVOKE = "mutation($r: ID!, $c: String!) { revokePermission(roleId: $r, code: $c) { __typename ... on NotAllowedError { message } } }"
RENAME = "mutation($r: ID!, $n: String!) { updateRole(id: $r, input: {name: $n}) { __typename ... on NotAllowedError { message } } }"
DELETE_ROLE = "mutation($r: ID!) { deleteRole(id: $r) { __typename ... on NotAllowedError { message } } }"
CREATE_PERMISSION = "mutation($c: String!) { createPermission(code: $c) { __typename ... on PermissionPayload { permission { id } } } }"
INVALIDATE = (
    "mutation($u: ID!) { invalidatePermissionCache(userId: $u) { __typename } }"
)
DELETE_PERMISSION = "mutation($p: ID!) { deletePermission(id: $p) { __typename ... on NotAllowedError { message } ... on Deleted { affectedUsers } } }"
DEACTIVATE = "mutation($u: ID!) { deactivateUser(id: $u) { __typename ... on NotAllowedError { message } } }"
SET_EMAIL = "mutation($u: ID!, $e: String!) { updateUser(id: $u, input: {email: $e}) { __typename ... on NotAllowedError { message } } }"


async def test_r1_the_seed_follows_stable_keys_not_names_or_emails(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    mallory, own_role, token = await delegate(
        pool, settings, "mallory", ["roles:write", "users:write", *ALL_READS]
    )
    admin_role = await role_id(pool, "admin")
    before = await snapshot(pool)
    # through the API the renames and the e-mail move are refused outright
    assert (
        await mutate(client, token, RENAME, {"r": str(admin_role), "n": "admin-old"})
    )["__typename"] == "NotAllowedError"
    assert (
        await mutate(client, token, SET_EMAIL, {"u": "1", "e": "old-admin@example.com"})
    )["__typename"] == "NotAllowedError"
    assert await snapshot(pool) == before
    # and when an admin really did rename them (or psql did), a restart's seed
    # changes nothing: it finds its roles by key and ran once
    async with acquire(pool) as con:
        await con.execute(
            "update roles set name = 'admin-old' where id = $1", admin_role
        )
        await con.execute("update roles set name = 'admin' where id = $1", own_role)
        await con.execute(
            "update users set email = 'old-admin@example.com' where id = 1"
        )
        await con.execute(
            "update users set email = 'admin@permgraph.local' where id = $1", mallory
        )
        before = await snapshot(pool)
        result = await seed(con, admin_password=ADMIN_PASSWORD, users=0)
    assert not result.admin_created and result.admin_password is None
    after = await snapshot(pool)
    assert after[:5] == before[:5]
    assert await held(pool, mallory) == sorted(
        ["roles:write", "users:write", *ALL_READS]
    )


async def test_r2_permission_codes_cannot_be_laundered(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, admin_token: str
) -> None:
    _, own_role, token = await delegate(
        pool, settings, "mallory", ["roles:write", "permissions:write", *ALL_READS]
    )
    async with acquire(pool) as con:
        audit_read = await con.fetchval(
            "select id from permissions where code = 'audit:read'"
        )
        api_keys = await con.fetchval(
            "select id from permissions where code = 'api_keys:read'"
        )
    grant = await mutate(client, token, GRANT, {"r": str(own_role), "c": "audit:read"})
    assert grant["__typename"] == "NotAllowedError" and grant["missingPermissions"] == [
        "audit:read"
    ]
    before = await snapshot(pool)
    # a code permgraph checks itself is never deleted; any other only by a holder
    refused = await mutate(client, token, DELETE_PERMISSION, {"p": str(audit_read)})
    assert (
        refused["__typename"] == "NotAllowedError"
        and "cannot be deleted" in refused["message"]
    )
    assert (await mutate(client, token, DELETE_PERMISSION, {"p": str(api_keys)}))[
        "__typename"
    ] == "NotAllowedError"
    assert await snapshot(pool) == before
    # permgraph's own resources are reserved: nobody creates a code there (a
    # later version could start checking it)
    assert (await mutate(client, token, CREATE_PERMISSION, {"c": "audit:write"}))[
        "__typename"
    ] == "NotAllowedError"
    # the admin retires a code that was granted; re-created, it is still not grantable
    created = await mutate(
        client, admin_token, CREATE_PERMISSION, {"c": "reports:read"}
    )
    admin_role = await role_id(pool, "admin")
    assert (
        await mutate(
            client, admin_token, GRANT, {"r": str(admin_role), "c": "reports:read"}
        )
    )["changed"] is True
    assert (
        await mutate(
            client, admin_token, DELETE_PERMISSION, {"p": created["permission"]["id"]}
        )
    )["__typename"] == "Deleted"
    assert (await mutate(client, token, CREATE_PERMISSION, {"c": "reports:read"}))[
        "__typename"
    ] == "PermissionPayload"
    again = await mutate(
        client, token, GRANT, {"r": str(own_role), "c": "reports:read"}
    )
    assert again["__typename"] == "NotAllowedError" and again["missingPermissions"] == [
        "reports:read"
    ]
    # a code never granted to anyone is the one exception (or it could never be granted)
    assert (await mutate(client, token, CREATE_PERMISSION, {"c": "reports:write"}))[
        "__typename"
    ] == "PermissionPayload"
    assert (
        await mutate(client, token, GRANT, {"r": str(own_role), "c": "reports:write"})
    )["changed"] is True
    assert {"audit:read", "api_keys:read", "reports:read"}.isdisjoint(
        await held(pool, 2)
    )


async def test_r3_delegates_cannot_strip_those_above_them(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    _, _, roles_token = await delegate(
        pool, settings, "rolesmgr", ["roles:write", *ALL_READS]
    )
    _, _, users_token = await delegate(
        pool, settings, "usersmgr", ["users:write", *ALL_READS]
    )
    admin_role = await role_id(pool, "admin")
    before = await snapshot(pool)
    attempts = [
        (roles_token, REMOVE, {"u": "1", "r": str(admin_role)}),
        (roles_token, REVOKE, {"r": str(admin_role), "c": "audit:read"}),
        (
            roles_token,
            REVOKE,
            {"r": str(admin_role), "c": "roles:read"},
        ),  # even a code the delegate holds
        (roles_token, DELETE_ROLE, {"r": str(admin_role)}),
        (roles_token, RENAME, {"r": str(admin_role), "n": "was-admin"}),
        (users_token, DEACTIVATE, {"u": "1"}),
        (users_token, SET_EMAIL, {"u": "1", "e": "mine@example.com"}),
    ]
    for token, document, variables in attempts:
        result = await mutate(client, token, document, variables)
        assert result["__typename"] == "NotAllowedError", (document, result)
        assert "permissions you do not hold" in result["message"]
    assert await snapshot(pool) == before
    # a holder whose every permission the delegate holds may be changed by it
    async with acquire(pool) as con:
        viewer = await con.fetchval(
            "insert into users (email) values ('v@example.com') returning id"
        )
        await con.execute(
            "insert into user_roles select $1, id from roles where builtin_key = 'viewer'",
            viewer,
        )
    assert (await mutate(client, users_token, DEACTIVATE, {"u": str(viewer)}))[
        "__typename"
    ] == "UserPayload"
    assert (
        await mutate(
            client,
            roles_token,
            REMOVE,
            {"u": str(viewer), "r": str(await role_id(pool, "viewer"))},
        )
    )["changed"] is True


async def test_r3_a_team_role_the_admin_relies_on_cannot_be_emptied(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A permission the admin holds only through a role the delegate controls
    fully is still the admin's: revoking it would strip someone above."""
    _, _, token = await delegate(
        pool, settings, "teamlead", ["roles:write", "api_keys:read", *ALL_READS]
    )
    _, team_role, _ = await delegate(pool, settings, "team", ["api_keys:read"])
    async with acquire(pool) as con:
        await con.execute(
            "delete from role_permissions where permission_id = (select id from permissions where code = 'api_keys:read')"
            " and role_id = (select id from roles where builtin_key = 'admin')"
        )
        await con.execute("insert into user_roles values (1, $1)", team_role)
    before = await snapshot(pool)
    for document, variables in [
        (REVOKE, {"r": str(team_role), "c": "api_keys:read"}),
        (DELETE_ROLE, {"r": str(team_role)}),
    ]:
        assert (await mutate(client, token, document, variables))[
            "__typename"
        ] == "NotAllowedError"
    assert await snapshot(pool) == before
    assert "api_keys:read" in await held(pool, 1)


async def test_r4_payloads_show_only_what_the_caller_may_read(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    _, _, token = await delegate(
        pool, settings, "blind", ["roles:write", "users:write"]
    )
    async with acquire(pool) as con:
        bob = await con.fetchval(
            "insert into users (email, display_name) values ('bob@example.com', 'Bob') returning id"
        )
    viewer_role = await role_id(pool, "viewer")
    document = """mutation($u: ID!, $r: ID!) {
      removeRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed userId roleId user { email displayName } role { name } } }
    }"""
    body = await gql(
        client,
        document,
        {"u": str(bob), "r": str(viewer_role)},
        token=token,
        expect_errors=True,
    )
    assert body["data"]["removeRole"] == {
        "__typename": "RoleAssignment",
        "changed": False,
        "userId": str(bob),
        "roleId": str(viewer_role),
        "user": None,
        "role": None,
    }
    assert sorted(codes(body)) == ["FORBIDDEN", "FORBIDDEN"]
    assert "bob@example.com" not in str(body) and "Bob" not in str(body)
    reactivate = "mutation($u: ID!) { reactivateUser(id: $u) { __typename ... on UserPayload { user { email } } } }"
    body = await gql(
        client, reactivate, {"u": str(bob)}, token=token, expect_errors=True
    )
    assert body["data"]["reactivateUser"] == {
        "__typename": "UserPayload",
        "user": None,
    } and codes(body) == ["FORBIDDEN"]
    # an unknown id and a forbidden one answer alike to a caller who may not read users
    unknown = await mutate(client, token, DEACTIVATE, {"u": "999999"})
    forbidden = await mutate(client, token, DEACTIVATE, {"u": "1"})
    assert unknown == {
        "__typename": "NotAllowedError",
        "message": "You may not change user 999999.",
    }
    assert forbidden == {
        "__typename": "NotAllowedError",
        "message": "You may not change user 1.",
    }
    missing_role = await mutate(client, token, REMOVE, {"u": str(bob), "r": "999999"})
    assert missing_role == {
        "__typename": "NotAllowedError",
        "message": "You may not change role 999999.",
    }


async def test_two_delegates_racing_to_remove_the_last_two_holders_one_wins(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    for attempt in range(5):
        alice, a_role, alice_token = await delegate(
            pool, settings, f"alice{attempt}", ["roles:write", *ALL_READS]
        )
        bob, b_role, bob_token = await delegate(
            pool, settings, f"bob{attempt}", ["roles:write", *ALL_READS]
        )
        async with acquire(pool) as con:
            # the admin is away: alice and bob are the only active holders of roles:write
            await con.execute("update users set is_active = false where id = 1")
            await con.execute(
                "update users set is_active = false where email like 'alice%' and id <> $1",
                alice,
            )
            await con.execute(
                "update users set is_active = false where email like 'bob%' and id <> $1",
                bob,
            )
        first, second = await asyncio.gather(
            raw(client, alice_token, REMOVE, {"u": str(bob), "r": str(b_role)}),
            raw(client, bob_token, REMOVE, {"u": str(alice), "r": str(a_role)}),
        )
        # the loser is refused by the rule, or (when it starts after the winner
        # committed) by the field's own check: it no longer holds roles:write
        outcomes = sorted(
            "refused"
            if codes(body) == ["FORBIDDEN"]
            or (body["data"]["removeRole"] or {}).get("__typename") == "NotAllowedError"
            else body["data"]["removeRole"]["__typename"]
            for body in (first, second)
        )
        assert outcomes == ["RoleAssignment", "refused"], (first, second)
        async with acquire(pool) as con:
            holders = await con.fetchval(
                "select count(distinct u.id) from users u join user_roles ur on ur.user_id = u.id"
                " join role_permissions rp on rp.role_id = ur.role_id join permissions p on p.id = rp.permission_id"
                " where p.code = 'roles:write' and u.is_active"
            )
        assert holders == 1


async def test_deleting_a_code_strips_no_role_that_holds_more(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    """A role nobody holds yet is still a subject: deleting one of its codes
    takes that code from it."""
    async with acquire(pool) as con:
        await con.execute("insert into permissions (code) values ('reports:read')")
    _, _, token = await delegate(
        pool,
        settings,
        "mallory",
        ["roles:write", "permissions:write", "reports:read", *ALL_READS],
    )
    _, auditors, _ = await delegate(
        pool, settings, "auditors", ["audit:read", "reports:read"]
    )
    async with acquire(pool) as con:
        await con.execute(
            "delete from user_roles where role_id = $1", auditors
        )  # a role template, no holders
        reports = await con.fetchval(
            "select id from permissions where code = 'reports:read'"
        )
    assert (
        await mutate(client, token, REVOKE, {"r": str(auditors), "c": "reports:read"})
    )["__typename"] == "NotAllowedError"
    before = await snapshot(pool)
    assert (await mutate(client, token, DELETE_PERMISSION, {"p": str(reports)}))[
        "__typename"
    ] == "NotAllowedError"
    assert await snapshot(pool) == before


async def test_detail_only_for_a_caller_who_may_read_the_subject(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    _, _, token = await delegate(
        pool, settings, "blind", ["users:write", "permissions:read"]
    )
    unknown = await mutate(client, token, DEACTIVATE, {"u": "999999"})
    forbidden = await mutate(client, token, DEACTIVATE, {"u": "1"})
    assert unknown == {
        "__typename": "NotAllowedError",
        "message": "You may not change user 999999.",
    }
    assert forbidden == {
        "__typename": "NotAllowedError",
        "message": "You may not change user 1.",
    }
    # and the cache flush of one user does not tell which ids exist
    _, _, flusher = await delegate(pool, settings, "flusher", ["permissions:write"])
    assert await mutate(client, flusher, INVALIDATE, {"u": "999999"}) == await mutate(
        client, flusher, INVALIDATE, {"u": "1"}
    )


async def test_the_mutation_s_own_permission_is_checked_again_after_the_lock(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    """The field's check reads the cached entry before the lock; a revocation
    that commits in between must still win."""
    mallory, writer_role, token = await delegate(
        pool, settings, "mallory", ["roles:write"]
    )
    _, reader_role, _ = await delegate(pool, settings, "readers", ALL_READS)
    async with acquire(pool) as con:
        await con.execute(
            "insert into user_roles values ($1, $2)", mallory, reader_role
        )
        intern = await con.fetchval(
            "insert into users (email) values ('intern@example.com') returning id"
        )
    viewer = await role_id(pool, "viewer")
    async with acquire(pool) as con, con.transaction():
        await con.execute(
            "select pg_advisory_xact_lock(7365)"
        )  # what every privilege change takes first
        task = asyncio.create_task(
            mutate(client, token, ASSIGN, {"u": str(intern), "r": str(viewer)})
        )
        for _ in range(
            500
        ):  # until her request, past the field's check, waits for the lock
            if await con.fetchval(
                "select count(*) from pg_locks where locktype = 'advisory' and not granted"
            ):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the request never reached the lock")
        # the admin's removeRole(mallory, writer_role), committed first
        await con.execute(
            "delete from user_roles where user_id = $1 and role_id = $2",
            mallory,
            writer_role,
        )
    result = await task
    assert (
        result["__typename"] == "NotAllowedError" and "roles:write" in result["message"]
    ), result
    assert await held(pool, intern) == []


async def test_the_seed_gives_nothing_to_accounts_it_did_not_create(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    _, _, token = await delegate(
        pool, settings, "mallory", ["users:write", "roles:write", *ALL_READS]
    )
    create = "mutation($e: String!) { createUser(input: {email: $e}) { __typename ... on UserPayload { userId } } }"
    puppets = [
        int((await mutate(client, token, create, {"e": e}))["userId"])
        for e in ("user50@example.com", "user300@example.com")
    ]
    # and a role named like a synthetic team, which the seed would fill with grants
    team = await mutate(
        client,
        token,
        'mutation { createRole(input: {name: "team-05"}) { __typename ... on RolePayload { roleId } } }',
    )
    async with acquire(pool) as con:
        await con.execute(
            "insert into user_roles values ($1, $2)", puppets[0], int(team["roleId"])
        )
        await seed(
            con, admin_password=ADMIN_PASSWORD, users=200
        )  # the first `make run` with demo users
        await seed(
            con, admin_password=ADMIN_PASSWORD, users=300
        )  # SEED_USERS raised later
        made = await con.fetchval(
            "select count(*) from users where email ~ '^user[0-9]+@example.com$'"
        )
        grants = await con.fetchval(
            "select count(*) from role_permissions where role_id = $1",
            int(team["roleId"]),
        )
    assert made == 300 and grants == 0
    for puppet in puppets:
        assert await held(pool, puppet) == []
