"""ASGI middleware around the app: security headers on every response (and
WebSockets refused), request bodies bounded before parsing."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """413 before parsing when a request body is larger than `limit` bytes.

    It sits outside FastAPI's own error middleware (api/main.py): a route behind
    that middleware that read a chunked body past the limit would see its 500
    sent before this 413. `POST /graphql` is bounded by the lane, in front of
    it (api/lane.py)."""

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
                await too_large(send, self.limit)
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
            await too_large(send, self.limit)
        except ClientDisconnect:
            return  # the client went away mid-body: nothing to answer


# Every response: never stored by a cache on the way (tokens, permissions), never
# sniffed into another content type. The edge's own answers (`send_json`, the
# lane's) carry them already; SecurityHeaders sets them on the app's.
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
]
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeaders:
    """`SECURITY_HEADERS` on every response of the app. WebSocket handshakes are
    refused."""

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

        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [
                    h for h in message.get("headers", ()) if h[0] not in _SECURITY_NAMES
                ]
                message = {**message, "headers": headers + SECURITY_HEADERS}
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception:
            # what escaped everything inside (the lane runs outside FastAPI's own
            # error middleware): a coded JSON 500 with these headers, then the
            # server logs the exception
            if not started:
                await internal_error(with_headers)
            raise


class _BodyTooLarge(Exception):
    pass


async def send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    """One whole JSON response (the edge's own answers: 413, 415, 400, 500)."""
    body = orjson.dumps(payload)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def coded(message: str, code: str) -> dict[str, Any]:
    """An error as the responses carry it."""
    return {"message": message, "extensions": {"code": code}}


async def internal_error(send: Send) -> None:
    error = coded("Unexpected error.", "INTERNAL_SERVER_ERROR")
    await send_json(send, 500, {"data": None, "errors": [error]})


async def too_large(send: Send, limit: int) -> None:
    error = coded(f"Request body larger than {limit} bytes.", "PAYLOAD_TOO_LARGE")
    await send_json(send, 413, {"errors": [error]})


__all__ = [
    "SECURITY_HEADERS",
    "BodyLimit",
    "SecurityHeaders",
    "coded",
    "internal_error",
    "send_json",
    "too_large",
]
