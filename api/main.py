"""The FastAPI application: `uvicorn api.main:create_app --factory`.

Request path: router -> get_context (principal from the JWT, per-request loaders)
-> resolver / permission class -> loader -> Redis (MGET) -> PostgreSQL (misses).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.fastapi import GraphQLRouter

from api.context import get_context
from api.ide import ASSET_PREFIX, NODE_MODULES, graphiql_html, local_assets_present
from api.lane import GraphQLLane
from api.state import State
from permauth.tokens import TokenService
from permbase.errors import AppError
from permbase.log_setup import configure_logging
from permbase.metrics import install_gc_timer
from permbase.settings import Settings, get_settings
from permcore.cache import PermissionCache, create_redis
from permcore.invalidation import Invalidator
from permcore.keeper import CacheKeeper
from permstore.db import create_database
from schema.engine.errors import add_codes
from schema.root import build_schema

logger = logging.getLogger(__name__)


class PermgraphRouter(GraphQLRouter[Any, None]):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def process_result(self, request: Request, result: Any) -> Any:
        response: dict[str, Any] = dict(await super().process_result(request, result))
        return add_codes(response)

    async def render_graphql_ide(self, request: Request) -> Any:
        from fastapi.responses import HTMLResponse

        return HTMLResponse(graphiql_html())


class BodyLimit:
    """413 before parsing when a request body is larger than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if (
                name == b"content-length"
                and value.isdigit()
                and int(value) > self.limit
            ):
                await _too_large(send, self.limit)
                return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)
        except ClientDisconnect:
            return  # the client went away mid-body: nothing to answer


class SecurityHeaders:
    """Every response: never stored by a cache on the way (tokens, permissions),
    never sniffed into another content type. WebSocket handshakes are refused."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # no subscriptions yet: refuse the handshake (HTTP 403), before any
            # GraphQL machinery (Strawberry's would fail to build a context)
            await receive()  # websocket.connect
            await send(
                {
                    "type": "websocket.close",
                    "code": 1008,
                    "reason": "WebSocket subscriptions are not offered.",
                }
            )
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    h for h in message.get("headers", ()) if h[0] != b"cache-control"
                ]
                message = {**message, "headers": headers + self.HEADERS}
            await send(message)

        await self.app(scope, receive, with_headers)


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = orjson.dumps(
        {
            "errors": [
                {
                    "message": f"Request body larger than {limit} bytes.",
                    "extensions": {"code": "PAYLOAD_TOO_LARGE"},
                }
            ]
        }
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        db = await create_database(settings)
        redis = create_redis(settings)
        cache = PermissionCache(redis, settings)
        invalidator = Invalidator(db, cache)
        await cache.prepare()
        try:
            await invalidator.replay_pending()  # the cache is trusted only after this
        except AppError:
            logger.warning("outbox replay at start failed; the replayer retries")
        replayer = asyncio.create_task(
            invalidator.run_replayer(settings.outbox_replay_interval_s)
        )
        tasks = [replayer]
        if settings.permissions_cache_keep_warm and settings.permissions_cache_enabled:
            keeper = CacheKeeper(
                db,
                cache,
                interval=settings.refresh_interval_s,
                batch_size=settings.loader_max_batch_size,
                max_users=settings.permissions_cache_keep_warm_max_users,
            )
            invalidator.on_flush = keeper.kick
            tasks.append(asyncio.create_task(keeper.run()))
        # Objects made at start live forever: keep them out of every GC pass, and
        # collect the young generation less often (a request allocates thousands
        # of short-lived objects; the default threshold of 700 runs the collector
        # many times per request). Measured in bench/README.md.
        gc.collect()
        gc.freeze()
        gc.set_threshold(settings.gc_gen0_threshold, 20, 50)
        install_gc_timer()
        state = State(
            settings=settings,
            db=db,
            redis=redis,
            cache=cache,
            invalidator=invalidator,
            tokens=TokenService(settings),
        )
        app.state.resources = (
            state  # for operators' tooling and tests; requests use request.state
        )
        try:
            yield state
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await redis.aclose()
            await db.close()

    app = FastAPI(
        title="permgraph",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
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

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        checks = {"postgres": "ok", "redis": "ok"}
        try:
            async with asyncio.timeout(1.0):
                await request.state.db.fetchval("select 1")
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks["postgres"] = f"error: {type(exc).__name__}"
        try:
            async with asyncio.timeout(0.5):
                await request.state.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks["redis"] = f"error: {type(exc).__name__}"
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    metrics_token = (
        settings.metrics_token.get_secret_value().encode()
        if settings.metrics_token
        else None
    )
    if metrics_token is not None or settings.environment != "prod":

        @app.get("/metrics")
        async def metrics(request: Request) -> Response:
            if metrics_token is not None:
                given = request.headers.get("authorization", "")[:256].encode(
                    "latin-1", "replace"
                )
                if not hmac.compare_digest(given, b"Bearer " + metrics_token):
                    return Response(
                        status_code=401, headers={"WWW-Authenticate": "Bearer"}
                    )
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    else:
        logger.warning("/metrics is off: set METRICS_TOKEN to serve it in prod")

    app.add_middleware(GraphQLLane, schema=schema, fast=settings.graphql_fast_lane)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app


__all__ = ["create_app"]
