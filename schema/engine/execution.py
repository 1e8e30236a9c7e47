"""The executor: plans for plain objects (schema/engine/plans.py), and one fast
path for lists of strings.

graphql-core completes every item of a list on its own: for `permissions:
[String!]!` on a page of 100 users that is ~2,000 leaf completions per request,
each a handful of Python calls that end in returning the same `str`. When a list
of non-null Strings already holds only `str` values, serialising each item is the
identity, so the list is returned as it is. Anything else takes the general path.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
)
from strawberry.schema import Schema
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.engine.plans import Planner, mark_plain, run

_STR_ONLY = {str}
_SEQUENCES = (list, tuple)  # orjson writes both as arrays


_PLAIN_SCALARS = frozenset({"String", "ID", "Int", "Float", "Boolean"})


def _fields(schema: Schema) -> Iterator[tuple[Any, GraphQLField, str]]:
    """(Strawberry field, graphql-core field, GraphQL name) of every object type."""
    for graphql_type in schema._schema.type_map.values():
        definition = (
            graphql_type.extensions.get("strawberry-definition")
            if isinstance(graphql_type, GraphQLObjectType)
            else None
        )
        if definition is None:
            continue
        assert isinstance(graphql_type, GraphQLObjectType)  # noqa: S101 - checked just above
        for strawberry_field in definition.fields:
            name = schema.config.name_converter.get_graphql_name(strawberry_field)
            field = graphql_type.fields.get(name)
            if field is not None:
                yield strawberry_field, field, name


def use_default_resolvers(schema: Schema) -> int:
    """Scalar fields that only read the attribute of the same name resolve through
    graphql-core's default resolver instead of Strawberry's per-field wrapper
    (a page of 100 users with roles completes ~1,000 such fields). Fields with a
    resolver, an extension, a permission class or a camelCase name keep
    Strawberry's. Returns how many fields changed."""
    changed = 0
    for strawberry_field, field, name in _fields(schema):
        if (
            name != strawberry_field.python_name
            or strawberry_field.base_resolver is not None
            or strawberry_field.extensions
            or strawberry_field.permission_classes
        ):
            continue
        inner = (
            field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
        )
        if isinstance(inner, GraphQLScalarType) and inner.name in _PLAIN_SCALARS:
            field.resolve = None
            changed += 1
    return changed


def use_plain_resolvers(schema: Schema) -> int:
    """Install the resolver of every field declared with `PLAIN` metadata
    (schema/engine/plans.py) as its graphql-core resolver, marked plain, without
    Strawberry's per-field wrapper. Returns how many."""
    installed = 0
    for strawberry_field, field, _name in _fields(schema):
        resolver = strawberry_field.base_resolver
        if strawberry_field.metadata.get("plain") and resolver is not None:
            field.resolve = mark_plain(resolver.wrapped_func)
            installed += 1
    return installed


class StrayCancellation(RuntimeError):
    """A CancelledError reached the top of execution while the request itself was
    not being cancelled: something awaited a future that another task cancelled."""


class PermgraphExecutionContext(StrawberryGraphQLCoreExecutionContext):
    plans = True  # objects whose selection is plain complete by plan (plans.py)
    _planner: Planner | None = None

    def complete_object_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        """By its plan when the selection is plain (schema/engine/plans.py);
        otherwise, or when the plan gives up on this value, graphql-core's."""
        if self.plans:
            planner = self._planner
            if planner is None:
                planner = self._planner = Planner(self)
            plan = planner.plan(return_type, field_details_list)
            if plan is not None:
                try:
                    return run(plan, result)
                except Exception:  # noqa: BLE001, S110 - NotPlain or a resolver's error: graphql-core completes it, errors and all
                    pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        """graphql-core turns every Exception of a resolver into a located error,
        but asyncio.CancelledError is no Exception: one that escaped here (a field
        awaiting a future that a cancelled sibling took down with it: see
        loaders/factory.py `SharedLoader`) ended the request in a plain-text HTTP
        500. The last line of defence: it becomes an error of the response (masked
        and logged as unexpected), unless this request is itself being cancelled."""
        result = super().execute_operation(serially)
        if self.is_awaitable(result):
            return self._no_stray_cancellation(result)
        return result

    async def _no_stray_cancellation(self, result: Any) -> Any:
        try:
            return await result
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is None or task.cancelling():
                raise
            stray = StrayCancellation("a load was cancelled under a running request")
            stray.__cause__ = exc
            self.collected_errors.add(
                GraphQLError(str(stray), original_error=stray), None
            )
            return self.build_response(None)

    def build_response(self, data: Any) -> Any:
        """The executor holds helpers made of its own bound methods, a cycle: every
        executor, with the context and all a request built, then waited for the
        garbage collector instead of being freed when the request ended (~86
        objects per request on the lane). Execution is over here: cut it."""
        response = super().build_response(data)
        self.async_helpers = None  # type: ignore[assignment]  # execution is over: nothing reads it again
        self._planner = None  # it holds the executor too
        return response

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
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )


__all__ = [
    "PermgraphExecutionContext",
    "StrayCancellation",
    "use_default_resolvers",
    "use_plain_resolvers",
]
