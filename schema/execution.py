"""The executor, with one fast path.

graphql-core completes every item of a list on its own: for `permissions:
[String!]!` on a page of 100 users that is ~2,000 leaf completions per request,
each a handful of Python calls that end in returning the same `str`. When a list
of non-null Strings already holds only `str` values, serialising each item is the
identity, so the list is returned as it is. Anything else takes the general path.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLNonNull, GraphQLString
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

_STR_ONLY = {str}
_SEQUENCES = (list, tuple)  # orjson writes both as arrays


class PermgraphExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def complete_list_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        item_type = return_type.of_type
        if (
            type(result) in _SEQUENCES
            and type(item_type) is GraphQLNonNull
            and item_type.of_type is GraphQLString
            and set(map(type, result)) <= _STR_ONLY
        ):
            return result
        return super().complete_list_value(return_type, field_details_list, info, path, result, position_context)


__all__ = ["PermgraphExecutionContext"]
