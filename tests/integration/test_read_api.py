"""The read API against real PostgreSQL and Redis: data, pagination, errors, statement counts."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

from permdev.seed import ADMIN_EMAIL, seed
from schema.pagination import encode_cursor
from tests.factories import acquire, codes, counting_sql, gql, insert_user

USERS_PAGE = """
query($first: Int, $after: String, $filter: UserFilter) {
  users(first: $first, after: $after, filter: $filter) {
    totalCount
    edges { cursor node { id email displayName isActive roles { name } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


async def test_seeded_roles_and_permissions(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    body = await gql(
        client,
        "{ roles { name permissions { code } } permissions { code } }",
        token=admin_token,
    )
    roles = {
        r["name"]: [p["code"] for p in r["permissions"]] for r in body["data"]["roles"]
    }
    assert set(roles) == {"admin", "editor", "viewer"}
    assert "roles:write" in roles["admin"] and "roles:write" not in roles["viewer"]
    codes_ = [p["code"] for p in body["data"]["permissions"]]
    for code in [
        "users:read",
        "users:write",
        "roles:read",
        "roles:write",
        "permissions:read",
        "permissions:write",
        "api_keys:read",
    ]:
        assert code in codes_


async def test_me_and_user_by_id(client: httpx.AsyncClient, admin_token: str) -> None:
    body = await gql(
        client,
        '{ me { id email roles { name } permissions } user(id: "1") { email isActive createdAt } }',
        token=admin_token,
    )
    assert body["data"]["me"]["email"] == ADMIN_EMAIL
    assert body["data"]["me"]["roles"] == [{"name": "admin"}]
    assert "roles:write" in body["data"]["me"]["permissions"]
    assert body["data"]["user"]["isActive"] is True


async def test_pagination_walks_every_user_once(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        for i in range(6):
            await insert_user(con, f"p{i}@example.com", roles=["viewer"])
    seen, after, pages = [], None, 0
    while True:
        body = await gql(
            client, USERS_PAGE, {"first": 3, "after": after}, token=admin_token
        )
        conn = body["data"]["users"]
        assert conn["totalCount"] == 7
        assert conn["pageInfo"]["hasPreviousPage"] is (after is not None)
        seen += [e["node"]["email"] for e in conn["edges"]]
        pages += 1
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert pages == 3  # 3 + 3 + 1
    assert seen == [ADMIN_EMAIL] + [f"p{i}@example.com" for i in range(6)]


async def test_page_edges(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        ids = [await insert_user(con, f"e{i}@example.com") for i in range(3)]
    # exactly the size of what is left: no next page
    body = await gql(
        client,
        USERS_PAGE,
        {"first": 3, "after": encode_cursor("user", 1)},
        token=admin_token,
    )
    assert [e["node"]["id"] for e in body["data"]["users"]["edges"]] == [
        str(i) for i in ids
    ]
    assert body["data"]["users"]["pageInfo"]["hasNextPage"] is False
    # after the last user: empty page, null cursors
    body = await gql(
        client,
        USERS_PAGE,
        {"first": 3, "after": encode_cursor("user", ids[-1])},
        token=admin_token,
    )
    conn = body["data"]["users"]
    assert (
        conn["edges"] == []
        and conn["pageInfo"]["endCursor"] is None
        and conn["pageInfo"]["hasNextPage"] is False
    )
    # first: 0 is a valid empty page that still reports the total
    body = await gql(client, USERS_PAGE, {"first": 0}, token=admin_token)
    assert (
        body["data"]["users"]["edges"] == []
        and body["data"]["users"]["totalCount"] == 4
    )


async def test_filters(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        await insert_user(con, "Alice.Smith@Example.com", roles=["editor"])
        await insert_user(con, "bob@example.com", roles=["viewer"], active=False)
        await insert_user(con, "carol_100%@example.com", roles=["viewer"])

    async def emails(flt: dict[str, Any]) -> list[str]:
        body = await gql(client, USERS_PAGE, {"filter": flt}, token=admin_token)
        return [e["node"]["email"] for e in body["data"]["users"]["edges"]]

    assert await emails({"emailContains": "alice.smith"}) == ["Alice.Smith@Example.com"]
    assert await emails({"emailContains": "100%"}) == [
        "carol_100%@example.com"
    ]  # no LIKE wildcards
    assert await emails({"emailContains": "_"}) == ["carol_100%@example.com"]
    assert await emails({"isActive": False}) == ["bob@example.com"]
    assert await emails({"role": "viewer"}) == [
        "bob@example.com",
        "carol_100%@example.com",
    ]
    assert await emails({"role": "viewer", "isActive": True}) == [
        "carol_100%@example.com"
    ]
    assert await emails({"role": "nope"}) == []


async def test_role_members_paginated(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        for i in range(5):
            await insert_user(con, f"m{i}@example.com", roles=["viewer"])
        role_id = await con.fetchval("select id from roles where name = 'viewer'")
    q = "query($id: ID!, $after: String) { role(id: $id) { name members(first: 2, after: $after) { totalCount edges { node { email } } pageInfo { hasNextPage endCursor } } } }"
    got, after = [], None
    while True:
        m = (
            await gql(
                client, q, {"id": str(role_id), "after": after}, token=admin_token
            )
        )["data"]["role"]["members"]
        assert m["totalCount"] == 5
        got += [e["node"]["email"] for e in m["edges"]]
        if not m["pageInfo"]["hasNextPage"]:
            break
        after = m["pageInfo"]["endCursor"]
    assert got == [f"m{i}@example.com" for i in range(5)]


@pytest.mark.parametrize(
    ("query", "variables", "code"),
    [
        (USERS_PAGE, {"first": -1}, "BAD_USER_INPUT"),
        (USERS_PAGE, {"first": 1000000}, "BAD_USER_INPUT"),
        (USERS_PAGE, {"after": "not-a-cursor"}, "BAD_USER_INPUT"),
        (USERS_PAGE, {"after": encode_cursor("audit", 3)}, "BAD_USER_INPUT"),
        ('{ user(id: "999999") { email } }', {}, "NOT_FOUND"),
        ('{ user(id: "abc") { email } }', {}, "BAD_USER_INPUT"),
        ('{ role(id: "424242") { name } }', {}, "NOT_FOUND"),
        (
            '{ role(id: "1") { members(first: -5) { totalCount } } }',
            {},
            "BAD_USER_INPUT",
        ),
        ("{ user { email } }", {}, "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_bad_input_gets_a_coded_error(
    client: httpx.AsyncClient,
    admin_token: str,
    query: str,
    variables: dict[str, Any],
    code: str,
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code in (200, 400)
    body = response.json()
    assert codes(body) == [code], body
    assert "Traceback" not in response.text


async def test_statements_per_page_do_not_grow_with_its_size(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        await seed(con, admin_password=None, users=300)
    query = """query($n: Int) { users(first: $n) { totalCount edges { node { email roles { name }
               permissions hasPermission(code: "res_01:read") } } } roles { name members(first: 3) { totalCount edges { node { email } } } } }"""
    counts = {}
    # each connection introspects a type the first time it sees it: warm them all
    for _ in range(3):
        await gql(client, query, {"n": 5}, token=admin_token)
    for n in (10, 100, 250):
        with counting_sql() as sql:
            body = await gql(client, query, {"n": n}, token=admin_token)
        assert len(body["data"]["users"]["edges"]) == n
        counts[n] = len(sql.statements)
    assert counts[10] == counts[100] == counts[250], counts
    assert counts[10] <= 8, counts
