"""The GraphQL fast lane: `POST /graphql` for a query document that has been
validated before, served without FastAPI's and Strawberry's HTTP layers.

FastAPI routing and dependency solving, Starlette's middleware stack and
Strawberry's HTTP view and extension runner were about a third of the CPU of a
small query (bench/README.md, "Profiles"). This ASGI layer sits in front of the
app and takes only the plain case: a JSON body `{"query", "variables"?,
"operationName"?, "extensions"?}` (of extensions, only `cost`: schema/engine/limits.py)
whose text `schema/engine/prepared.py` already knows as a valid query, and credentials
that verify. Everything else (first sight of a document, mutations, GraphiQL,
bad or missing credentials' errors, other paths) goes to the app unchanged,
with the body replayed, so there is one place that decides each of those
answers.

It is also the edge's one rule for what a `POST /graphql` must be, on both
paths (with `GRAPHQL_FAST_LANE=false` it only checks): `Content-Type:
application/json` in any letter case (else a coded 415), a body of at most
MAX_BODY_BYTES (else a coded 413, before it is read past the limit) that is a
JSON object in UTF-8 with `query`/`operationName` strings and `variables`/
`extensions` objects (else a coded 400).

It is the outermost layer (api/main.py): its own answers carry the security
headers themselves (api/middleware.py `SECURITY_HEADERS`), and what escapes its
own answering becomes a coded JSON 500; the app behind it is wrapped in
SecurityHeaders and BodyLimit as before. A query on the lane passes through no
other layer's wrappers.

The response is what the full path returns for the same request: the same
context (schema/context.py), the same caller-entry loading, the same error
masking and codes, the same JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from api.middleware import (
    SECURITY_HEADERS,
    coded,
    internal_error,
    send_json,
    too_large,
)
from permauth.tokens import MAX_AUTHORIZATION_BYTES
from permbase.errors import AppError
from permbase.metrics import GRAPHQL_PREPARED
from schema.context import Context
from schema.engine.limits import cost_requested
from schema.engine.prepared import answer_prepared, prepared_query

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from schema.engine.errors import PermgraphSchema
    from schema.engine.prepared import ResponseCache

_KEYS = frozenset({"query", "variables", "operationName", "extensions"})
_JSON = b"application/json"
_EXTENSIONS = frozenset(
    {"cost"}
)  # request extensions the lane knows (schema/engine/limits.py)


class GraphQLLane:
    def __init__(
        self,
        app: ASGIApp,
        schema: PermgraphSchema,
        responses: ResponseCache,
        path: str = "/graphql",
        *,
        limit: int,
        fast: bool = True,
    ) -> None:
        self.app = app
        self.limit = limit  # request body bytes
        self.fast = (
            fast  # False: every request takes the full path (after the checks above)
        )
        self.schema = schema
        self.responses = responses  # answers remembered (schema/engine/prepared.py)
        self.graphql_schema = schema._schema
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] != self.path
        ):
            await self.app(scope, receive, send)
            return
        authorization = request_id = consistency = None
        json_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > self.limit:
                    await too_large(send, self.limit)
                    return
            elif name == b"content-type":
                json_body = value.split(b";", 1)[0].strip().lower() == _JSON
            elif name == b"authorization":
                # capped: a longer header is refused (permauth/tokens.py) without decoding the rest
                authorization = value[: MAX_AUTHORIZATION_BYTES + 1].decode("latin-1")
            elif name == b"x-request-id":
                request_id = value.decode("latin-1")
            elif name == b"x-consistency-token":
                consistency = value[:64].decode("latin-1")
        if not json_body:
            await _refuse(
                send,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Send the request as 'Content-Type: application/json'.",
            )
            return
        try:
            body = await _read_body(receive, self.limit)
        except _TooLarge:
            await too_large(send, self.limit)
            return
        if body is None:  # the client went away
            return
        payload = _payload(body)
        if isinstance(payload, str):
            await _refuse(send, 400, "BAD_REQUEST", payload)
            return
        try:
            response = (
                await self._try(scope, payload, authorization, request_id, consistency)
                if self.fast
                else None
            )
        except Exception:
            # nothing was sent yet: a coded JSON 500, then the server logs it
            await internal_error(send)
            raise
        if response is None:
            await self.app(_canonical(scope), _replay(body, receive), send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(response)).encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": response})

    async def _try(
        self,
        scope: Scope,
        payload: dict[str, Any],
        authorization: str | None,
        request_id: str | None,
        consistency: str | None = None,
    ) -> bytes | None:
        """The response body, or None: not a case for the lane."""
        if not payload.keys() <= _KEYS:
            return None
        query, variables, operation_name = (
            payload.get("query"),
            payload.get("variables"),
            payload.get("operationName"),
        )
        if type(query) is not str:
            return None
        extensions = payload.get("extensions")
        if not (
            extensions is None
            or (type(extensions) is dict and extensions.keys() <= _EXTENSIONS)
        ):
            return None  # what the lane does not know, the app answers
        prepared = prepared_query(self.schema.prepared, query, operation_name)
        if prepared is None:
            return None
        try:
            context = Context(
                scope["state"], authorization, request_id, consistency=consistency
            )
        except (
            AppError
        ):  # the app answers bad credentials (401 and its header), bad tokens
            return None
        GRAPHQL_PREPARED.inc()
        return await answer_prepared(
            self.graphql_schema,
            prepared,
            query,
            context=context,
            variables=variables,
            operation_name=operation_name,
            want_cost=extensions is not None and cost_requested(extensions),
            responses=self.responses,
        )


def _payload(body: bytes) -> dict[str, Any] | str:
    """The request's JSON object, or why it is not one (the message for a 400).
    One rule for both paths: the app behind this layer sees only bodies that
    passed it."""
    try:
        payload = orjson.loads(body)  # refuses invalid UTF-8 as well
    except orjson.JSONDecodeError:
        return "The request body is not valid JSON (UTF-8)."
    if type(payload) is not dict:
        return "The request body must be a JSON object with a 'query'."
    for key, kind in (
        ("query", str),
        ("operationName", str),
        ("variables", dict),
        ("extensions", dict),
    ):
        value = payload.get(key)
        if value is not None and type(value) is not kind:
            return (
                f"'{key}' must be {'a string' if kind is str else 'an object'} or null."
            )
    return payload


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    await send_json(send, status, {"data": None, "errors": [coded(message, code)]})


def _canonical(scope: Scope) -> Scope:
    """The request with its content type spelled as Strawberry matches it (media
    types are case-insensitive; Strawberry's check is not)."""
    headers = [(n, _JSON if n == b"content-type" else v) for n, v in scope["headers"]]
    return {**scope, "headers": headers}


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body; None: the client went away. Raises _TooLarge past `limit`
    bytes (what is left is not read)."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


__all__ = ["GraphQLLane"]
