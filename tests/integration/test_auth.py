"""Login, refresh rotation, logout, password change, and what a token lets through."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import jwt

from api.state import State
from permauth.passwords import hash_password
from permbase.settings import Settings
from permdev.seed import ADMIN_EMAIL
from tests.conftest import ADMIN_PASSWORD
from tests.factories import (
    acquire,
    app_with,
    codes,
    gql,
    insert_user,
    stored,
    token_for,
)

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on AuthPayload { accessToken refreshToken user { email } } ... on AuthError { message code } } }"""
LOGIN_HELD = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on AuthError { code retryAfterSeconds } } }"""
REFRESH = """mutation($t: String!) { refreshToken(token: $t) {
  __typename ... on AuthPayload { accessToken refreshToken } ... on AuthError { message code } } }"""


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, LOGIN, {"e": email, "p": password}))[
        "data"
    ]["login"]
    return result


async def with_password(
    pool: asyncpg.Pool,
    email: str,
    password: str,
    *,
    roles: Sequence[str] = (),
    active: bool = True,
) -> int:
    async with acquire(pool) as con:
        uid = await insert_user(con, email, roles=roles, active=active)
        await con.execute(
            "update users set password_hash = $2 where id = $1",
            uid,
            await hash_password(password),
        )
    return uid


async def test_login_and_me(client: httpx.AsyncClient) -> None:
    result = await login(
        client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD
    )  # email is case-insensitive
    assert (
        result["__typename"] == "AuthPayload" and result["user"]["email"] == ADMIN_EMAIL
    )
    me = await gql(client, "{ me { email permissions } }", token=result["accessToken"])
    assert "roles:write" in me["data"]["me"]["permissions"]


async def test_same_answer_for_unknown_email_wrong_password_and_inactive(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await with_password(pool, "gone@example.com", "a-long-password-1", active=False)
    answers, times = [], {}
    for label, email, password in [
        ("unknown", "nobody@example.com", "whatever-password"),
        ("wrong", ADMIN_EMAIL, "not-the-password"),
        ("inactive", "gone@example.com", "a-long-password-1"),
    ]:
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            answers.append(await login(client, email, password))
            samples.append(time.perf_counter() - started)
        times[label] = statistics.median(samples)
    assert all(
        a
        == {
            "__typename": "AuthError",
            "message": "Invalid email or password.",
            "code": "INVALID_CREDENTIALS",
        }
        for a in answers
    )
    # every path verifies one argon2 hash: same order of magnitude, no fast path for unknown emails
    assert max(times.values()) < 3 * min(times.values()), times


async def test_repeated_failures_hold_the_pair_even_with_redis_down(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await with_password(pool, "target@example.com", "the-right-password")
    # a wait far longer than the test: no timing in the assertions
    async with app_with(settings, login_throttle_base_s=600.0) as (client, state):
        state[
            "cache"
        ].guarded.breaker.failure()  # the throttle lives in PostgreSQL: Redis plays no part
        for _ in range(settings.login_throttle_pair_free):
            assert (await login(client, "target@example.com", "guess-guess-guess"))[
                "code"
            ] == "INVALID_CREDENTIALS"
        # held: even the right password is not checked for now, and the answer says so
        held = (
            await gql(
                client,
                LOGIN_HELD,
                {"e": "target@example.com", "p": "the-right-password"},
            )
        )["data"]["login"]
        assert (
            held["code"] == "TOO_MANY_ATTEMPTS"
            and 590 <= held["retryAfterSeconds"] <= 600
        )
        async with acquire(pool) as con:  # the wait has passed
            await con.execute(
                "update login_throttle set last_failure_at = last_failure_at - interval '601 seconds'"
            )
        assert (await login(client, "target@example.com", "the-right-password"))[
            "__typename"
        ] == "AuthPayload"


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: httpx.AsyncClient,
) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    second = (await gql(client, REFRESH, {"t": first["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert (
        second["__typename"] == "AuthPayload"
        and second["refreshToken"] != first["refreshToken"]
    )
    # the spent token again: refused, and the whole family goes with it
    reuse = (await gql(client, REFRESH, {"t": first["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert reuse["__typename"] == "AuthError"
    after = (await gql(client, REFRESH, {"t": second["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert after["__typename"] == "AuthError"
    # a refresh token is no access token
    response = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": f"Bearer {second['refreshToken']}"},
    )
    assert response.status_code == 401 and codes(response.json()) == ["UNAUTHENTICATED"]


async def test_two_concurrent_refreshes_of_one_token_exactly_one_wins(
    client: httpx.AsyncClient,
) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    results = await asyncio.gather(
        *[gql(client, REFRESH, {"t": first["refreshToken"]}) for _ in range(2)]
    )
    kinds = sorted(r["data"]["refreshToken"]["__typename"] for r in results)
    assert kinds == ["AuthError", "AuthPayload"]


async def test_logout_revokes_the_family(client: httpx.AsyncClient) -> None:
    first = await login(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    second = (await gql(client, REFRESH, {"t": first["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert (
        await gql(
            client,
            "mutation($t: String!) { logout(refreshToken: $t) }",
            {"t": second["refreshToken"]},
        )
    )["data"]["logout"] is True
    assert (await gql(client, REFRESH, {"t": second["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthError"


async def test_change_password_revokes_refresh_tokens_and_invalidates_the_entry(
    client: httpx.AsyncClient, pool: asyncpg.Pool, resources: State
) -> None:
    uid = await with_password(
        pool, "pw@example.com", "old-password-123", roles=["viewer"]
    )
    session = await login(client, "pw@example.com", "old-password-123")
    token = session["accessToken"]
    await gql(client, "{ me { permissions } }", token=token)
    assert await resources["redis"].get(f"permissions:user:{uid}") is not None
    change = "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) { __typename ... on InvalidInputError { field } } }"
    weak = await gql(
        client, change, {"c": "old-password-123", "n": "short"}, token=token
    )
    assert weak["data"]["changePassword"] == {
        "__typename": "InvalidInputError",
        "field": "newPassword",
    }
    wrong = await gql(
        client, change, {"c": "nope-nope-nope", "n": "new-password-456"}, token=token
    )
    assert wrong["data"]["changePassword"] == {
        "__typename": "InvalidInputError",
        "field": "currentPassword",
    }
    ok = await gql(
        client, change, {"c": "old-password-123", "n": "new-password-456"}, token=token
    )
    assert ok["data"]["changePassword"]["__typename"] == "PasswordChanged"
    # the entry also says which sessions have ended: invalidated like a permission change, and
    # reloaded by the mutation itself with the not-before time and the revoked session
    entry = json.loads(await stored(resources["redis"], f"permissions:user:{uid}"))
    assert entry["nbf"] is not None and len(entry["rs"]) == 1
    assert (await gql(client, REFRESH, {"t": session["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthError"
    assert (await login(client, "pw@example.com", "old-password-123"))[
        "__typename"
    ] == "AuthError"
    assert (await login(client, "pw@example.com", "new-password-456"))[
        "__typename"
    ] == "AuthPayload"


async def test_update_me_changes_profile_without_touching_permissions(
    client: httpx.AsyncClient, pool: asyncpg.Pool, resources: State, settings: Settings
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "me@example.com", roles=["viewer"])
    token = token_for(uid, settings)
    await gql(client, "{ me { permissions } }", token=token)
    body = await gql(
        client,
        'mutation { updateMe(displayName: "New Name", avatarUrl: "https://a.example/x.png") { __typename ... on UserPayload { user { displayName avatarUrl } } } }',
        token=token,
    )
    assert body["data"]["updateMe"]["user"] == {
        "displayName": "New Name",
        "avatarUrl": "https://a.example/x.png",
    }
    assert await resources["redis"].get(f"permissions:user:{uid}") is not None
    bad = await gql(
        client,
        'mutation { updateMe(avatarUrl: "javascript:alert(1)") { __typename ... on InvalidInputError { field } } }',
        token=token,
    )
    assert bad["data"]["updateMe"] == {
        "__typename": "InvalidInputError",
        "field": "avatarUrl",
    }


async def test_no_token_is_unauthenticated_and_a_missing_permission_is_forbidden(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    anonymous = await gql(client, "{ users { totalCount } }", expect_errors=True)
    assert codes(anonymous) == ["UNAUTHENTICATED"]
    async with acquire(pool) as con:
        uid = await insert_user(con, "v@example.com", roles=["viewer"])
    token = token_for(uid, settings)
    denied = await gql(
        client, "{ auditLog { entries { id } } }", token=token, expect_errors=True
    )
    assert codes(denied) == ["FORBIDDEN"]
    assert denied["errors"][0]["extensions"]["missingPermission"] == "audit:read"
    # the viewer may read users and roles, but nested paths still check: members need users:read (held),
    # role permissions need permissions:read (held); a role with the member list of someone else's path works
    ok = await gql(client, "{ me { roles { name } } }", token=token)
    assert ok["data"]["me"]["roles"] == [{"name": "viewer"}]


async def test_nested_paths_are_checked_too(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with acquire(pool) as con:
        await con.execute("insert into roles (name) values ('selfonly')")
        uid = await insert_user(con, "s@example.com", roles=["selfonly"])
        await insert_user(con, "other@example.com", roles=["viewer"])
    token = token_for(uid, settings)
    # own roles and permissions are readable without roles:read / permissions:read
    own = await gql(client, "{ me { email roles { name } permissions } }", token=token)
    assert own["data"]["me"]["roles"] == [{"name": "selfonly"}]
    # but nothing reachable through them: a role's members or permissions need their own permission
    members = await gql(
        client,
        "{ me { roles { members { edges { node { email } } } } } }",
        token=token,
        expect_errors=True,
    )
    assert codes(members) == ["FORBIDDEN"]
    assert "other@example.com" not in str(members)
    perms = await gql(
        client,
        "{ me { roles { permissions { code } } } }",
        token=token,
        expect_errors=True,
    )
    assert codes(perms) == ["FORBIDDEN"]
    deep = await gql(
        client,
        '{ user(id: "1") { roles { members { edges { node { email roles { name } } } } } } }',
        token=token,
        expect_errors=True,
    )
    assert codes(deep) == ["FORBIDDEN"]
    assert deep["data"] is None or deep["data"]["user"] is None


async def test_role_revoked_while_the_access_token_is_still_valid(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, admin_token: str
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "ed@example.com", roles=["editor"])
        editor = await con.fetchval("select id from roles where name = 'editor'")
    token = token_for(uid, settings)
    create = 'mutation { createUser(input: {email: "x@example.com"}) { __typename } }'
    assert (await gql(client, create, token=token))["data"]["createUser"][
        "__typename"
    ] == "UserPayload"
    await gql(
        client,
        "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename } }",
        {"u": str(uid), "r": str(editor)},
        token=admin_token,
    )
    again = await gql(
        client,
        'mutation { createUser(input: {email: "y@example.com"}) { __typename } }',
        token=token,
        expect_errors=True,
    )
    assert codes(again) == ["FORBIDDEN"]


async def test_deactivated_user_is_locked_out_at_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, admin_token: str
) -> None:
    uid = await with_password(
        pool, "bye@example.com", "a-long-password-2", roles=["viewer"]
    )
    session = await login(client, "bye@example.com", "a-long-password-2")
    assert (await gql(client, "{ me { id } }", token=session["accessToken"]))["data"][
        "me"
    ]["id"] == str(uid)
    await gql(
        client,
        "mutation($u: ID!) { deactivateUser(id: $u) { __typename } }",
        {"u": str(uid)},
        token=admin_token,
    )
    locked = await gql(
        client, "{ me { id } }", token=session["accessToken"], expect_errors=True
    )
    assert codes(locked) == ["UNAUTHENTICATED"]
    assert (await gql(client, REFRESH, {"t": session["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthError"


async def test_invalid_tokens_get_401_before_graphql_runs(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    expired = jwt.encode(
        {
            "sub": "1",
            "exp": 1,
            "iat": 0,
            "nbf": 0,
            "aud": "permgraph",
            "iss": "permgraph",
            "jti": "j",
            "typ": "access",
        },
        settings.jwt_secret.get_secret_value(),
        algorithm="HS256",
    )
    for header in [
        f"Bearer {expired}",
        "Bearer garbage",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer ",
    ]:
        response = await client.post(
            "/graphql",
            json={"query": "{ me { id } }"},
            headers={"Authorization": header},
        )
        assert response.status_code == 401, header
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert codes(response.json()) == ["UNAUTHENTICATED"]


async def test_only_one_login_per_document(client: httpx.AsyncClient) -> None:
    query = 'mutation { a: login(email: "a@x.io", password: "p") { __typename } b: login(email: "b@x.io", password: "p") { __typename } }'
    body = await gql(client, query, expect_errors=True)
    assert body.get("data") is None
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_login_rehashes_a_password_hashed_with_old_parameters(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from argon2 import PasswordHasher

    old = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(
        "an-old-style-password"
    )
    async with acquire(pool) as con:
        uid = await insert_user(con, "old@example.com", roles=["viewer"])
        await con.execute("update users set password_hash = $2 where id = $1", uid, old)
    assert (await login(client, "old@example.com", "an-old-style-password"))[
        "__typename"
    ] == "AuthPayload"
    async with acquire(pool) as con:
        new = await con.fetchval("select password_hash from users where id = $1", uid)
    assert new != old and new.startswith("$argon2id$") and "m=65536" in new
    assert (await login(client, "old@example.com", "an-old-style-password"))[
        "__typename"
    ] == "AuthPayload"
