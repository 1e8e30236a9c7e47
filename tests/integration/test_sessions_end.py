"""Sessions end when they should (issue 11, R5), written as the attacker's sequence.

The attacker holds a copy of an access token (and sometimes of a refresh token).
After a logout, a detected refresh-token reuse or a password change, that copy
must be refused at once: on the full path and on the fast lane, with the read
path still one Redis round trip per request. Also the credentials' own limits: an
oversized Authorization header and a `sub` of non-ASCII digits.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import jwt
import orjson
import pytest

from api.state import State
from permauth.passwords import hash_password
from permauth.tokens import MAX_AUTHORIZATION_BYTES
from permbase.settings import Settings
from permcore.client import CountingConnection
from tests.factories import (
    acquire,
    codes,
    counting_sql,
    gql,
    insert_user,
    metric,
    stored,
    token_for,
)

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on AuthPayload { accessToken refreshToken } ... on AuthError { code } } }"""
REFRESH = """mutation($t: String!) { refreshToken(token: $t) {
  __typename ... on AuthPayload { accessToken refreshToken } ... on AuthError { code } } }"""
LOGOUT = "mutation($t: String!) { logout(refreshToken: $t) }"
CHANGE = """mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) {
  __typename ... on InvalidInputError { field } } }"""
LANE = "graphql_prepared_requests_total"
PASSWORD = "victims-password-1"


async def victim(
    pool: asyncpg.Pool,
    email: str = "victim@example.com",
    roles: list[str] | None = None,
) -> int:
    async with acquire(pool) as con:
        uid = await insert_user(con, email, roles=roles or ["viewer"])
        await con.execute(
            "update users set password_hash = $2 where id = $1",
            uid,
            await hash_password(PASSWORD),
        )
    return uid


async def login(
    client: httpx.AsyncClient,
    email: str = "victim@example.com",
    password: str = PASSWORD,
) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, LOGIN, {"e": email, "p": password}))[
        "data"
    ]["login"]
    assert result["__typename"] == "AuthPayload", result
    return result


async def me(
    client: httpx.AsyncClient, token: str, query: str = "{ me { id } }"
) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
    )


async def works(client: httpx.AsyncClient, token: str) -> bool:
    body = (await me(client, token)).json()
    if body.get("errors"):
        assert codes(body) == ["UNAUTHENTICATED"], body
        return False
    return True


async def refused_on_both_paths(client: httpx.AsyncClient, token: str) -> None:
    """A new document twice (full path; the second validation keeps it), then
    again (the fast lane): UNAUTHENTICATED every time."""
    query = "{ me { id email } }\n# %s" % uuid.uuid4().hex
    before = metric(LANE)
    for _ in range(3):
        response = await me(client, token, query)
        assert response.status_code == 200 and codes(response.json()) == [
            "UNAUTHENTICATED"
        ], response.json()
        assert response.json()["data"] is None
    assert metric(LANE) == before + 1  # the third answer came from the lane


async def test_an_access_token_copied_before_logout_is_refused_after_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await victim(pool)
    session = await login(client)
    stolen = session["accessToken"]
    assert await works(client, stolen)
    assert (await gql(client, LOGOUT, {"t": session["refreshToken"]}))["data"][
        "logout"
    ] is True
    await refused_on_both_paths(client, stolen)
    # a rotated token of the same login is refused as well
    assert (await gql(client, REFRESH, {"t": session["refreshToken"]}))["data"][
        "refreshToken"
    ]["code"] == "INVALID_TOKEN"


async def test_logout_ends_only_that_login(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await victim(pool)
    phone, laptop = await login(client), await login(client)
    await gql(client, LOGOUT, {"t": phone["refreshToken"]})
    assert not await works(client, phone["accessToken"])
    assert await works(client, laptop["accessToken"])
    rotated = (await gql(client, REFRESH, {"t": laptop["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert rotated["__typename"] == "AuthPayload" and await works(
        client, rotated["accessToken"]
    )


async def test_refresh_reuse_ends_the_whole_family_and_no_other_session(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await victim(pool)
    stolen_session = await login(client)
    other_session = await login(client)
    # the victim keeps using the family: it rotates twice
    second = (await gql(client, REFRESH, {"t": stolen_session["refreshToken"]}))[
        "data"
    ]["refreshToken"]
    third = (await gql(client, REFRESH, {"t": second["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert all(
        await asyncio.gather(
            *(works(client, s["accessToken"]) for s in (stolen_session, second, third))
        )
    )
    # the attacker replays the refresh token copied at the start: reuse detected, the family is revoked
    replay = (await gql(client, REFRESH, {"t": stolen_session["refreshToken"]}))[
        "data"
    ]["refreshToken"]
    assert replay == {"__typename": "AuthError", "code": "INVALID_TOKEN"}
    for session in (stolen_session, second, third):
        await refused_on_both_paths(client, session["accessToken"])
    assert (await gql(client, REFRESH, {"t": third["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthError"
    # the user's other login is untouched
    assert await works(client, other_session["accessToken"])
    assert (await gql(client, REFRESH, {"t": other_session["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthPayload"


async def test_a_password_change_ends_every_older_access_token_and_the_new_login_works(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    uid = await victim(pool)
    attackers = await login(client)  # the attacker logged in with the leaked password
    owners = await login(client)
    outside = token_for(
        uid, settings
    )  # a token issued outside any login (no refresh family)
    assert all(
        [
            await works(client, t)
            for t in (attackers["accessToken"], owners["accessToken"], outside)
        ]
    )
    changed = await gql(
        client,
        CHANGE,
        {"c": PASSWORD, "n": "a-brand-new-password"},
        token=owners["accessToken"],
    )
    assert changed["data"]["changePassword"]["__typename"] == "PasswordChanged"
    for token in (attackers["accessToken"], owners["accessToken"], outside):
        await refused_on_both_paths(client, token)
    assert (await gql(client, REFRESH, {"t": attackers["refreshToken"]}))["data"][
        "refreshToken"
    ]["__typename"] == "AuthError"
    fresh = await login(client, password="a-brand-new-password")
    assert await works(client, fresh["accessToken"])
    refreshed = (await gql(client, REFRESH, {"t": fresh["refreshToken"]}))["data"][
        "refreshToken"
    ]
    assert await works(client, refreshed["accessToken"])


async def test_later_fields_of_the_changing_document_are_refused_too(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await victim(pool)
    session = await login(client)
    body = await gql(
        client,
        'mutation($c: String!) { changePassword(currentPassword: $c, newPassword: "another-new-password") { __typename } '
        'updateMe(displayName: "after") { __typename } }',
        {"c": PASSWORD},
        token=session["accessToken"],
        expect_errors=True,
    )
    assert codes(body) == [
        "UNAUTHENTICATED"
    ]  # updateMe came after the session had ended
    async with acquire(pool) as con:
        assert (
            await con.fetchval(
                "select display_name from users where email = 'victim@example.com'"
            )
            == "victim"
        )
    await login(
        client, password="another-new-password"
    )  # while the change itself is done


async def test_a_refresh_racing_a_logout_never_outlives_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    """The attacker refreshes with a copied refresh token while the owner logs out:
    whichever wins, nothing the attacker got keeps working."""
    await victim(pool)
    for _ in range(8):
        session = await login(client)
        raced, _logged_out = await asyncio.gather(
            gql(client, REFRESH, {"t": session["refreshToken"]}),
            gql(client, LOGOUT, {"t": session["refreshToken"]}),
        )
        got = raced["data"]["refreshToken"]
        if got["__typename"] == "AuthPayload":
            assert not await works(client, got["accessToken"])
            assert (await gql(client, REFRESH, {"t": got["refreshToken"]}))["data"][
                "refreshToken"
            ]["__typename"] == "AuthError"
        assert not await works(client, session["accessToken"])


async def test_a_reader_that_loaded_the_entry_before_a_logout_cannot_write_it_back(
    client: httpx.AsyncClient, pool: asyncpg.Pool, resources: State
) -> None:
    uid = await victim(pool)
    session = await login(client)
    cache = resources["cache"]
    read_done, release = asyncio.Event(), asyncio.Event()

    async def pause(
        misses: Any,
    ) -> None:  # between the reader's SQL read and its write-back
        if uid in misses:
            read_done.set()
            await release.wait()

    cache.before_fill = pause
    try:
        reader = asyncio.create_task(me(client, session["accessToken"]))
        await asyncio.wait_for(read_done.wait(), 5)
        await gql(
            client, LOGOUT, {"t": session["refreshToken"]}
        )  # commits and invalidates meanwhile
        release.set()
        assert (await reader).json()["data"]["me"]["id"] == str(
            uid
        )  # it began before the logout
    finally:
        cache.before_fill = None
    assert (
        await resources["redis"].get(f"permissions:user:{uid}") is None
    )  # its write-back was refused
    assert not await works(client, session["accessToken"])


async def test_an_entry_of_the_old_format_is_a_miss_not_a_pass(
    client: httpx.AsyncClient, pool: asyncpg.Pool, resources: State
) -> None:
    uid = await victim(pool)
    session = await login(client)
    await gql(client, LOGOUT, {"t": session["refreshToken"]})
    key = f"permissions:user:{uid}"
    assert not await works(client, session["accessToken"])
    epoch = (await stored(resources["redis"], "permissions:user:epoch")).decode()
    # what an instance of the previous version writes: no session facts
    old = {
        "roles": ["viewer"],
        "role_ids": [3],
        "permissions": ["users:read"],
        "active": True,
        "e": epoch,
    }
    await resources["redis"].set(key, orjson.dumps(old))
    with counting_sql() as sql:
        assert not await works(client, session["accessToken"])
    assert (
        sql.permission_sql == 1
    )  # read from PostgreSQL, and written back in the new format
    assert orjson.loads(await stored(resources["redis"], key))["v"] == 3


async def test_the_read_path_is_still_one_redis_round_trip(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await victim(pool)
    ended, live = await login(client), await login(client)
    await gql(client, LOGOUT, {"t": ended["refreshToken"]})
    for token, ok in ((live["accessToken"], True), (ended["accessToken"], False)):
        for query in ("{ me { id } }", '{ user(id: "1") { id } }'):
            await me(
                client, token, query
            )  # warm: the entries (the caller's lists the revoked session) are cached
            trips = CountingConnection.round_trips
            with counting_sql() as sql:
                body = (await me(client, token, query)).json()
            assert CountingConnection.round_trips - trips == 1, query  # the one MGET
            assert sql.permission_sql == 0  # the entry came from it
            assert ("errors" not in body) == ok, body


async def test_an_authorization_header_over_8_kib_is_refused_without_decoding(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = token_for(
        1, settings
    )  # valid, and never verified before: a decode would show
    header = f"Bearer {token}".ljust(
        MAX_AUTHORIZATION_BYTES + 1
    )  # the token stays valid after strip()
    decoded: list[int] = []
    real = jwt.decode

    def counting_decode(*a: Any, **k: Any) -> Any:
        decoded.append(1)
        return real(*a, **k)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    for query in (
        "{ me { id } }",
        "{ me { id } }",
        "{ me { id } }",
        "{ roles { name } }",
    ):  # full path, then lane
        response = await client.post(
            "/graphql", json={"query": query}, headers={"Authorization": header}
        )
        assert response.status_code == 401 and codes(response.json()) == [
            "UNAUTHENTICATED"
        ]
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert decoded == []
    # at the cap, the same token is read
    response = await client.post(
        "/graphql",
        json={"query": "{ me { id } }"},
        headers={"Authorization": header[:-1]},
    )
    assert response.json()["data"]["me"]["id"] == "1" and decoded == [1]


async def test_a_sub_of_non_ascii_digits_is_refused(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with acquire(pool) as con:
        for i in range(2, 13):
            await insert_user(
                con, f"u{i}@example.com", roles=["viewer"]
            )  # user 12 exists
    now = datetime.now(UTC)
    claims = {
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(minutes=5),
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        "jti": "j",
        "typ": "access",
        "sid": "s",
    }
    secret = settings.jwt_secret.get_secret_value()
    assert (
        await me(client, jwt.encode({**claims, "sub": "12"}, secret, algorithm="HS256"))
    ).json()["data"]["me"]["id"] == "12"
    for sub in ("١٢", "１２", "¹²", "12 "):  # noqa: RUF001 - look-alike digits are the point
        response = await me(
            client, jwt.encode({**claims, "sub": sub}, secret, algorithm="HS256")
        )
        assert response.status_code == 401 and codes(response.json()) == [
            "UNAUTHENTICATED"
        ], sub
