"""Strawberry's FastAPI router, answering with orjson, coded errors and the
local GraphiQL page, and the request's context it executes with (`get_context`)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from strawberry.fastapi import GraphQLRouter

from api.ide import graphiql_html
from schema.context import Context
from schema.engine.errors import add_codes


async def get_context(request: Request) -> Context:
    """The context of a request on the full path, from the same headers as the
    lane reads (api/lane.py)."""
    headers = request.headers
    return Context(
        request.scope["state"],
        headers.get("authorization"),
        headers.get("x-request-id"),
        client=request.client.host if request.client else None,
        consistency=headers.get("x-consistency-token"),
    )


class PermgraphRouter(GraphQLRouter[Any, None]):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(self, request: Request, result: Any) -> Any:
        response: dict[str, Any] = dict(await super().process_result(request, result))
        return add_codes(response)

    async def render_graphql_ide(self, request: Request) -> Any:
        from fastapi.responses import HTMLResponse

        return HTMLResponse(graphiql_html())


__all__ = ["PermgraphRouter", "get_context"]
