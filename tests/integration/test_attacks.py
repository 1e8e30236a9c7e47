"""The service as an attacker sees it: document shapes, transports, profiles."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.main import create_app
from permbase.settings import Settings
from permstore import roles as role_store
from tests.factories import codes, gql


@pytest.fixture
async def prod_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        settings.model_copy(update={"environment": "prod", "graphql_ide": None})
    )
    async with LifespanManager(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver"
        ) as c:
            yield c


async def post(
    client: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, **extra}, headers=headers
    )


async def test_depth_bomb_is_refused(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    inner = "email"
    for _ in range(6):
        inner = f"roles {{ members {{ edges {{ node {{ {inner} }} }} }} }}"
    response = await post(client, f'{{ user(id: "1") {{ {inner} }} }}', admin_token)
    body = response.json()
    assert body.get("data") is None
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]


async def test_alias_overloading_is_refused(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    aliases = " ".join(f"a{i}: me {{ id }}" for i in range(100))
    body = (await post(client, f"{{ {aliases} }}", admin_token)).json()
    assert body.get("data") is None and codes(body)[0] == "GRAPHQL_VALIDATION_FAILED"


async def test_two_thousand_duplicate_fields_are_refused_quickly(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    started = time.perf_counter()
    body = (await post(client, "{ me { " + "id " * 2000 + "} }", admin_token)).json()
    assert body.get("data") is None and codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert "more than 2000 tokens" in body["errors"][0]["message"]
    assert time.perf_counter() - started < 1.0
    # just under the token limit: over the selections of one set, refused before
    # validation (tests/integration/test_limits.py), quickly
    started = time.perf_counter()
    body = (await post(client, "{ me { " + "id " * 1900 + "} }", admin_token)).json()
    assert body.get("data") is None and codes(body) == ["QUERY_TOO_COMPLEX"]
    assert time.perf_counter() - started < 1.0
    # as many duplicates as a selection set may hold are merged into one field, not multiplied
    body = (await post(client, "{ me { " + "id " * 100 + "} }", admin_token)).json()
    assert body == {"data": {"me": {"id": "1"}}}


async def test_circular_fragments_are_refused(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    query = """
    query { me { ...A } }
    fragment A on User { roles { members { edges { node { ...B } } } } }
    fragment B on User { ...A }
    """
    body = (await post(client, query, admin_token)).json()
    assert body.get("data") is None and codes(body)[0] == "GRAPHQL_VALIDATION_FAILED"


async def test_production_shows_no_schema_no_suggestions_no_ide(
    prod_client: httpx.AsyncClient,
) -> None:
    introspection = (await post(prod_client, "{ __schema { types { name } } }")).json()
    assert introspection.get("data") is None
    assert "introspection" in introspection["errors"][0]["message"].lower()
    typo = (await post(prod_client, "{ usr { id } }")).json()
    assert (
        "Did you mean" not in str(typo) and "user" not in typo["errors"][0]["message"]
    )
    ide = await prod_client.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 404 or "graphiql" not in ide.text.lower()
    assert (await post(prod_client, "{ __typename }")).json() == {
        "data": {"__typename": "Query"}
    }


async def test_development_keeps_introspection_and_suggestions(
    client: httpx.AsyncClient,
) -> None:
    assert (await post(client, "{ __schema { queryType { name } } }")).json()["data"][
        "__schema"
    ]["queryType"]["name"] == "Query"
    assert "Did you mean" in str((await post(client, "{ usr { id } }")).json())
    page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_graphiql_is_served_from_the_app_itself(
    client: httpx.AsyncClient,
) -> None:
    from api.ide import local_assets_present

    page = (await client.get("/graphql", headers={"Accept": "text/html"})).text
    if not local_assets_present():
        pytest.skip("npm assets not installed: the page falls back to the CDN")
    assert "unpkg.com" not in page
    assets = re.findall(
        r'(?:src|href)="(/graphiql-assets/[^"]+)"\s+integrity="sha384-([^"]+)"', page
    )
    assert (
        len(assets) == 7
    )  # react, react-dom, js-cookie, graphiql js+css, explorer js+css
    for path, digest in assets:
        asset = await client.get(path)
        assert asset.status_code == 200
        # the browser checks these hashes: a local copy that differs would leave a blank page
        assert (
            base64.b64encode(hashlib.sha384(asset.content).digest()).decode() == digest
        ), path


async def test_no_operations_over_get_and_no_form_or_batched_bodies(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    auth = {"Authorization": f"Bearer {admin_token}"}
    get = await client.get(
        "/graphql",
        params={
            "query": 'mutation { createRole(input: {name: "viaget"}) { __typename } }'
        },
        headers=auth,
    )
    assert get.status_code in (400, 405) and "viaget" not in get.text
    get_query = await client.get(
        "/graphql", params={"query": "{ me { id } }"}, headers=auth
    )
    assert get_query.status_code in (400, 405)
    form = await client.post(
        "/graphql",
        data={
            "query": 'mutation { createRole(input: {name: "viaform"}) { __typename } }'
        },
        headers=auth,
    )
    assert form.status_code in (400, 415)
    batch = await client.post(
        "/graphql",
        json=[{"query": "{ me { id } }"}, {"query": "{ me { id } }"}],
        headers=auth,
    )
    assert batch.status_code == 400
    body = await gql(client, "{ roles { name } }", token=admin_token)
    assert {"name": "viaget"} not in body["data"]["roles"] and {
        "name": "viaform"
    } not in body["data"]["roles"]


async def test_a_one_megabyte_body_gets_413_before_parsing(
    client: httpx.AsyncClient,
) -> None:
    big = (
        '{"query": "{ __typename }", "variables": {"x": "' + "a" * (1024 * 1024) + '"}}'
    )
    response = await client.post(
        "/graphql", content=big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


async def test_internal_errors_are_masked_with_a_request_id(
    client: httpx.AsyncClient,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2 at /srv/app.py line 3")

    monkeypatch.setattr(role_store, "select_all", broken)
    response = await client.post(
        "/graphql",
        json={"query": "{ roles { name } }"},
        headers={"Authorization": f"Bearer {admin_token}", "X-Request-Id": "req-123"},
    )
    body = response.json()
    assert body["errors"][0]["message"] == "Internal server error."
    assert body["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": "req-123",
    }
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert any("req-123" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_only_one_login_per_document_even_through_aliases(
    client: httpx.AsyncClient,
) -> None:
    logins = " ".join(
        f'l{i}: login(email: "admin@permgraph.local", password: "guess{i}") {{ __typename }}'
        for i in range(5)
    )
    body = (await post(client, f"mutation {{ {logins} }}")).json()
    assert body.get("data") is None  # refused before any password is checked
    assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    assert body["errors"][0]["message"] == "At most one login per request."
