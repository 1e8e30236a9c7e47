"""Failures that stay inside the response: a failed load cancels nothing else."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from api.errors import ServiceUnavailable
from api.store import roles as role_store, users as user_store
from tests.factories import codes, metric

LANE = "graphql_prepared_requests_total"


async def post(
    client: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, **extra}, headers=headers
    )


async def both_paths(
    client: httpx.AsyncClient, query: str, token: str | None = None, **extra: Any
) -> list[httpx.Response]:
    """The same new document three times: twice on the full path (a document is
    kept from its second validation on), then on the fast lane."""
    query = f"{query}\n# {uuid.uuid4().hex}"
    responses = [await post(client, query, token, **extra) for _ in range(2)]
    before = metric(LANE)
    responses.append(await post(client, query, token, **extra))
    assert metric(LANE) == before + 1, "the third request did not take the lane"
    return responses


# -- a failed load cancels nothing else (issue 12, item 4) ----------------------


async def test_a_field_failing_mid_flight_does_not_cancel_a_shared_load(
    client: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`a` and `b` both read the admin role's description through the request's
    one `roles_by_id` load. `a.roles[0].members` fails while that load is in
    flight: graphql-core cancels `a`'s other pending fields, and that must not
    cancel the load `b` is waiting for (it did: a CancelledError escaped the
    executor and the client got a plain-text HTTP 500)."""
    failed = asyncio.Event()
    select_roles = role_store.select_by_ids

    async def members_fail(*args: Any, **kwargs: Any) -> Any:
        failed.set()
        raise ServiceUnavailable("The database is unavailable; retry shortly.")

    async def roles_after_the_failure(*args: Any, **kwargs: Any) -> Any:
        await failed.wait()
        await asyncio.sleep(0.05)  # let the failure's cancellations run first
        return await select_roles(*args, **kwargs)

    monkeypatch.setattr(user_store, "select_members_by_role_ids", members_fail)
    monkeypatch.setattr(role_store, "select_by_ids", roles_after_the_failure)
    query = '{ a: user(id: "1") { roles { description members { totalCount } } } b: user(id: "1") { roles { description } } }'
    for response in await both_paths(client, query, admin_token):
        failed.clear()
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert body["data"] == {
            "a": None,
            "b": {"roles": [{"description": "Everything"}]},
        }
        assert codes(body) == ["SERVICE_UNAVAILABLE"]


async def test_a_load_that_ends_in_a_stray_cancellation_is_an_error_of_the_response(
    client: httpx.AsyncClient, admin_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch function that raises CancelledError (something it awaited was
    cancelled by another task) left every waiter of its batch pending for ever:
    now its keys fail with a masked, coded error, and the rest answers."""

    async def cancelled(*args: Any, **kwargs: Any) -> Any:
        raise asyncio.CancelledError

    monkeypatch.setattr(role_store, "select_by_ids", cancelled)
    query = '{ me { email } user(id: "1") { roles { description } } }'
    async with asyncio.timeout(30):  # not a timing assertion: it used to hang
        responses = await both_paths(client, query, admin_token)
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["data"] == {"me": {"email": "admin@permgraph.local"}, "user": None}
        assert codes(body) == ["INTERNAL_SERVER_ERROR"]
        assert body["errors"][0]["path"] == ["user", "roles", 0, "description"]
