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

from permbase.errors import is_expected

logger = logging.getLogger("permgraph.errors")


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    # a GraphQLError under a GraphQLError is graphql-core's own account of bad
    # input (a variable that does not coerce, for one): the client's to see
    return (
        original is not None
        and not is_expected(original)
        and not isinstance(original, GraphQLError)
    )


def mask(error: GraphQLError, request_id: str | None) -> GraphQLError:
    """What a client may see of an error: an unexpected one becomes
    INTERNAL_SERVER_ERROR with the request id; expected ones pass unchanged."""
    if not _is_unexpected(error):
        return error
    return GraphQLError(
        message="Internal server error.",
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
    )


def log_errors(errors: list[GraphQLError], request_id: str | None) -> None:
    """Log unexpected errors once with their traceback; client errors at DEBUG."""
    for error in errors:
        if _is_unexpected(error):
            logger.error(
                "unexpected error request_id=%s path=%s",
                request_id,
                error.path,
                exc_info=error.original_error,
            )
        else:
            logger.debug("client error request_id=%s: %s", request_id, error.message)


class ShapeErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(
            should_mask_error=_is_unexpected, error_message="Internal server error."
        )

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        context: Any = getattr(self.execution_context, "context", None)
        return mask(error, getattr(context, "request_id", None))


def add_codes(response: dict[str, Any]) -> dict[str, Any]:
    """Errors raised before execution (parse, validation, limits) carry no code
    of ours: name them, so that every error a client sees has one."""
    for error in response.get("errors") or ():
        extensions = error.setdefault("extensions", {})
        if "code" not in extensions:
            message = str(error.get("message", ""))
            if message.startswith("Syntax Error"):
                extensions["code"] = "GRAPHQL_PARSE_FAILED"
            elif message.startswith(
                "Variable '$"
            ):  # variable values that do not coerce
                extensions["code"] = "BAD_USER_INPUT"
            else:
                extensions["code"] = "GRAPHQL_VALIDATION_FAILED"
    return response


class PermgraphSchema(Schema):
    # query documents that passed validation (schema/engine/prepared.py); set by build_schema
    prepared: Any = None

    def process_errors(
        self,
        errors: list[GraphQLError],
        execution_context: ExecutionContext | None = None,
    ) -> None:
        context: Any = getattr(execution_context, "context", None)
        log_errors(errors, getattr(context, "request_id", None))


__all__ = ["PermgraphSchema", "ShapeErrors", "add_codes", "log_errors", "mask"]
