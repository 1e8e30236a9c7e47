"""Remembered answers (`ResponseCache`, schema/engine/prepared.py): a query answered from
permission entries alone is sent again, without execution, while those entries
are unchanged; it is always what executing would answer.

Each document is sent four times: twice through the full path (a new text: a
unique comment), then through the lane, which executes and remembers, then
through the lane again, which replays."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import (
    HealthCheck,
    given,
    settings as hypothesis_settings,
    strategies as st,
)

from permbase.settings import Settings
from permcore.client import CountingConnection
from tests.factories import (
    acquire,
    app_with,
    counting_sql,
    gql,
    insert_user,
    metric,
    token_for,
)
from tests.integration.test_change_stream import until
from tests.integration.test_permission_cache import commandstats, redis_calls

REPLAYED = "graphql_responses_replayed_total"


def replays(outcome: str = "replayed") -> float:
    return metric(REPLAYED, {"outcome": outcome})


async def post(
    client: httpx.AsyncClient,
    body: dict[str, Any],
    token: str | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {
        **(headers or {}),
        **({"Authorization": f"Bearer {token}"} if token else {}),
    }
    response = await client.post("/graphql", json=body, headers=sent)
    return response.status_code, response.json()


async def four(
    client: httpx.AsyncClient,
    query: str,
    token: str | None,
    variables: dict[str, Any] | None = None,
    **extra: Any,
) -> tuple[list[tuple[int, Any]], float]:
    """The four answers, and how many were replayed."""
    body: dict[str, Any] = {"query": f"{query}\n# {uuid.uuid4().hex}", **extra}
    if variables is not None:
        body["variables"] = variables
    before = replays()
    answers = [await post(client, body, token) for _ in range(4)]
    return answers, replays() - before


ENTRY_ONLY = [
    '{ user(id: "1") { id isActive permissions roles { name } } }',
    '{ user(id: "1") { hasPermission(code: "users:read") no: hasPermission(code: "x:y") } }',
    "{ me { id permissions } }",
    '{ me { roles { name } } u: user(id: "1") { __typename permissions } }',
    'fragment F on User { permissions } query { user(id: "1") { ...F id } }',
]


@pytest.mark.parametrize("query", ENTRY_ONLY)
async def test_a_remembered_answer_is_what_execution_answers(
    client: httpx.AsyncClient, admin_token: str, query: str
) -> None:
    answers, replayed = await four(client, query, admin_token)
    assert answers[0][0] == 200 and "errors" not in answers[0][1], answers[0]
    assert answers == [answers[0]] * 4
    assert replayed == 1  # the fourth


async def test_a_replay_costs_one_mget_and_no_sql(
    client: httpx.AsyncClient, admin_token: str, redis_client: aioredis.Redis
) -> None:
    body = {"query": f'{{ user(id: "1") {{ id permissions }} }} # {uuid.uuid4().hex}'}
    for _ in range(3):
        await post(client, body, admin_token)
    before, trips = await commandstats(redis_client), CountingConnection.round_trips
    with counting_sql() as sql:
        replayed = replays()
        await post(client, body, admin_token)
        assert replays() == replayed + 1
    assert sql.statements == []
    assert await redis_calls(redis_client, before) == {"mget": 1}
    assert CountingConnection.round_trips - trips == 1


async def test_variables_and_the_cost_extension_are_part_of_the_answer(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        viewer = await insert_user(con, "v@example.com", roles=["viewer"])
    query = "query Q($id: ID!) { user(id: $id) { id permissions } }"
    admin, replayed = await four(client, query, admin_token, {"id": "1"})
    assert replayed == 1
    other, replayed = await four(client, query, admin_token, {"id": str(viewer)})
    assert replayed == 1
    assert other[3][1]["data"]["user"]["id"] == str(viewer) != "1"
    assert other[3][1] != admin[3][1]
    costed, replayed = await four(
        client, query, admin_token, {"id": "1"}, extensions={"cost": True}
    )
    assert replayed == 1 and "cost" in costed[3][1]["extensions"]
    assert "extensions" not in admin[3][1]


async def test_a_change_is_answered_at_once_then_remembered_again(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
        viewer_role = await con.fetchval("select id from roles where name = 'viewer'")
    query = f'{{ user(id: "{user_id}") {{ permissions }} }}'
    answers, replayed = await four(client, query, admin_token)
    assert replayed == 1 and answers[3][1]["data"]["user"]["permissions"]
    body = {"query": f"{query}\n# {uuid.uuid4().hex}"}
    for _ in range(3):
        await post(client, body, admin_token)

    await gql(
        client,
        "mutation($u: ID!, $r: ID!) { removeRole(userId: $u, roleId: $r) { __typename } }",
        {"u": str(user_id), "r": str(viewer_role)},
        token=admin_token,
    )
    changed, replayed = replays("changed"), replays()
    status, after = await post(client, body, admin_token)
    assert (status, after) == (200, {"data": {"user": {"permissions": []}}})
    assert (replays("changed"), replays()) == (changed + 1, replayed)
    # the entry was refilled from PostgreSQL: the answer after it is remembered
    for _ in range(2):
        assert await post(client, body, admin_token) == (status, after)
    assert replays() == replayed + 1


async def test_a_revoke_by_sql_is_never_replayed_over(
    settings: Settings, admin_token: str, pool: asyncpg.Pool
) -> None:
    """A writer that is not the API (psql): once the change stream has applied
    it, no remembered answer hides it."""
    async with acquire(pool) as con:
        user_id = await insert_user(con, "u@example.com", roles=["viewer"])
    query = f'{{ user(id: "{user_id}") {{ permissions }} }}'
    body = {"query": f"{query}\n# {uuid.uuid4().hex}"}
    async with app_with(settings, change_listen=True) as (client, _):
        for _ in range(4):
            _, answer = await post(client, body, admin_token)
        assert answer["data"]["user"]["permissions"]
        async with acquire(pool) as con:
            await con.execute("delete from user_roles where user_id = $1", user_id)

        async def revoked() -> bool:
            _, answer = await post(client, body, admin_token)
            return bool(answer["data"]["user"]["permissions"] == [])

        await until(revoked)  # the stream's pass (NOTIFY: milliseconds)
        for _ in range(3):
            assert await post(client, body, admin_token) == (
                200,
                {"data": {"user": {"permissions": []}}},
            )


async def test_answers_are_the_callers_own(
    client: httpx.AsyncClient, admin_token: str, pool: asyncpg.Pool, settings: Settings
) -> None:
    """One caller's remembered answer is never another's: a caller without
    users:read is refused the same document, and the same user with another
    token executes it again (and a deactivated caller is refused at once)."""
    async with acquire(pool) as con:
        nobody = await insert_user(con, "nobody@example.com")
        admin2 = await insert_user(con, "admin2@example.com", roles=["admin"])
    query = '{ user(id: "1") { permissions } }'
    body = {"query": f"{query}\n# {uuid.uuid4().hex}"}
    for _ in range(4):
        await post(client, body, admin_token)
    refused = [await post(client, body, token_for(nobody, settings)) for _ in range(3)]
    assert all(a[1]["errors"][0]["extensions"]["code"] == "FORBIDDEN" for a in refused)

    token2 = token_for(admin2, settings)
    before = replays()
    first = await post(client, body, token2)
    assert replays() == before  # not the first admin's answer
    for _ in range(2):
        assert await post(client, body, token2) == first
    assert replays() == before + 1

    await gql(
        client,
        "mutation($u: ID!) { deactivateUser(id: $u) { __typename } }",
        {"u": str(admin2)},
        token=admin_token,
    )
    status, denied = await post(client, body, token2)
    assert status == 200 and denied["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


async def test_what_is_not_remembered(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    """Answers that read rows (email, a page), answers with errors, anonymous
    requests, and requests with a consistency token always execute."""
    for query in (
        '{ user(id: "1") { email permissions } }',
        "{ users(first: 2) { edges { node { id permissions } } } }",
        "{ me { displayName } }",
        '{ user(id: "999999") { permissions } }',
    ):
        _, replayed = await four(client, query, admin_token)
        assert replayed == 0, query
    _, replayed = await four(client, '{ user(id: "1") { id } }', None)
    assert replayed == 0

    body = {"query": f'{{ user(id: "1") {{ id permissions }} }} # {uuid.uuid4().hex}'}
    for _ in range(3):
        await post(client, body, admin_token)
    written = await client.post(
        "/graphql",
        json={"query": 'mutation { updateMe(displayName: "A") { __typename } }'},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    token = written.json()["extensions"]["consistencyToken"]
    before = replays()
    await post(client, body, admin_token, {"X-Consistency-Token": token})
    assert replays() == before


ROOTS = st.sampled_from(['user(id: "1")', 'user(id: "{viewer}")', "me"])
CODES = st.sampled_from(["users:read", "roles:write", "permissions:read", "nope"])
FIELDS = st.lists(
    st.one_of(
        st.sampled_from(
            ["id", "isActive", "permissions", "roles { name }", "__typename"]
        ),
        CODES.map(lambda c: f'hasPermission(code: "{c}")'),
    ),
    min_size=1,
    max_size=4,
    unique=True,
)


@given(root=ROOTS, fields=FIELDS, caller=st.sampled_from(["admin", "viewer", "none"]))
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_any_entry_only_selection_answers_as_executed(
    client: httpx.AsyncClient,
    admin_token: str,
    pool: asyncpg.Pool,
    settings: Settings,
    root: str,
    fields: list[str],
    caller: str,
) -> None:
    async with acquire(pool) as con:
        ids = {
            name: await con.fetchval("select id from users where email = $1", email)
            or await insert_user(con, email, roles=roles)
            for name, email, roles in (
                ("viewer", "viewer@example.com", ["viewer"]),
                ("none", "none@example.com", []),
            )
        }
    tokens = {"admin": admin_token} | {
        n: token_for(i, settings) for n, i in ids.items()
    }
    selection = " ".join(
        f"f{i}: {f}" if f.startswith("hasPermission") else f
        for i, f in enumerate(fields)
    )
    query = f"{{ {root.format(viewer=ids['viewer'])} {{ {selection} }} }}"
    answers, replayed = await four(client, query, tokens[caller])
    assert answers == [answers[0]] * 4, query
    errors = "errors" in answers[0][1]
    assert replayed == (0 if errors else 1), (query, answers[0])
