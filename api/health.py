"""Operators' routes: /healthz (the process is up), /readyz (PostgreSQL and
Redis answer) and /metrics (Prometheus; in prod only with METRICS_TOKEN)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from permbase.metrics import exposition
from permbase.settings import Settings

logger = logging.getLogger(__name__)


def add_health_routes(app: FastAPI, settings: Settings) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        checks = {"postgres": "ok", "redis": "ok"}
        try:
            async with asyncio.timeout(1.0):
                await request.state.db.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks["postgres"] = f"error: {type(exc).__name__}"
        try:
            async with asyncio.timeout(0.5):
                await request.state.redis.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks["redis"] = f"error: {type(exc).__name__}"
        # the permission change log: a consumer whose last good pass is older
        # than a few poll intervals has fallen behind (Redis may be serving
        # entries that a committed change made stale elsewhere)
        behind = request.state.stream.behind_s()
        checks["changes"] = "ok" if behind is None else f"behind by {behind:.1f} s"
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
            return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    else:
        logger.warning("/metrics is off: set METRICS_TOKEN to serve it in prod")


__all__ = ["add_health_routes"]
