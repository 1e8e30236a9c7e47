"""When the caller's own permission entry is loaded.

Every permission check is a synchronous set lookup on the caller's entry, so the
entry must be loaded before a checked field runs. By default that is one MGET
before execution. Operations made only of `user` and `users` (the hot read path:
"what may these users do?") skip it: those resolvers read their rows first and
then load the caller's entry *together with* the page's entries, one MGET in all,
and check `users:read` before returning anything. Anonymous callers are refused
there before any I/O.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from graphql import (
    FieldNode,
    OperationDefinitionNode,
    OperationType,
    get_operation_ast,
)
from strawberry.extensions import SchemaExtension

if TYPE_CHECKING:
    from schema.context import Context

# Root fields that load the caller's entry with their page themselves.
SELF_AUTHORIZING = frozenset({"user", "users", "__typename"})


def self_authorizing(operation: OperationDefinitionNode | None) -> bool:
    if operation is None or operation.operation != OperationType.QUERY:
        return False
    selections = operation.selection_set.selections
    return all(
        isinstance(s, FieldNode) and s.name.value in SELF_AUTHORIZING
        for s in selections
    )


async def load_viewer_first(
    context: Context, operation: OperationDefinitionNode | None
) -> None:
    """The rule, for both paths (`LoadViewer` on Strawberry's, the prepared
    path's `execute_prepared`): a caller's entry is loaded before the
    operation executes, unless the operation authorizes itself."""
    if context.principal is not None and not self_authorizing(operation):
        await context.load_viewer()


class LoadViewer(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        ec = self.execution_context
        document = ec.graphql_document
        await load_viewer_first(
            ec.context,
            None
            if document is None
            else get_operation_ast(document, ec.operation_name),
        )
        yield


__all__ = ["SELF_AUTHORIZING", "LoadViewer", "load_viewer_first", "self_authorizing"]
