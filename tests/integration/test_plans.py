"""Plans (schema/engine/plans.py) answer exactly what graphql-core's own
completion answers: each generated document is asked twice over HTTP by the
same caller, with plans off and on, and the two responses must be equal, data,
errors, paths and codes. The callers include one who may read only some of
what is asked (errors in the middle of a page: the plan gives way to
graphql-core for those objects)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import (
    HealthCheck,
    given,
    settings as hypothesis_settings,
    strategies as st,
)

from permbase.settings import Settings
from permdev.seed import seed
from schema.engine import plans
from schema.engine.execution import PermgraphExecutionContext
from tests.factories import acquire, insert_user, token_for

CODES = st.sampled_from(["users:read", "permissions:read", "roles:write", "x:y"])
SCALARS = ["id", "email", "displayName", "avatarUrl", "isActive", "createdAt"]


@st.composite
def user_selection(draw: st.DrawFn) -> str:
    parts: list[str] = draw(
        st.lists(
            st.one_of(
                st.sampled_from([*SCALARS, "permissions", "__typename"]),
                st.sampled_from(
                    ["roles { name }", "roles { id name __typename }", "roles { id }"]
                ),
                CODES.map(lambda c: f'hasPermission(code: "{c}")'),
                st.sampled_from(SCALARS).map(lambda f: f"{f} @include(if: $flag)"),
                st.sampled_from(SCALARS).map(lambda f: f"{f} @skip(if: $flag)"),
            ),
            min_size=1,
            max_size=6,
            unique=True,
        )
    )
    # aliases keep repeated fields with different arguments apart
    return " ".join(f"a{i}: {p}" if "(" in p else p for i, p in enumerate(parts))


@st.composite
def documents(draw: st.DrawFn) -> str:
    node = draw(user_selection())
    first = draw(st.integers(0, 12))
    root = draw(
        st.sampled_from(
            [
                f"users(first: {first}) {{ edges {{ cursor node {{ {node} }} }} pageInfo {{ hasNextPage endCursor }} }}",
                f"users(first: {first}) {{ __typename edges {{ node {{ {node} }} }} }}",
                f"users(first: {first}) {{ totalCount edges {{ node {{ {node} }} }} }}",
                f'user(id: "3") {{ {node} }}',
                f"me {{ {node} }}",
                f"roles {{ name members(first: 3) {{ edges {{ node {{ {node} }} }} }} }}",
                f"page: users(first: {first}) {{ edges {{ node {{ ...U }} }} }}",
            ]
        )
    )
    fragment = f" fragment U on User {{ {node} }}" if "...U" in root else ""
    return f"query Q($flag: Boolean!) {{ flagged: __typename @include(if: $flag) {root} }}{fragment}"


@pytest.fixture
async def callers(
    pool: asyncpg.Pool, settings: Settings, admin_token: str
) -> dict[str, str]:
    async with acquire(pool) as con:
        await seed(con, users=30)
        partial = await con.fetchval(
            "insert into roles (name, description) values ('reader', '') returning id"
        )
        await con.execute(
            "insert into role_permissions (role_id, permission_id)"
            " select $1, id from permissions where code = 'users:read'",
            partial,
        )
        some = await insert_user(con, "some@example.com")
        await con.execute(
            "insert into user_roles (user_id, role_id) values ($1, $2)", some, partial
        )
        viewer = await insert_user(con, "viewer@example.com", roles=["viewer"])
    return {
        "admin": admin_token,
        "viewer": token_for(viewer, settings),
        "users:read only": token_for(some, settings),
    }


async def ask(
    client: httpx.AsyncClient, query: str, flag: bool, token: str
) -> tuple[int, Any]:
    response = await client.post(
        "/graphql",
        # a new text each time: the full path, never a remembered answer
        json={"query": f"{query}\n# {uuid.uuid4().hex}", "variables": {"flag": flag}},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.json()


@given(
    query=documents(),
    flag=st.booleans(),
    caller=st.sampled_from(["admin", "viewer", "users:read only"]),
)
@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_plans_answer_what_graphql_core_answers(
    client: httpx.AsyncClient,
    callers: dict[str, str],
    query: str,
    flag: bool,
    caller: str,
) -> None:
    token = callers[caller]
    PermgraphExecutionContext.plans = False
    try:
        general = await ask(client, query, flag, token)
    finally:
        PermgraphExecutionContext.plans = True
    planned = await ask(client, query, flag, token)
    assert planned == general, query
    assert "INTERNAL_SERVER_ERROR" not in str(general), (query, general)


async def test_a_page_of_users_is_completed_by_plan(
    client: httpx.AsyncClient,
    callers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The benchmark's page (bench/README.md, Q1) takes the plan, whole: one
    plan run for the connection, none given up."""
    runs: list[bool] = []
    real = plans.run

    def counting(plan: Any, source: Any) -> Any:
        try:
            result = real(plan, source)
        except Exception:
            runs.append(False)
            raise
        runs.append(True)
        return result

    monkeypatch.setattr("schema.engine.execution.run", counting)
    status, body = await ask(
        client,
        "query Q($flag: Boolean!) { flagged: __typename @include(if: $flag) users(first: 20) { edges { node { id email roles { name } permissions } } } }",
        True,
        callers["admin"],
    )
    assert status == 200 and len(body["data"]["users"]["edges"]) == 20
    assert runs == [True]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        # an argument that does not coerce: graphql-core's error, at the field
        (
            'query Q($c: String = "users:read") { me { id hasPermission(code: $c) } }',
            {"c": None},
        ),
        (
            "query Q($c: String!) { users(first: 2) { edges { node { a: hasPermission(code: $c) } } } }",
            {"c": "users:read"},
        ),
    ],
)
async def test_arguments_from_variables_answer_as_graphql_core(
    client: httpx.AsyncClient,
    callers: dict[str, str],
    query: str,
    variables: dict[str, Any],
) -> None:
    async def ask_with(plans: bool) -> tuple[int, Any]:
        PermgraphExecutionContext.plans = plans
        try:
            response = await client.post(
                "/graphql",
                json={
                    "query": f"{query}\n# {uuid.uuid4().hex}",
                    "variables": variables,
                },
                headers={"Authorization": f"Bearer {callers['admin']}"},
            )
        finally:
            PermgraphExecutionContext.plans = True
        return response.status_code, response.json()

    assert await ask_with(True) == await ask_with(False)
