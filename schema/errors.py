"""How errors reach clients: every error carries `extensions.code`; anything
unexpected is masked as INTERNAL_SERVER_ERROR with a request id (the traceback
is logged once, server-side, under that id)."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry.extensions import MaskErrors
from strawberry.schema import Schema
from strawberry.types import ExecutionContext

from api.errors import is_expected

logger = logging.getLogger("permgraph.errors")


def _is_unexpected(error: GraphQLError) -> bool:
    return error.original_error is not None and not is_expected(error.original_error)


class ShapeErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_unexpected, error_message="Internal server error.")

    def _request_id(self) -> str | None:
        context: Any = getattr(self.execution_context, "context", None)
        return getattr(context, "request_id", None)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = self._request_id()
        return GraphQLError(
            message=self.error_message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )



def add_codes(response: dict[str, Any]) -> dict[str, Any]:
    """Errors raised before execution (parse, validation, limits) carry no code
    of ours: name them, so that every error a client sees has one."""
    for error in response.get("errors") or ():
        extensions = error.setdefault("extensions", {})
        if "code" not in extensions:
            syntax = str(error.get("message", "")).startswith("Syntax Error")
            extensions["code"] = "GRAPHQL_PARSE_FAILED" if syntax else "GRAPHQL_VALIDATION_FAILED"
    return response


class PermgraphSchema(Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        """Log unexpected errors once with their traceback; client errors at DEBUG."""
        context: Any = getattr(execution_context, "context", None)
        request_id = getattr(context, "request_id", None)
        for error in errors:
            if _is_unexpected(error):
                logger.error("unexpected error request_id=%s path=%s", request_id, error.path, exc_info=error.original_error)
            else:
                logger.debug("client error request_id=%s: %s", request_id, error.message)


__all__ = ["PermgraphSchema", "ShapeErrors", "add_codes"]
