"""Every mutation: what it writes, exactly which cache keys it drops, what the next
read shows (and what that read costs), the audit row, and the denied paths."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from api.state import State
from permbase.settings import Settings
from permcore.read import load_access_by_user_id
from tests.factories import (
    acquire,
    codes,
    counting_sql,
    gql,
    insert_user,
    stored,
    token_for,
)


class World:
    """Three users besides the admin (id 1): ed (editor), vi (viewer), both (editor+viewer)."""

    def __init__(
        self, ids: dict[str, int], roles: dict[str, int], perms: dict[str, int]
    ) -> None:
        self.ids, self.roles, self.perms = ids, roles, perms


@pytest.fixture
async def world(pool: asyncpg.Pool) -> World:
    async with acquire(pool) as con:
        ids = {
            "ed": await insert_user(con, "ed@example.com", roles=["editor"]),
            "vi": await insert_user(con, "vi@example.com", roles=["viewer"]),
            "both": await insert_user(
                con, "both@example.com", roles=["editor", "viewer"]
            ),
        }
        roles = {
            r["name"]: r["id"] for r in await con.fetch("select id, name from roles")
        }
        perms = {
            r["code"]: r["id"]
            for r in await con.fetch("select id, code from permissions")
        }
    return World(ids, roles, perms)


async def warm(resources: State, user_ids: list[int]) -> None:
    """The world's rows were written with SQL: the stream applies those changes
    first (as it would within its poll interval), then the entries are cached."""
    await resources["stream"].apply_pending()
    await load_access_by_user_id(user_ids, db=resources["db"], cache=resources["cache"])


async def cached(redis_client: aioredis.Redis, user_ids: list[int]) -> set[int]:
    values = await redis_client.mget([f"permissions:user:{u}" for u in user_ids])
    return {u for u, v in zip(user_ids, values, strict=True) if v is not None}


async def audit_actions(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    async with acquire(pool) as con:
        return [
            (r["action"], r["target_id"])
            for r in await con.fetch(
                "select action, target_id from audit_log order by id"
            )
        ]


async def perms_of(client: httpx.AsyncClient, token: str, uid: int) -> list[str]:
    permissions: list[str] = (
        await gql(client, '{ user(id: "%d") { permissions } }' % uid, token=token)
    )["data"]["user"]["permissions"]
    return permissions


async def run(
    client: httpx.AsyncClient,
    token: str,
    mutation: str,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body = await gql(client, mutation, variables, token=token)
    return next(iter(body["data"].values()))


ASSIGN = "mutation($u: ID!, $r: ID!) { assignRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed } ... on NotAllowedError { missingPermissions } ... on NotFoundError { entity } } }"
REMOVE = "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename ... on RoleAssignment { changed } ... on NotAllowedError { message } ... on NotFoundError { entity } } }"
GRANT = "mutation($r: ID!, $c: String!) { grantPermission(roleId: $r, code: $c) { __typename ... on RoleGrant { changed } ... on NotAllowedError { missingPermissions } ... on InvalidInputError { field } } }"
REVOKE = "mutation($r: ID!, $c: String!) { revokePermission(roleId: $r, code: $c) { __typename ... on RoleGrant { changed } ... on NotAllowedError { message } } }"


async def test_assign_role_invalidates_that_user_only(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    result = await run(
        client,
        admin_token,
        ASSIGN,
        {"u": str(world.ids["vi"]), "r": str(world.roles["editor"])},
    )
    assert result == {"__typename": "RoleAssignment", "changed": True}
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["vi"]}
    async with acquire(pool) as con:
        assert (
            await con.fetchval(
                "select granted_by from user_roles where user_id = $1 and role_id = $2",
                world.ids["vi"],
                world.roles["editor"],
            )
            == 1
        )
    with counting_sql() as sql:
        after = await load_access_by_user_id(
            everyone, db=resources["db"], cache=resources["cache"]
        )
    assert (
        sql.permission_sql == 1
    )  # one query, for the one user whose entry was dropped
    assert after[2] is not None and "users:write" in after[2].permissions
    # idempotent: nothing changes, nothing is dropped, nothing audited twice
    again = await run(
        client,
        admin_token,
        ASSIGN,
        {"u": str(world.ids["vi"]), "r": str(world.roles["editor"])},
    )
    assert again == {"__typename": "RoleAssignment", "changed": False}
    assert await cached(redis_client, everyone) == set(everyone)
    assert await audit_actions(pool) == [("user.assign_role", str(world.ids["vi"]))]


async def test_remove_role_and_its_typed_outcomes(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    result = await run(
        client,
        admin_token,
        REMOVE,
        {"u": str(world.ids["both"]), "r": str(world.roles["editor"])},
    )
    assert result["changed"] is True
    async with acquire(
        pool
    ) as con:  # a removal reads as one: the role before, nothing after
        row = await con.fetchrow(
            "select before, after from audit_log where action = 'user.remove_role'"
        )
        assert row is not None
    assert (
        json.loads(row["before"])
        == {"role_id": world.roles["editor"], "role": "editor"}
        and row["after"] is None
    )
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["both"]}
    assert await perms_of(client, admin_token, world.ids["both"]) == [
        "permissions:read",
        "roles:read",
        "users:read",
    ]
    missing_role = await run(
        client, admin_token, REMOVE, {"u": str(world.ids["both"]), "r": "9999"}
    )
    assert missing_role == {"__typename": "NotFoundError", "entity": "role"}
    missing_user = await run(
        client, admin_token, ASSIGN, {"u": "9999", "r": str(world.roles["viewer"])}
    )
    assert missing_user == {"__typename": "NotFoundError", "entity": "user"}


async def test_nobody_removes_the_last_holder_of_roles_write(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    await warm(resources, [1])
    result = await run(
        client, admin_token, REMOVE, {"u": "1", "r": str(world.roles["admin"])}
    )
    assert (
        result["__typename"] == "NotAllowedError" and "roles:write" in result["message"]
    )
    assert await cached(redis_client, [1]) == {1}  # rolled back: nothing invalidated
    deactivate = await run(
        client, admin_token, 'mutation { deactivateUser(id: "1") { __typename } }'
    )
    assert deactivate == {"__typename": "NotAllowedError"}
    revoke = await run(
        client,
        admin_token,
        REVOKE,
        {"r": str(world.roles["admin"]), "c": "roles:write"},
    )
    assert revoke["__typename"] == "NotAllowedError"
    delete = await run(
        client,
        admin_token,
        "mutation($r: ID!) { deleteRole(id: $r) { __typename } }",
        {"r": str(world.roles["admin"])},
    )
    assert delete == {"__typename": "NotAllowedError"}
    async with acquire(pool) as con:
        assert (
            await con.fetchval("select count(*) from user_roles where user_id = 1") == 1
        )
        assert await con.fetchval("select count(*) from audit_log") == 0
    # with a second holder, the first may go
    await run(
        client,
        admin_token,
        ASSIGN,
        {"u": str(world.ids["vi"]), "r": str(world.roles["admin"])},
    )
    assert (
        await run(
            client, admin_token, REMOVE, {"u": "1", "r": str(world.roles["admin"])}
        )
    )["changed"] is True


async def test_nobody_grants_what_they_do_not_hold(
    client: httpx.AsyncClient, world: World, settings: Settings, pool: asyncpg.Pool
) -> None:
    # an account manager: may manage roles, but holds no users:write
    async with acquire(pool) as con:
        await con.execute("insert into roles (name) values ('rolemgr')")
        await con.execute(
            "insert into role_permissions select r.id, p.id from roles r, permissions p where r.name = 'rolemgr' and p.code in ('roles:write', 'roles:read')"
        )
        mgr = await insert_user(con, "mgr@example.com", roles=["rolemgr"])
    token = token_for(mgr, settings)
    escalate = await run(
        client, token, ASSIGN, {"u": str(mgr), "r": str(world.roles["admin"])}
    )
    # the admin role's codes are not told to a caller without permissions:read
    assert escalate == {"__typename": "NotAllowedError", "missingPermissions": []}
    grant = await run(
        client, token, GRANT, {"r": str(world.roles["viewer"]), "c": "users:write"}
    )
    assert grant == {
        "__typename": "NotAllowedError",
        "missingPermissions": ["users:write"],
    }
    create = await run(
        client,
        token,
        'mutation { createRole(input: {name: "sneaky", permissionCodes: ["permissions:write"]}) { __typename } }',
    )
    assert create == {"__typename": "NotAllowedError"}
    async with acquire(pool) as con:
        assert (
            await con.fetchval("select count(*) from roles where name = 'sneaky'") == 0
        )


async def test_grant_and_revoke_invalidate_every_holder_of_the_role(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    holders = {world.ids["vi"], world.ids["both"]}
    result = await run(
        client,
        admin_token,
        GRANT,
        {"r": str(world.roles["viewer"]), "c": "api_keys:read"},
    )
    assert result == {"__typename": "RoleGrant", "changed": True}
    assert await cached(redis_client, everyone) == set(everyone) - holders
    assert "api_keys:read" in await perms_of(client, admin_token, world.ids["vi"])
    assert "api_keys:read" not in await perms_of(client, admin_token, world.ids["ed"])
    await warm(resources, everyone)
    result = await run(
        client,
        admin_token,
        REVOKE,
        {"r": str(world.roles["viewer"]), "c": "api_keys:read"},
    )
    assert result["changed"] is True
    assert await cached(redis_client, everyone) == set(everyone) - holders
    assert "api_keys:read" not in await perms_of(client, admin_token, world.ids["vi"])
    unknown = await run(
        client, admin_token, GRANT, {"r": str(world.roles["viewer"]), "c": "nope:nope"}
    )
    assert unknown == {"__typename": "InvalidInputError", "field": "code"}
    malformed = await run(
        client, admin_token, GRANT, {"r": str(world.roles["viewer"]), "c": "DROP TABLE"}
    )
    assert malformed == {"__typename": "InvalidInputError", "field": "code"}
    assert [a for a, _ in await audit_actions(pool)] == [
        "role.grant_permission",
        "role.revoke_permission",
    ]


async def test_set_role_permissions(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    query = "mutation($r: ID!, $c: [String!]!) { setRolePermissions(roleId: $r, codes: $c) { __typename ... on RolePayload { role { permissions { code } } } } }"
    result = await run(
        client,
        admin_token,
        query,
        {"r": str(world.roles["editor"]), "c": ["users:read", "api_keys:read"]},
    )
    assert [p["code"] for p in result["role"]["permissions"]] == [
        "api_keys:read",
        "users:read",
    ]
    assert await cached(redis_client, everyone) == set(everyone) - {
        world.ids["ed"],
        world.ids["both"],
    }
    assert await perms_of(client, admin_token, world.ids["ed"]) == [
        "api_keys:read",
        "users:read",
    ]
    # the same set again changes nothing and drops nothing
    await warm(resources, everyone)
    await run(
        client,
        admin_token,
        query,
        {"r": str(world.roles["editor"]), "c": ["api_keys:read", "users:read"]},
    )
    assert await cached(redis_client, everyone) == set(everyone)
    async with acquire(pool) as con:
        row = await con.fetchrow(
            "select before, after from audit_log where action = 'role.set_permissions'"
        )
        assert row is not None
    assert json.loads(row["before"])["permissions"] == [
        "permissions:read",
        "roles:read",
        "users:read",
        "users:write",
    ]
    assert json.loads(row["after"])["permissions"] == ["api_keys:read", "users:read"]


async def test_create_update_delete_role(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    created = await run(
        client,
        admin_token,
        'mutation { createRole(input: {name: "auditor", description: "reads logs", permissionCodes: ["audit:read"]}) { __typename ... on RolePayload { role { id name permissions { code } } } } }',
    )
    role_id = created["role"]["id"]
    assert created["role"]["permissions"] == [{"code": "audit:read"}]
    dup = await run(
        client,
        admin_token,
        'mutation { createRole(input: {name: "auditor"}) { __typename ... on ConflictError { field } } }',
    )
    assert dup == {"__typename": "ConflictError", "field": "name"}
    bad = await run(
        client,
        admin_token,
        'mutation { createRole(input: {name: "Bad Name"}) { __typename ... on InvalidInputError { field } } }',
    )
    assert bad == {"__typename": "InvalidInputError", "field": "name"}
    await run(client, admin_token, ASSIGN, {"u": str(world.ids["ed"]), "r": role_id})
    await warm(resources, everyone)
    # a rename changes the cached role names: holders only
    renamed = await run(
        client,
        admin_token,
        'mutation($r: ID!) { updateRole(id: $r, input: {name: "auditors"}) { __typename ... on RolePayload { role { name } } } }',
        {"r": role_id},
    )
    assert renamed["role"]["name"] == "auditors"
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["ed"]}
    taken = await run(
        client,
        admin_token,
        'mutation($r: ID!) { updateRole(id: $r, input: {name: "viewer"}) { __typename } }',
        {"r": role_id},
    )
    assert taken == {"__typename": "ConflictError"}
    # a description change drops nothing
    await warm(resources, everyone)
    await run(
        client,
        admin_token,
        'mutation($r: ID!) { updateRole(id: $r, input: {description: "x"}) { __typename } }',
        {"r": role_id},
    )
    assert await cached(redis_client, everyone) == set(everyone)
    deleted = await run(
        client,
        admin_token,
        "mutation($r: ID!) { deleteRole(id: $r) { __typename ... on Deleted { affectedUsers } } }",
        {"r": role_id},
    )
    assert deleted == {"__typename": "Deleted", "affectedUsers": 1}
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["ed"]}
    assert "audit:read" not in await perms_of(client, admin_token, world.ids["ed"])
    gone = await run(
        client,
        admin_token,
        "mutation($r: ID!) { deleteRole(id: $r) { __typename } }",
        {"r": role_id},
    )
    assert gone == {"__typename": "NotFoundError"}
    assert [a for a, _ in await audit_actions(pool)] == [
        "role.create",
        "user.assign_role",
        "role.update",
        "role.update",
        "role.delete",
    ]


async def test_create_and_delete_permission(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
) -> None:
    everyone = [1, *world.ids.values()]
    created = await run(
        client,
        admin_token,
        'mutation { createPermission(code: "reports:read", description: "Reports") { __typename ... on PermissionPayload { permission { id code } } } }',
    )
    pid = created["permission"]["id"]
    dup = await run(
        client,
        admin_token,
        'mutation { createPermission(code: "reports:read") { __typename } }',
    )
    assert dup == {"__typename": "ConflictError"}
    # a code never granted: the admin may grant it to itself, then hand it out
    await run(
        client,
        admin_token,
        GRANT,
        {"r": str(world.roles["admin"]), "c": "reports:read"},
    )
    await run(
        client,
        admin_token,
        GRANT,
        {"r": str(world.roles["viewer"]), "c": "reports:read"},
    )
    await warm(resources, everyone)
    deleted = await run(
        client,
        admin_token,
        "mutation($p: ID!) { deletePermission(id: $p) { __typename ... on Deleted { affectedUsers } } }",
        {"p": pid},
    )
    assert deleted == {"__typename": "Deleted", "affectedUsers": 3}
    # the admin's own entry was dropped too, and re-read for the rest of its request
    assert await cached(redis_client, everyone) == set(everyone) - {
        world.ids["vi"],
        world.ids["both"],
    }
    assert "reports:read" not in await perms_of(client, admin_token, world.ids["vi"])


async def test_deactivate_and_reactivate(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    result = await run(
        client,
        admin_token,
        "mutation($u: ID!) { deactivateUser(id: $u) { __typename ... on UserPayload { user { isActive permissions } } } }",
        {"u": str(world.ids["ed"])},
    )
    assert result["user"] == {"isActive": False, "permissions": []}
    # the payload itself re-read ed's entry after the invalidation: it is back, and fresh
    assert (
        json.loads(await stored(redis_client, f"permissions:user:{world.ids['ed']}"))[
            "active"
        ]
        is False
    )
    await warm(resources, everyone)
    back = await run(
        client,
        admin_token,
        "mutation($u: ID!) { reactivateUser(id: $u) { __typename ... on UserPayload { user { isActive } } } }",
        {"u": str(world.ids["ed"])},
    )
    assert back["user"]["isActive"] is True
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["ed"]}
    assert "users:write" in await perms_of(client, admin_token, world.ids["ed"])
    assert [a for a, _ in await audit_actions(pool)] == [
        "user.deactivate",
        "user.reactivate",
    ]


async def test_create_and_update_user_drop_no_permission_entries(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
    pool: asyncpg.Pool,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    created = await run(
        client,
        admin_token,
        'mutation { createUser(input: {email: "New@Example.com", displayName: "New", password: "a-good-long-password"}) { __typename ... on UserPayload { user { id email } } } }',
    )
    assert (
        created["user"]["email"] == "new@example.com"
    )  # one spelling per mailbox (permauth/emails.py)
    dup = await run(
        client,
        admin_token,
        'mutation { createUser(input: {email: "new@example.COM"}) { __typename ... on ConflictError { field } } }',
    )
    assert dup == {"__typename": "ConflictError", "field": "email"}
    weak = await run(
        client,
        admin_token,
        'mutation { createUser(input: {email: "w@example.com", password: "short"}) { __typename ... on InvalidInputError { field } } }',
    )
    assert weak == {"__typename": "InvalidInputError", "field": "password"}
    bad = await run(
        client,
        admin_token,
        'mutation { createUser(input: {email: "not-an-email"}) { __typename ... on InvalidInputError { field } } }',
    )
    assert bad == {"__typename": "InvalidInputError", "field": "email"}
    updated = await run(
        client,
        admin_token,
        'mutation($u: ID!) { updateUser(id: $u, input: {displayName: "Ed", avatarUrl: "https://x.example/a.png"}) { __typename ... on UserPayload { user { displayName avatarUrl } } } }',
        {"u": str(world.ids["ed"])},
    )
    assert updated["user"] == {
        "displayName": "Ed",
        "avatarUrl": "https://x.example/a.png",
    }
    clash = await run(
        client,
        admin_token,
        'mutation($u: ID!) { updateUser(id: $u, input: {email: "VI@example.com"}) { __typename ... on ConflictError { field } } }',
        {"u": str(world.ids["ed"])},
    )
    assert clash == {"__typename": "ConflictError", "field": "email"}
    assert await cached(redis_client, everyone) == set(
        everyone
    )  # profile changes: nothing dropped
    async with acquire(pool) as con:
        row = await con.fetchrow(
            "select before, after from audit_log where action = 'user.update'"
        )
        assert row is not None
    assert json.loads(row["before"])["display_name"] == "ed"
    assert json.loads(row["after"])["display_name"] == "Ed"


async def test_invalidate_permission_cache_one_or_all(
    client: httpx.AsyncClient,
    admin_token: str,
    world: World,
    resources: State,
    redis_client: aioredis.Redis,
) -> None:
    everyone = [1, *world.ids.values()]
    await warm(resources, everyone)
    one = await run(
        client,
        admin_token,
        "mutation($u: ID!) { invalidatePermissionCache(userId: $u) { __typename ... on CacheInvalidated { allUsers confirmed } } }",
        {"u": str(world.ids["vi"])},
    )
    assert one == {
        "__typename": "CacheInvalidated",
        "allUsers": False,
        "confirmed": True,
    }
    assert await cached(redis_client, everyone) == set(everyone) - {world.ids["vi"]}
    await warm(resources, everyone)
    all_ = await run(
        client,
        admin_token,
        "mutation { invalidatePermissionCache { __typename ... on CacheInvalidated { allUsers } } }",
    )
    assert all_["allUsers"] is True
    # only the caller's own entry is back: re-read after the flush, under the new epoch
    assert await cached(redis_client, everyone) == {1}
    epoch = await stored(redis_client, "permissions:user:epoch")
    assert (
        json.loads(await stored(redis_client, "permissions:user:1"))["e"]
        == epoch.decode()
    )


@pytest.mark.parametrize(
    ("mutation", "needed"),
    [
        (
            'mutation { createUser(input: {email: "a@b.co"}) { __typename } }',
            "users:write",
        ),
        ('mutation { deactivateUser(id: "1") { __typename } }', "users:write"),
        (
            'mutation { assignRole(userId: "1", roleId: "1") { __typename } }',
            "roles:write",
        ),
        ('mutation { createRole(input: {name: "x"}) { __typename } }', "roles:write"),
        (
            'mutation { grantPermission(roleId: "1", code: "users:read") { __typename } }',
            "roles:write",
        ),
        (
            'mutation { setRolePermissions(roleId: "1", codes: []) { __typename } }',
            "roles:write",
        ),
        (
            'mutation { createPermission(code: "a:b") { __typename } }',
            "permissions:write",
        ),
        ('mutation { deletePermission(id: "1") { __typename } }', "permissions:write"),
        ("mutation { invalidatePermissionCache { __typename } }", "permissions:write"),
    ],
)
async def test_mutations_are_denied_without_their_permission(
    client: httpx.AsyncClient,
    world: World,
    settings: Settings,
    pool: asyncpg.Pool,
    mutation: str,
    needed: str,
) -> None:
    token = token_for(world.ids["vi"], settings)
    body = await gql(client, mutation, token=token, expect_errors=True)
    assert codes(body) == ["FORBIDDEN"]
    assert body["errors"][0]["extensions"]["missingPermission"] == needed
    anonymous = await gql(client, mutation, expect_errors=True)
    assert codes(anonymous) == ["UNAUTHENTICATED"]
    async with acquire(pool) as con:
        assert await con.fetchval("select count(*) from audit_log") == 0


async def test_audit_log_query_pages_newest_first(
    client: httpx.AsyncClient, admin_token: str, world: World
) -> None:
    for name in ("r1", "r2", "r3"):
        await run(
            client,
            admin_token,
            "mutation($n: String!) { createRole(input: {name: $n}) { __typename } }",
            {"n": name},
        )
    page = (
        await gql(
            client,
            "{ auditLog(first: 2) { entries { action after actorId } endCursor hasNextPage } }",
            token=admin_token,
        )
    )["data"]["auditLog"]
    assert [e["after"]["name"] for e in page["entries"]] == ["r3", "r2"] and page[
        "hasNextPage"
    ] is True
    assert page["entries"][0]["actorId"] == "1"
    rest = (
        await gql(
            client,
            "query($a: String) { auditLog(first: 2, after: $a) { entries { after } hasNextPage } }",
            {"a": page["endCursor"]},
            token=admin_token,
        )
    )["data"]["auditLog"]
    assert [e["after"]["name"] for e in rest["entries"]] == ["r1"] and rest[
        "hasNextPage"
    ] is False
