"""Plans: an object's selection completed without graphql-core's per-field
machinery, when nothing in it needs that machinery.

graphql-core completes every field of every object on its own: a path, a
resolve-info object, the argument values, the resolver, a dispatch on the
return type. A page of 100 users with `id email roles { name } permissions` is
~700 of those, most of the CPU of the request (bench/README.md, section 14).
Below the page's root field everything is already in memory (the rows, the
permission entries), and most fields are attribute reads.

A plan is built once per request for an object type and the field nodes that
select it (as graphql-core memoizes `collect_subfields`), and only when every
field selected below is **plain**: `__typename`; a field read by graphql-core's
default resolver or by Strawberry's resolver of a field without a resolver,
extension or permission class (both read an attribute); or a resolver marked
`plain` (`mark_plain`: it reads only `info.context`, and runs its own permission
check). A field guarded by a Strawberry extension is never plain. Arguments are coerced when the plan is built; object types
must have no `is_type_of`; no abstract types, no `@defer`, no middleware.

Running a plan completes the object in one synchronous walk and returns the
same dict graphql-core would. Anything out of the ordinary on the way (a
resolver that raises, such as a permission check; an awaitable, such as an
entry not loaded yet; a null where the type forbids it; a value that is not
what the type expects) abandons the walk, and graphql-core completes that object
from the start, as if there were no plan: errors, their paths and nulls are
graphql-core's own. Plain resolvers only read, so running one twice is the same
as running it once. `tests/integration/test_plans.py` compares the two paths on
generated selections, field by field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from inspect import isawaitable
from typing import TYPE_CHECKING, Any

from graphql import (
    GraphQLField,
    GraphQLID,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLString,
    TypeNameMetaFieldDef,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Undefined

if TYPE_CHECKING:
    from graphql import GraphQLOutputType

Complete = Callable[[Any], Any]
# per field: (response name, read the value from the source, complete it)
Plan = list[tuple[str, Callable[[Any], Any], Complete]]

_STRINGS = (GraphQLString, GraphQLID)  # a str is its own output value in both


class NotPlain(Exception):  # a signal, not an error anyone sees
    """This value needs graphql-core's own completion."""


def mark_plain(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Declare a graphql-core resolver plain: it reads only `info.context` (and its
    arguments), changes nothing, and returns a value or an awaitable."""
    resolver.plain = True  # type: ignore[attr-defined]  # a marker read by `Planner`
    return resolver


PLAIN: Mapping[str, Any] = {"plain": True}
"""The metadata of a Strawberry field whose resolver is plain (`mark_plain`):
`strawberry.field(resolver=fn, metadata=PLAIN)`. `use_plain_resolvers` then
(schema/engine/execution.py) makes `fn` the field's graphql-core resolver: its
one binding."""


class PlanInfo:
    """What a plain resolver may read of its resolve info."""

    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context


class Planner:
    """Builds and memoizes the plans of one execution (`executor`: a
    graphql-core Executor; its schema, variables, fragments and context)."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.info = PlanInfo(executor.context_value)
        # (object type, id of the field group) -> (the group, kept alive; its plan)
        self._plans: dict[tuple[Any, int], tuple[Any, Plan | None]] = {}

    def plan(self, object_type: GraphQLObjectType, fields: Any) -> Plan | None:
        key = (object_type, id(fields))
        known = self._plans.get(key)
        if known is None:
            try:
                built: Plan | None = self._build(object_type, fields)
            except Exception:  # noqa: BLE001 - NotPlain, or arguments that do not coerce: graphql-core says so, at the field
                built = None
            known = self._plans[key] = (fields, built)
        return known[1]

    def _build(self, object_type: GraphQLObjectType, fields: Any) -> Plan:
        executor = self.executor
        middleware = executor.middleware_manager
        if object_type.is_type_of is not None or (
            middleware and middleware.middlewares
        ):
            raise NotPlain
        grouped, deferred, _ = executor.collect_subfields(object_type, fields)
        if deferred:
            raise NotPlain
        plan: Plan = []
        for name, details in grouped.items():
            first = details[0]
            field_name = first.node.name.value
            field_def = executor.schema.get_field(object_type, field_name)
            if field_def is None or first.defer_usage is not None:
                raise NotPlain
            if field_def is TypeNameMetaFieldDef:
                plan.append((name, _constant(object_type.name), _identity))
                continue
            args = (
                get_argument_values(
                    field_def,
                    first.node,
                    executor.variable_values,
                    first.fragment_variable_values,
                    executor.hide_suggestions,
                )
                if field_def.args or first.node.arguments
                else {}
            )
            read = self._reader(field_def, field_name, args)
            plan.append((name, read, self._completer(field_def.type, details)))
        return plan

    def _reader(
        self, field_def: GraphQLField, field_name: str, args: dict[str, Any]
    ) -> Callable[[Any], Any]:
        resolve = field_def.resolve
        if resolve is None:  # graphql-core's default resolver
            if args:
                raise NotPlain

            def attribute(source: Any) -> Any:
                if isinstance(source, Mapping):
                    raise NotPlain
                value = getattr(source, field_name, None)
                if callable(value):
                    raise NotPlain
                return value

            return attribute
        definition = field_def.extensions.get("strawberry-definition")
        if (
            definition is not None
            and definition.is_basic_field  # no resolver, no extension (permission checks)
            and not definition.permission_classes
            and not args
        ):
            # Strawberry's resolver of a field without one: an attribute read
            return lambda source: resolve(source, None)
        if getattr(resolve, "plain", False):
            info = self.info

            def plain(source: Any) -> Any:
                value = resolve(source, info, **args)
                if isawaitable(value):
                    close = getattr(value, "close", None)
                    if close is not None:
                        close()  # never started: graphql-core will run its own
                    raise NotPlain
                return value

            return plain
        raise NotPlain

    def _completer(self, return_type: GraphQLOutputType, fields: Any) -> Complete:
        if isinstance(return_type, GraphQLNonNull):
            inner = self._completer(return_type.of_type, fields)

            def non_null(value: Any) -> Any:
                completed = inner(value)
                if completed is None:
                    raise NotPlain
                return completed

            return non_null
        if isinstance(return_type, GraphQLList):
            item = return_type.of_type
            if isinstance(item, GraphQLNonNull) and item.of_type in _STRINGS:
                return _strings
            each = self._completer(item, fields)

            def as_list(value: Any) -> Any:
                if value is None:
                    return None
                if type(value) not in (list, tuple):
                    raise NotPlain
                return [each(v) for v in value]

            return as_list
        if isinstance(return_type, GraphQLScalarType):
            return _scalar(return_type)
        if isinstance(return_type, GraphQLObjectType):
            plan = self.plan(return_type, fields)
            if plan is None:
                raise NotPlain

            def as_object(value: Any) -> Any:
                if value is None:
                    return None
                if value is Undefined or isinstance(value, Exception):
                    raise NotPlain
                return run(plan, value)

            return as_object
        raise NotPlain  # enums, interfaces, unions: graphql-core's


def run(plan: Plan, source: Any) -> dict[str, Any]:
    """The completed object; raises NotPlain (or the resolver's error) when the
    source needs graphql-core's completion."""
    return {name: complete(read(source)) for name, read, complete in plan}


def _identity(value: Any) -> Any:
    return value


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _source: value


def _strings(value: Any) -> Any:
    """`[String!]` / `[ID!]` holding only str: the list is its own output."""
    if value is None:
        return None
    if type(value) not in (list, tuple) or any(type(v) is not str for v in value):
        raise NotPlain
    return value


def _scalar(scalar: GraphQLScalarType) -> Complete:
    strings = scalar in _STRINGS

    def complete(value: Any) -> Any:
        if value is None:
            return None
        if strings and type(value) is str:
            return value
        if isawaitable(value) or isinstance(value, Exception):
            raise NotPlain
        coerced = scalar.coerce_output_value(value)
        if coerced is Undefined or coerced is None:
            raise NotPlain
        return coerced

    return complete


__all__ = [
    "PLAIN",
    "NotPlain",
    "PlanInfo",
    "Planner",
    "mark_plain",
    "run",
]
