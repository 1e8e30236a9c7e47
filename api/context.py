"""The edge's half of the GraphQL context: a request's headers and the lifespan's
state become a schema.context.Context (the caller's JWT verified here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from permauth.tokens import principal_from_header
from permcore.stream import parse_token
from schema.context import Context

if TYPE_CHECKING:
    from api.state import State


async def get_context(request: Request) -> Context:
    headers = request.headers
    client = request.client.host if request.client else None
    return context_for(
        request.scope["state"],
        headers.get("authorization"),
        headers.get("x-request-id"),
        client,
        headers.get("x-consistency-token"),
    )


def context_for(
    state: State,
    authorization: str | None,
    request_id: str | None,
    client: str | None = None,
    consistency: str | None = None,
) -> Context:
    """A request's context from the lifespan's state, its headers and the client's
    address (the ASGI scope's; behind a proxy, the server's --proxy-headers set
    it). Raises Unauthenticated for credentials that do not verify, InvalidInput
    for a consistency token that is not one (permcore/stream.py)."""
    return Context(
        settings=state["settings"],
        db=state["db"],
        cache=state["cache"],
        stream=state["stream"],
        tokens=state["tokens"],
        principal=principal_from_header(authorization, state["tokens"]),
        request_id=request_id[:64] if request_id else None,
        client=client,
        consistency=None if consistency is None else parse_token(consistency),
    )


__all__ = ["context_for", "get_context"]
