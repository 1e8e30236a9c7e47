"""The fast lane (api/lane.py, schema/engine/prepared.py) answers exactly what the full
path answers: each request is sent twice, the first time through the full path
(the document is new: a unique comment makes it so), the second through the
lane for a query that validated; status and body must be equal."""

from __future__ import annotations

import random
import string
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from graphql import parse

from permbase.settings import Settings
from permstore import roles as role_store
from schema.engine.prepared import PreparedDocuments
from tests.factories import acquire, insert_user, metric, token_for

LANE = "graphql_prepared_requests_total"


async def twice(
    client: httpx.AsyncClient,
    query: str,
    variables: Any = None,
    *,
    token: str | None = None,
    operation_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[httpx.Response, httpx.Response, float]:
    """(full path response, second response, lane requests during the second):
    a document is kept from its second validation on, so it is sent once
    beforehand (its answer is not compared: a mutation would differ)."""
    body: dict[str, Any] = {"query": f"{query}\n# {uuid.uuid4().hex}"}
    if variables is not None:
        body["variables"] = variables
    if operation_name is not None:
        body["operationName"] = operation_name
    sent = {
        **(headers or {}),
        **({"Authorization": f"Bearer {token}"} if token else {}),
    }
    before = metric(LANE)
    await client.post("/graphql", json=body, headers=sent)
    first = await client.post("/graphql", json=body, headers=sent)
    assert metric(LANE) == before  # a document seen once never takes the lane
    second = await client.post("/graphql", json=body, headers=sent)
    return first, second, metric(LANE) - before


def same(first: httpx.Response, second: httpx.Response) -> dict[str, Any]:
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert second.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = first.json()
    return body


CASES = [
    (
        '{ user(id: "1") { id email isActive roles { name } permissions hasPermission(code: "users:read") } }',
        None,
        None,
    ),
    (
        "{ users(first: 3) { totalCount edges { cursor node { id permissions } } pageInfo { hasNextPage endCursor } } }",
        None,
        None,
    ),
    ("{ me { email roles { name } } roles { name permissions { code } } }", None, None),
    ('{ user(id: "999999") { id } }', None, None),  # NOT_FOUND
    ("{ users(first: 100000) { totalCount } }", None, None),  # BAD_USER_INPUT
    ("query Q($id: ID!) { user(id: $id) { id email } }", {"id": "1"}, None),
    (
        "query Q($id: ID!) { user(id: $id) { id } }",
        {"id": {"not": "an id"}},
        None,
    ),  # variable coercion
    ("query Q($id: ID!) { user(id: $id) { id } }", {}, None),  # missing variable
    ("query A { me { id } } query B { roles { name } }", None, "B"),
]


@pytest.mark.parametrize(("query", "variables", "operation_name"), CASES)
async def test_the_lane_answers_what_the_full_path_answers(
    client: httpx.AsyncClient,
    admin_token: str,
    query: str,
    variables: Any,
    operation_name: str | None,
) -> None:
    first, second, lane = await twice(
        client, query, variables, token=admin_token, operation_name=operation_name
    )
    same(first, second)
    assert lane == 1
    assert (
        "INTERNAL_SERVER_ERROR" not in first.text
    )  # every case here is the client's doing or none


async def test_a_variable_that_does_not_coerce_is_bad_user_input(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    first, _, _ = await twice(
        client,
        "query Q($id: ID!) { user(id: $id) { id } }",
        {"id": {"not": "an id"}},
        token=admin_token,
    )
    error = first.json()["errors"][0]
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"].startswith("Variable '$id' has invalid value")


async def test_denials_are_the_same_in_the_lane(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings
) -> None:
    async with acquire(pool) as con:
        nobody = await insert_user(con, "nobody@example.com")
        gone = await insert_user(con, "gone@example.com", roles=["admin"], active=False)
    first, second, lane = await twice(
        client,
        '{ user(id: "1") { id permissions } }',
        token=token_for(nobody, settings),
    )
    assert (
        same(first, second)["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        and lane == 1
    )
    first, second, lane = await twice(
        client, "{ roles { name } }", token=token_for(gone, settings)
    )
    assert (
        same(first, second)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        and lane == 1
    )
    first, second, lane = await twice(client, '{ user(id: "1") { id } }')  # anonymous
    assert (
        same(first, second)["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        and lane == 1
    )


async def test_what_the_lane_leaves_to_the_app(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    # a token that does not verify: the app answers 401 with its header
    first, second, lane = await twice(
        client, "{ roles { name } }", token=admin_token[:-4] + "AAAA"
    )
    assert first.status_code == second.status_code == 401 and lane == 0
    assert second.headers["www-authenticate"].startswith("Bearer")
    # mutations never take the lane (and run each time)
    code = "lane:" + "".join(random.choices(string.ascii_lowercase, k=10))
    first, second, lane = await twice(
        client,
        'mutation { createPermission(code: "%s") { __typename } }' % code,
        token=admin_token,
    )
    created, again = (
        r.json()["data"]["createPermission"]["__typename"] for r in (first, second)
    )
    assert lane == 0 and (created, again) == (
        "ConflictError",
        "ConflictError",
    )  # it ran each time
    # a document that failed validation is never remembered
    deep = "{ me { roles { members { edges { node { roles { members { edges { node { id } } } } } } } } } }"
    first, second, lane = await twice(client, deep, token=admin_token)
    assert (
        same(first, second)["errors"][0]["extensions"]["code"]
        == "GRAPHQL_VALIDATION_FAILED"
        and lane == 0
    )
    # an operation name the document does not have, and extra request keys
    first, second, lane = await twice(
        client, "query A { me { id } }", token=admin_token, operation_name="Nope"
    )
    assert first.status_code == second.status_code and lane == 0
    body = {"query": "{ me { id } }", "extensions": {"persistedQuery": {}}}
    await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    before = metric(LANE)
    await client.post(
        "/graphql", json=body, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert metric(LANE) == before


async def test_internal_errors_are_masked_in_the_lane_too(
    client: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(role_store, "select_all", broken)
    first, second, lane = await twice(
        client,
        "{ roles { name } }",
        token=admin_token,
        headers={"X-Request-Id": "req-lane"},
    )
    body = same(first, second)
    assert lane == 1 and "hunter2" not in second.text
    assert body["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": "req-lane",
    }


def test_prepared_documents_are_bounded_and_kept_from_the_second_sighting() -> None:
    prepared = PreparedDocuments(maxsize=2)
    prepared.remember("{ a }", parse("{ a }"))
    assert prepared.get("{ a }") is None  # a one-off document is not kept
    for text in ("{ a }", "{ b }", "{ b }"):
        prepared.remember(text, parse(text))
    assert prepared.get("{ a }") is not None  # used: now the most recent
    prepared.remember("{ c }", parse("{ c }"))
    prepared.remember("{ c }", parse("{ c }"))
    assert (
        len(prepared) == 2
        and prepared.get("{ b }") is None
        and prepared.get("{ a }") is not None
    )
