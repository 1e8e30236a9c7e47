"""The HTTP edge (issue 11, the low findings; issue 12, the websocket): what a
request must be, on the fast lane and the full path alike, and the headers every
response carries."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from hypothesis import (
    HealthCheck,
    given,
    settings as hypothesis_settings,
    strategies as st,
)
from opentelemetry import trace
from pydantic import SecretStr

from permbase.settings import Settings
from tests.conftest import ADMIN_PASSWORD
from tests.factories import app_with, metric, token_for

LOGIN = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { __typename ... on AuthPayload { user { email } } } }"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def coded(response: httpx.Response) -> str:
    body: dict[str, Any] = response.json()
    return str(body["errors"][0]["extensions"]["code"])


@pytest.fixture(params=[True, False], ids=["lane", "full-path"])
async def either(request: pytest.FixtureRequest, settings: Settings) -> Any:
    async with app_with(settings, graphql_fast_lane=request.param) as (client, _):
        yield client


async def test_bodies_that_are_not_a_json_object_are_a_coded_400(
    either: httpx.AsyncClient,
) -> None:
    for body in [
        b'"a string"',
        b"42",
        b"[1, 2]",
        b"null",
        b"\xff\xfe{}",
        b'{"query": "\\ud800"}',
        b"{",
        b"",
    ]:
        response = await either.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
        assert coded(response) == "BAD_REQUEST"
    wrong_types = [
        {"query": 1},
        {"query": "{ __typename }", "variables": []},
        {"query": "{ __typename }", "operationName": 3},
    ]
    for payload in wrong_types:
        response = await either.post("/graphql", json=payload)
        assert response.status_code == 400 and coded(response) == "BAD_REQUEST", payload


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    value=json_values.filter(lambda v: not isinstance(v, dict)),
    noise=st.binary(max_size=40),
)
async def test_any_body_gets_a_coded_answer(
    client: httpx.AsyncClient, value: Any, noise: bytes
) -> None:
    for body in (json.dumps(value).encode(), noise):
        response = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code in (200, 400), response.text
        assert response.headers["content-type"].startswith("application/json")
        assert coded(response) in {
            "BAD_REQUEST",
            "GRAPHQL_PARSE_FAILED",
            "GRAPHQL_VALIDATION_FAILED",
        }


async def test_one_content_type_rule_for_both_paths(either: httpx.AsyncClient) -> None:
    document = {"query": "{ __typename }"}
    import orjson

    for spelling in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
    ]:
        for _ in range(3):  # the third time on the lane's prepared path, when it is on
            response = await either.post(
                "/graphql",
                content=orjson.dumps(document),
                headers={"content-type": spelling},
            )
            assert response.status_code == 200 and response.json() == {
                "data": {"__typename": "Query"}
            }, spelling
    for spelling in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "",
    ]:
        response = await either.post(
            "/graphql",
            content=orjson.dumps(document),
            headers={"content-type": spelling},
        )
        assert (
            response.status_code == 415 and coded(response) == "UNSUPPORTED_MEDIA_TYPE"
        ), spelling


async def test_responses_are_never_stored_or_sniffed(
    either: httpx.AsyncClient, settings: Settings
) -> None:
    login = await either.post(
        "/graphql",
        json={
            "query": LOGIN,
            "variables": {"e": "admin@permgraph.local", "p": ADMIN_PASSWORD},
        },
    )
    assert login.json()["data"]["login"]["__typename"] == "AuthPayload"
    token = token_for(1, settings)
    me = {"query": "{ me { id permissions } }"}
    answers = [
        await either.post(
            "/graphql", json=me, headers={"Authorization": f"Bearer {token}"}
        )
        for _ in range(3)  # the full path, then the lane, then a remembered answer
    ]
    assert answers[0].json() == answers[2].json()

    async def chunks() -> Any:  # no content-length: counted as it comes
        for _ in range(70):
            yield b" " * 1024

    for response in [
        login,
        *answers,
        await either.get("/healthz"),
        await either.post(
            "/graphql", content=b"x", headers={"content-type": "text/plain"}
        ),
        await either.post(
            "/graphql", content=b"[]", headers={"content-type": "application/json"}
        ),
        await either.post(
            "/graphql", content=chunks(), headers={"content-type": "application/json"}
        ),
    ]:
        assert response.headers.get_list("cache-control") == ["no-store"]
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert response.status_code == 413


async def test_a_websocket_upgrade_is_refused_cleanly(
    running: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """As an ASGI server hands it over: a close before accept is an HTTP 403."""
    caplog.set_level(logging.WARNING)
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return (
            incoming.pop(0)
            if incoming
            else {"type": "websocket.disconnect", "code": 1000}
        )

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": b"",
        "headers": [(b"sec-websocket-protocol", b"graphql-transport-ws")],
        "subprotocols": ["graphql-transport-ws"],
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": "",
        "state": {},
    }
    await running[1](scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.close"] and sent[0]["code"] == 1008
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_emails_are_one_spelling_per_mailbox(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    create = "mutation($e: String!) { createUser(input: {email: $e}) { __typename ... on UserPayload { user { email } } ... on InvalidInputError { field } } }"

    async def outcome(email: str) -> Any:
        response = await client.post(
            "/graphql",
            json={"query": create, "variables": {"e": email}},
            headers={"Authorization": f"Bearer {admin_token}"},
        )
        return response.json()["data"]["createUser"]

    assert await outcome("New.User@Example.COM") == {
        "__typename": "UserPayload",
        "user": {"email": "new.user@example.com"},
    }
    assert await outcome("\uff2eew.user@example.com") == {
        "__typename": "ConflictError"
    }  # fullwidth N: the same mailbox
    assert await outcome("adm\u200bin@permgraph.local") == {
        "__typename": "InvalidInputError",
        "field": "email",
    }  # zero-width space
    assert await outcome("adm\u0456n@permgraph.local") == {
        "__typename": "InvalidInputError",
        "field": "email",
    }  # Cyrillic i
    assert await outcome("\u0130van@example.com") == {
        "__typename": "InvalidInputError",
        "field": "email",
    }  # dotted capital I
    assert await outcome("\u0438\u0432\u0430\u043d@example.com") == {
        "__typename": "UserPayload",
        "user": {"email": "\u0438\u0432\u0430\u043d@example.com"},
    }
    for email in ["ADMIN@PermGraph.local", "\uff41dmin@permgraph.local"]:
        login = await client.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"e": email, "p": ADMIN_PASSWORD}},
        )
        assert login.json()["data"]["login"] == {
            "__typename": "AuthPayload",
            "user": {"email": "admin@permgraph.local"},
        }, email
    look_alike = await client.post(
        "/graphql",
        json={
            "query": LOGIN,
            "variables": {"e": "\u0130dmin@permgraph.local", "p": ADMIN_PASSWORD},
        },
    )
    assert look_alike.json()["data"]["login"]["__typename"] == "AuthError"


async def test_metrics_are_a_setting(settings: Settings) -> None:
    async with app_with(settings, environment="prod", graphql_ide=None) as (client, _):
        assert (await client.get("/metrics")).status_code == 404
    token = "m" * 40
    async with app_with(
        settings, environment="prod", graphql_ide=None, metrics_token=SecretStr(token)
    ) as (client, _):
        assert (await client.get("/metrics")).status_code == 401
        assert (
            await client.get("/metrics", headers={"Authorization": "Bearer wrong"})
        ).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "permissions_cache_hits_total" in ok.text
    async with app_with(settings) as (
        client,
        _,
    ):  # dev and test: open unless a token is set
        assert (await client.get("/metrics")).status_code == 200


class _Tracer(trace.Tracer):
    """Records the server spans FastAPI starts: (name, url.path)."""

    def __init__(self, spans: list[tuple[str, Any]]) -> None:
        self.spans = spans

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans.append((name, (kwargs.get("attributes") or {}).get("url.path")))
        return trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's own decorator is private; a context manager all the same
        self, name: str, *args: Any, **kwargs: Any
    ) -> Iterator[trace.Span]:
        with trace.use_span(self.start_span(name, **kwargs)) as span:
            yield span


class _Provider(trace.TracerProvider):
    def __init__(self, spans: list[tuple[str, Any]]) -> None:
        self.spans = spans

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(self.spans)


async def test_with_otel_telemetry_the_lanes_answers_have_spans_too(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_TELEMETRY=true: the edge runs inside FastAPI's telemetry
    (api/main.py `PermgraphApp.traced`), so a query the lane answers has its
    server span like any other request; off, nothing is traced."""
    spans: list[tuple[str, Any]] = []
    # the process's tracer provider, as opentelemetry-instrument would set it
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", _Provider(spans))
    query = {"query": '{ user(id: "1") { id permissions } }'}
    headers = {"Authorization": f"Bearer {token_for(1, settings)}"}
    for traced in (True, False):
        spans.clear()
        async with app_with(settings, otel_telemetry=traced) as (client, _):
            lane = metric("graphql_prepared_requests_total")
            bodies = [
                (await client.post("/graphql", json=query, headers=headers)).json()
                for _ in range(3)
            ]
            assert metric("graphql_prepared_requests_total") == lane + 1  # the third
        assert bodies[0] == bodies[2] and bodies[0]["data"]["user"]["id"] == "1"
        graphql = [s for s in spans if s[1] == "/graphql"]
        assert len(graphql) == (3 if traced else 0), spans


async def test_an_unexpected_error_on_the_lane_is_a_coded_500_with_the_headers(
    running: tuple[Any, Any], admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane runs outside FastAPI's own error middleware: what escapes it is
    still a JSON 500 with a code and the security headers (and is logged)."""

    async def boom(*_args: Any, **_kwargs: Any) -> bytes:
        raise RuntimeError("a bug")

    monkeypatch.setattr("api.lane.answer_prepared", boom)
    transport = httpx.ASGITransport(app=running[1], raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        body = {"query": f"{{ me {{ id }} }} # {uuid.uuid4().hex}"}
        headers = {"Authorization": f"Bearer {admin_token}"}
        for _ in range(2):  # the full path, until the document is known
            await client.post("/graphql", json=body, headers=headers)
        response = await client.post("/graphql", json=body, headers=headers)
    assert response.status_code == 500
    assert response.json()["errors"][0]["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
