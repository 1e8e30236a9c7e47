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
from typing import Any

from graphql import FieldNode, OperationDefinitionNode, OperationType
from strawberry.extensions import SchemaExtension

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


class LoadViewer(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        ctx: Any = self.execution_context.context
        operation = _operation(self.execution_context)
        if getattr(ctx, "principal", None) is not None and not self_authorizing(
            operation
        ):
            await ctx.load_viewer()
        yield


def _operation(execution_context: Any) -> OperationDefinitionNode | None:
    document = execution_context.graphql_document
    if document is None:
        return None
    name = execution_context.operation_name
    operations = [
        d for d in document.definitions if isinstance(d, OperationDefinitionNode)
    ]
    for operation in operations:
        if name is None or (
            operation.name is not None and operation.name.value == name
        ):
            return operation
    return None


__all__ = ["SELF_AUTHORIZING", "LoadViewer", "self_authorizing"]
