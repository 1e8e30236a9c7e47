"""Strawberry's FastAPI router, answering with orjson, coded errors and the
local GraphiQL page."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from strawberry.fastapi import GraphQLRouter

from api.ide import graphiql_html
from schema.engine.errors import add_codes


class PermgraphRouter(GraphQLRouter[Any, None]):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(self, request: Request, result: Any) -> Any:
        response: dict[str, Any] = dict(await super().process_result(request, result))
        return add_codes(response)

    async def render_graphql_ide(self, request: Request) -> Any:
        from fastapi.responses import HTMLResponse

        return HTMLResponse(graphiql_html())


__all__ = ["PermgraphRouter"]
