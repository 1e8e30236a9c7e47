"""The FastAPI application: `uvicorn api.main:create_app --factory`.

The edge, outermost first: GraphQLLane (prepared documents, api/lane.py) ->
SecurityHeaders -> BodyLimit, in front of FastAPI and its own middleware
(`PermgraphApp`) -> the Strawberry router (api/router.py) with the
request's context (schema/context.py); the lifespan (api/lifespan.py) opens what
they share. Below the edge: schema/ -> loaders/ -> permcore/ | permauth/ ->
permstore/ -> permbase/ (README "Layout").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from api.health import add_health_routes
from api.ide import ASSET_PREFIX, NODE_MODULES, local_assets_present
from api.lane import GraphQLLane
from api.lifespan import lifespan_for
from api.middleware import BodyLimit, SecurityHeaders
from api.router import PermgraphRouter, get_context
from permbase.errors import AppError
from permbase.log_setup import configure_logging
from permbase.settings import Settings, get_settings
from schema.engine.prepared import ResponseCache
from schema.root import build_schema

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


class PermgraphApp(FastAPI):
    """FastAPI with permgraph's edge (`edge`: GraphQLLane -> SecurityHeaders ->
    BodyLimit) in front of all of FastAPI: a query on the lane is answered
    without passing through FastAPI's and Starlette's own calls and middleware
    (server errors, its body limit, exception handlers; the lane bounds its
    body and sets the security headers itself), and what the lane leaves to
    the app passes through all of them as before. Their `send` wrappers and
    checks were ~10 % of a remembered answer's CPU, the two calls in front of
    them ~2 % (bench/README.md, section 13).

    `traced` (OTEL_TELEMETRY=true): the edge runs inside FastAPI's call
    instead, within its native telemetry, so that the lane's answers have
    their spans too."""

    edge: Callable[[ASGIApp], ASGIApp] | None = None
    traced: bool = False
    _front: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return self.edge(inner) if self.edge is not None and self.traced else inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self._front
        if front is None:  # built on the first call, as Starlette builds its stack
            inner = super().__call__
            front = self._front = (
                inner if self.edge is None or self.traced else self.edge(inner)
            )
        await front(scope, receive, send)


def create_app(settings: Settings | None = None) -> PermgraphApp:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    app = PermgraphApp(
        title="permgraph",
        lifespan=lifespan_for(settings),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        telemetry=None
        if settings.otel_telemetry
        else {"tracing": False, "metrics": False, "logs": False},
    )
    schema = build_schema(
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_tokens=settings.max_tokens,
        introspection=settings.environment != "prod",
    )
    router = PermgraphRouter(
        schema,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.ide_enabled else None,
        allow_queries_via_get=False,
    )
    app.include_router(router, prefix="/graphql")
    if settings.ide_enabled and local_assets_present():
        app.mount(
            ASSET_PREFIX.rstrip("/"),
            StaticFiles(directory=NODE_MODULES),
            name="graphiql-assets",
        )

    @app.exception_handler(AppError)
    async def app_error(_request: Request, exc: AppError) -> JSONResponse:
        status = {"UNAUTHENTICATED": 401, "SERVICE_UNAVAILABLE": 503}.get(exc.code, 400)
        headers = (
            {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            if status == 401
            else None
        )
        return JSONResponse(
            {
                "data": None,
                "errors": [{"message": exc.message, "extensions": exc.extensions}],
            },
            status_code=status,
            headers=headers,
        )

    add_health_routes(app, settings)

    responses = ResponseCache(settings.response_cache_size)

    def edge(inner: ASGIApp) -> ASGIApp:
        app = SecurityHeaders(BodyLimit(inner, limit=settings.max_body_bytes))
        return GraphQLLane(
            app,
            schema,
            responses=responses,
            limit=settings.max_body_bytes,
            fast=settings.graphql_fast_lane,
        )

    app.edge, app.traced = edge, settings.otel_telemetry
    return app


__all__ = ["PermgraphApp", "create_app"]
