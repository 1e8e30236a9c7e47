"""Odd ids and odd text in every operation that takes them, generated from the schema.

Every root field with an `ID` argument, and every `String` argument or input
field, gets a document of its own with the odd value passed as a variable (the
other required arguments hold ordinary values). Each value is sent as the admin,
as a user without roles and anonymously. Whatever the value, the client sees
HTTP 200 with coded errors, never INTERNAL_SERVER_ERROR, and the log holds no
ERROR: a caller who may not call the operation is refused first (FORBIDDEN,
UNAUTHENTICATED); one who may is told BAD_USER_INPUT or gets the mutation's
InvalidInputError; login, refreshToken and logout give their usual refusal.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
    is_required_argument,
    is_required_input_field,
)
from hypothesis import HealthCheck, example, given, settings, strategies as st
from strawberry.permission import PermissionExtension

from permbase.settings import Settings
from schema.permissions import HasPermission, IsAuthenticated
from schema.root import build_schema
from tests.conftest import ADMIN_PASSWORD
from tests.factories import acquire, insert_user, token_for

SCHEMA = build_schema(
    max_depth=20, max_aliases=20, max_tokens=10_000, introspection=True
)._schema

# Root fields without a permission extension: those that check users:read in
# their resolver (schema/engine/viewer.py), and those anyone may call. A new field
# without an extension must be added to one of them (test_every_field_is_classified).
CHECKED_IN_RESOLVER = {"user": "users:read", "users": "users:read"}
PUBLIC = frozenset({"login", "refreshToken", "logout"})
# Text that is hashed or decoded, never stored: a NUL in a password is a valid
# character. A lone surrogate is not text at all: the edge refuses the body
# (400 BAD_REQUEST, api/lane.py) before any field runs, for every caller.
PASSWORDS = frozenset(
    {
        ("login", "password"),
        ("changePassword", "currentPassword"),
        ("changePassword", "newPassword"),
        ("createUser", "input", "password"),
    }
)
TOKENS = frozenset({("refreshToken", "token"), ("logout", "refreshToken")})
# What a caller who may call the operation gets back for an odd value, besides BAD_USER_INPUT.
REFUSALS = frozenset({"InvalidInputError"})
PUBLIC_REFUSAL = {
    "login": "INVALID_CREDENTIALS",
    "refreshToken": "INVALID_TOKEN",
    "logout": None,
}

ANONYMOUS, NO_ROLES, ADMIN = "anonymous", "no roles", "admin"


@dataclass(frozen=True)
class Case:
    """One odd value at one place of one root field."""

    operation: str  # "query" | "mutation"
    field: str
    path: tuple[str, ...]  # argument, then input-object fields
    kind: str  # "id" | "text"

    @property
    def id(self) -> str:
        return f"{self.field}({'.'.join(self.path)})"

    @property
    def is_password(self) -> bool:
        return (self.field, *self.path) in PASSWORDS

    @property
    def surrogate_fails(self) -> bool:
        return (self.field, *self.path) in PASSWORDS | TOKENS


def _needs(field: GraphQLField, name: str) -> str | None:
    """What the field needs: "public", "authenticated" or a permission code."""
    definition = field.extensions.get("strawberry-definition")
    for extension in getattr(definition, "extensions", ()):
        if isinstance(extension, PermissionExtension):
            for permission in extension.permissions:
                if isinstance(permission, HasPermission):
                    return permission.code
                if isinstance(permission, IsAuthenticated):
                    return "authenticated"
    if name in CHECKED_IN_RESOLVER:
        return CHECKED_IN_RESOLVER[name]
    return "public" if name in PUBLIC else None


def _roots() -> list[tuple[str, GraphQLObjectType]]:
    assert SCHEMA.query_type is not None and SCHEMA.mutation_type is not None
    return [("query", SCHEMA.query_type), ("mutation", SCHEMA.mutation_type)]


def _places(
    type_: GraphQLInputType, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], str]]:
    named = get_named_type(type_)
    if isinstance(named, GraphQLInputObjectType):
        return [
            p
            for name, f in named.fields.items()
            for p in _places(f.type, (*path, name))
        ]
    if isinstance(named, GraphQLScalarType) and named.name == "ID":
        return [(path, "id")]
    if isinstance(named, GraphQLScalarType) and named.name == "String":
        return [(path, "text")]
    return []


def _cases() -> list[Case]:
    return [
        Case(operation, name, path, kind)
        for operation, root in _roots()
        for name, field in root.fields.items()
        for arg_name, arg in field.args.items()
        for path, kind in _places(arg.type, (arg_name,))
    ]


CASES = _cases()
ID_CASES = [c for c in CASES if c.kind == "id"]
TEXT_CASES = [c for c in CASES if c.kind == "text"]


# -- the values ---------------------------------------------------------------


def _not_an_id(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,18}", text) is None


# digits that are not ASCII digits: superscripts, circled, Arabic-Indic, fullwidth, ...
odd_digit = st.characters(categories=["Nd", "No"]).filter(
    lambda c: c not in "0123456789"
)
ascii_digits = st.text("0123456789", max_size=4)
odd_ids = st.one_of(
    st.text(odd_digit, min_size=1, max_size=4),
    st.builds(lambda a, c, b: a + c + b, ascii_digits, odd_digit, ascii_digits),
    st.from_regex(
        r"\A[+\- \t]{1,2}[0-9]{1,4}[ \t\n]?\Z|\A[0-9]{1,4}[ \t\n_.eE][0-9]{0,4}\Z"
    ),
    st.text("0123456789", min_size=19, max_size=40),  # beyond bigint
    st.text(min_size=200, max_size=2000),
    st.text(max_size=12),
).filter(_not_an_id)

# what PostgreSQL cannot store: NUL, and lone surrogates (not UTF-8)
_SURROGATE = re.compile("[\ud800-\udfff]")
unstorable = st.one_of(st.just("\x00"), st.characters(categories=["Cs"]))
odd_texts = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=12), unstorable, st.text(max_size=12)
)
nul_texts = st.builds(
    lambda a, b: a + "\x00" + b, st.text(max_size=12), st.text(min_size=12, max_size=16)
)


# -- the requests -------------------------------------------------------------


@dataclass
class World:
    client: httpx.AsyncClient
    tokens: dict[str, str | None]
    user_id: int
    role_id: int
    permission_id: int
    serial: itertools.count[int]


@pytest.fixture
async def world(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, admin_token: str
) -> World:
    async with acquire(pool) as con:
        user_id = await insert_user(con, "noroles@example.com")
        role_id = await con.fetchval("select id from roles where name = 'viewer'")
        permission_id = await con.fetchval(
            "select id from permissions where code = 'users:read'"
        )
    tokens = {
        ADMIN: admin_token,
        NO_ROLES: token_for(user_id, settings),
        ANONYMOUS: None,
    }
    return World(client, tokens, user_id, role_id, permission_id, itertools.count())


def _ordinary(world: World, field: str, name: str, type_: GraphQLInputType) -> Any:
    """A value that passes for this argument or input field (or a field of it)."""
    if isinstance(type_, GraphQLNonNull):
        return _ordinary(world, field, name, type_.of_type)
    if isinstance(type_, GraphQLList):
        return []
    if isinstance(type_, GraphQLInputObjectType):
        return {
            n: _ordinary(world, field, n, f.type)
            for n, f in type_.fields.items()
            if is_required_input_field(f)
        }
    assert isinstance(type_, GraphQLScalarType), type_
    if type_.name == "ID":  # an existing target, so that the odd value is what fails
        if name == "roleId" or (name == "id" and "role" in field.lower()):
            return str(world.role_id)
        if name == "id" and "permission" in field.lower():
            return str(world.permission_id)
        return str(world.user_id)
    if type_.name == "String":
        n = next(world.serial)
        return {
            "email": f"ordinary{n}@example.com",
            "name": f"ordinary-{n}",
            "code": f"ordinary{n}:read",  # not a reserved resource (permcore/delegation.py)
            "password": "an ordinary long password",
            "newPassword": "an ordinary long password",
            "currentPassword": "not the current password",
        }.get(name, "ordinary")
    return {"Int": 1, "Boolean": True}[type_.name]


def _placed(value: Any, type_: GraphQLInputType) -> Any:
    """The odd value where a String or ID of this type goes (inside a list for [String!]!)."""
    if isinstance(type_, GraphQLNonNull):
        return _placed(value, type_.of_type)
    return [value] if isinstance(type_, GraphQLList) else value


def document(world: World, case: Case, value: Any) -> tuple[str, dict[str, Any]]:
    root = dict(_roots())[case.operation]
    field = root.fields[case.field]
    variables: dict[str, Any] = {}
    for name, arg in field.args.items():
        if name == case.path[0]:
            if len(case.path) == 1:
                variables[name] = _placed(value, arg.type)
            else:
                input_type = get_named_type(arg.type)
                assert isinstance(input_type, GraphQLInputObjectType)
                obj = _ordinary(world, case.field, name, input_type)
                obj[case.path[1]] = _placed(value, input_type.fields[case.path[1]].type)
                variables[name] = obj
        elif is_required_argument(arg):
            variables[name] = _ordinary(world, case.field, name, arg.type)
    declared = ", ".join(f"${n}: {field.args[n].type}" for n in variables)
    passed = ", ".join(f"{n}: ${n}" for n in variables)
    returned = get_named_type(field.type)
    if isinstance(returned, GraphQLScalarType):
        selection = ""
    elif isinstance(returned, GraphQLUnionType) and "AuthError" in {
        t.name for t in returned.types
    }:
        selection = "{ __typename ... on AuthError { code } }"
    else:
        selection = "{ __typename }"
    return (
        f"{case.operation} Odd({declared}) {{ {case.field}({passed}) {selection} }}",
        variables,
    )


async def send(
    world: World, caller: str, query: str, variables: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    headers = {"content-type": "application/json"}
    token = world.tokens[caller]
    if token:
        headers["authorization"] = f"Bearer {token}"
    # json.dumps escapes a lone surrogate ("\ud800"), as a browser's JSON.stringify does
    content = json.dumps({"query": query, "variables": variables})
    response = await world.client.post("/graphql", content=content, headers=headers)
    return response.status_code, response.json()


def _field(case: Case) -> GraphQLField:
    field: GraphQLField = dict(_roots())[case.operation].fields[case.field]
    return field


def may_call(case: Case, caller: str) -> str | None:
    """None if the caller may call the field, else the code that refuses them."""
    needs = _needs(_field(case), case.field)
    if needs == "public" or caller == ADMIN:
        return None
    if caller == ANONYMOUS:
        return "UNAUTHENTICATED"
    return None if needs == "authenticated" else "FORBIDDEN"


async def check(
    world: World, case: Case, value: Any, caplog: pytest.LogCaptureFixture
) -> None:
    query, variables = document(world, case, value)
    for caller in (ADMIN, NO_ROLES, ANONYMOUS):
        status, body = await send(world, caller, query, variables)
        seen = f"{caller}: {query} {variables!r} -> {body}"
        errors = body.get("errors") or []
        codes = [e.get("extensions", {}).get("code") for e in errors]
        if isinstance(value, str) and _SURROGATE.search(value):
            # not UTF-8: the body is refused at the edge, before any field runs
            assert (status, codes) == (400, ["BAD_REQUEST"]), seen
            continue
        assert status == 200, seen
        assert None not in codes and "INTERNAL_SERVER_ERROR" not in codes, seen
        refused = may_call(case, caller)
        if refused is not None:
            assert codes == [refused], seen
            continue
        result = (body.get("data") or {}).get(case.field)
        if _needs(_field(case), case.field) == "public":
            # login, refreshToken, logout: their usual refusal, as for any wrong value
            assert not codes, seen
            assert result in (
                {"__typename": "AuthError", "code": PUBLIC_REFUSAL[case.field]},
                False,
            ), seen
        elif codes:
            assert codes == ["BAD_USER_INPUT"], seen
        elif not case.is_password:  # a NUL in a password is hashed, not stored
            assert result is not None and result["__typename"] in REFUSALS, seen
    logged = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR
    ]
    assert not logged, logged


# -- the tests ----------------------------------------------------------------

# Every operation gets these; hypothesis then tries generated (operation, value) pairs.
ODD_IDS = ("³", "①", "٣", "\uff11", " 1", "\ud800")  # ..., fullwidth 1
ODD_TEXTS = ("a\x00b", "a\ud800b")
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# each request there verifies or hashes a password (argon2: tens of ms)
FEW = settings(HYPOTHESIS, max_examples=5)


Test = TypeVar("Test", bound=Callable[..., Any])


def for_each(cases: list[Case], values: tuple[str, ...]) -> Callable[[Test], Test]:
    """@example(case, value) for every pair: each operation meets each value."""

    def decorate(test: Test) -> Test:
        for case in cases:
            for value in values:
                test = example(case=case, value=value)(test)
        return test

    return decorate


def test_every_field_is_classified() -> None:
    """Each root field states who may call it, and the generated cases cover the
    14 operations that take an id and the text inputs the issue names."""
    for _, root in _roots():
        for name, field in root.fields.items():
            assert _needs(field, name) is not None, name
    assert len({c.field for c in ID_CASES}) == 14, sorted({c.field for c in ID_CASES})
    assert {
        "login",
        "users",
        "updateMe",
        "createUser",
        "updateUser",
        "createRole",
        "updateRole",
        "createPermission",
    } <= {c.field for c in TEXT_CASES}


@HYPOTHESIS
@given(case=st.sampled_from(ID_CASES), value=odd_ids)
@for_each(ID_CASES, ODD_IDS)
async def test_odd_ids_are_bad_input(
    case: Case, value: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    await check(world, case, value, caplog)


STORED_TEXT_CASES = [c for c in TEXT_CASES if not c.surrogate_fails]


@HYPOTHESIS
@given(case=st.sampled_from(STORED_TEXT_CASES), value=odd_texts)
@for_each(STORED_TEXT_CASES, ODD_TEXTS)
async def test_unstorable_text_is_bad_input(
    case: Case, value: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    await check(world, case, value, caplog)


HASHED_TEXT_CASES = [c for c in TEXT_CASES if c.surrogate_fails]


@FEW
@given(case=st.sampled_from(HASHED_TEXT_CASES), value=nul_texts)
@for_each(HASHED_TEXT_CASES, ("an ordinary\x00long password",))
async def test_nul_in_a_password_or_token_is_no_internal_error(
    case: Case, value: str, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    await check(world, case, value, caplog)


@pytest.mark.parametrize("case", HASHED_TEXT_CASES, ids=lambda c: c.id)
async def test_lone_surrogate_in_a_password_or_token(
    case: Case, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    value = "a long password \ud800 with a lone surrogate"
    if case.field == "changePassword" and case.path == ("newPassword",):
        # even with the right current password: refused before anything runs
        query, variables = document(world, case, value)
        variables["currentPassword"] = ADMIN_PASSWORD
        status, body = await send(world, ADMIN, query, variables)
        assert (
            status == 400 and body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
        ), body
        return
    await check(world, case, value, caplog)


async def test_users_filter_is_authorized_before_its_sql(world: World) -> None:
    """A caller without users:read learns nothing from a filter, and runs no SQL with it."""
    query = "query($f: UserFilter) { users(filter: $f) { edges { node { id } } } }"
    for flt in (
        {"emailContains": "a\x00b"},
        {"role": "a\x00b"},
        {"emailContains": "noroles"},
    ):
        status, body = await send(world, NO_ROLES, query, {"f": flt})
        assert status == 200 and [e["extensions"]["code"] for e in body["errors"]] == [
            "FORBIDDEN"
        ], body
    _, body = await send(world, ADMIN, query, {"f": {"emailContains": "noroles"}})
    assert body["data"]["users"]["edges"] == [{"node": {"id": str(world.user_id)}}]


async def test_ascii_ids_and_cursors_still_work(world: World) -> None:
    _, body = await send(
        world,
        ADMIN,
        "query($i: ID!) { user(id: $i) { id } }",
        {"i": str(world.user_id)},
    )
    assert body == {"data": {"user": {"id": str(world.user_id)}}}
    _, body = await send(
        world, ADMIN, "{ users(first: 1) { pageInfo { endCursor } } }", {}
    )
    cursor = body["data"]["users"]["pageInfo"]["endCursor"]
    _, body = await send(
        world,
        ADMIN,
        "query($a: String) { users(after: $a) { edges { node { id } } } }",
        {"a": cursor},
    )
    assert body == {
        "data": {"users": {"edges": [{"node": {"id": str(world.user_id)}}]}}
    }
