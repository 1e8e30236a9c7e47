"""What one query document may ask for, checked before the work it would cause.

Two checks, both refused with `QUERY_TOO_COMPLEX` and the numbers in
`extensions`:

**The document's shape**, after parsing and before validation (`shape_error`).
Validation costs more than parsing, and grows faster than the document:
graphql-core's OverlappingFieldsCanBeMerged rule compares the fields of a
selection set pair by pair, and every directive is looked up and checked for
repetition and location (1,000 copies of `__typename` or 990 unknown directives
cost many times a trivial document: bench/limits.py, bench/README.md). One walk over the parsed document counts the directives at each
location and in all, and the selections of each selection set and in all
(settings `MAX_DIRECTIVES_PER_LOCATION`, `MAX_DIRECTIVES`,
`MAX_SELECTIONS_PER_SET`, `MAX_SELECTIONS`). The token limit bounds the walk.

**The query's cost**, after validation and before execution (`query_cost`),
computed as GitHub's GraphQL API computes it: a connection (a field that takes
`first`) may return `first` objects, `DEFAULT_PAGE_SIZE` when `first` is null or
absent; a list of objects without `first` counts as `DEFAULT_PAGE_SIZE` objects;
the lists inside a connection's page are that page. The counts multiply down the
nesting. Two numbers (settings `MAX_QUERY_NODES`, `MAX_QUERY_COST`):

- nodes: the objects the answer may hold, summed over every list;
- cost: how many times a list is resolved, i.e. one per parent object it is
  resolved for (each resolution is a load: a statement or a Redis read).

`{ roles { members { edges { node { roles { members { edges { node { email } } } } } } } } }`:
roles 20, members 20 x 20 = 400, roles 400 x 20 = 8,000, members 8,000 x 20 =
160,000: 168,420 nodes; cost 1 + 20 + 400 + 8,000 = 8,421.

Variables count as sent (`first: $n`), clamped to the page size range (a bigger
`first` is refused by the resolver anyway). Introspection fields are not counted.
Directives are ignored (`@skip` counts what it skips). The fast lane keeps the
cost of a prepared operation whose cost does not depend on its variables
(schema/engine/prepared.py); otherwise it is one walk of the operation per request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    get_operation_ast,
)
from strawberry.extensions import ValidationCache

from permbase.metrics import QUERY_REFUSED
from schema.pagination import DEFAULT_PAGE_SIZE

if TYPE_CHECKING:
    from graphql import GraphQLNamedType, GraphQLSchema

    from permbase.settings import Settings

CODE = "QUERY_TOO_COMPLEX"
_SEQUENCES = (tuple, list)  # the parser makes tuples


def too_complex(
    message: str, nodes: list[Node] | None = None, **numbers: int | str
) -> GraphQLError:
    return GraphQLError(message, nodes=nodes, extensions={"code": CODE, **numbers})


# -- the document's shape, before validation -------------------------------------


def shape_error(document: DocumentNode, settings: Settings) -> GraphQLError | None:
    """The first limit the parsed document exceeds, or None. One walk over every
    node, without recursion: directives and selections are counted wherever they
    occur (a type definition's directives too, which validation would otherwise
    visit before refusing the definition)."""
    per_location, per_set = (
        settings.max_directives_per_location,
        settings.max_selections_per_set,
    )
    directives = selections = 0
    stack: list[Any] = [document]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        node = pop()
        for key in node.keys:
            value = getattr(node, key)
            if value is None or key == "loc" or type(value) is NameNode:
                continue
            if type(value) in _SEQUENCES:
                if key == "directives":
                    found = len(value)
                    if found > per_location:
                        return _refuse(
                            "directivesPerLocation",
                            f"Too many directives in one place: {found} (at most {per_location}).",
                            found,
                            per_location,
                            [value[0]],
                        )
                    directives += found
                elif key == "selections":
                    found = len(value)
                    if found > per_set:
                        return _refuse(
                            "selectionsPerSet",
                            f"Too many selections in one selection set: {found} (at most {per_set}).",
                            found,
                            per_set,
                            [node],
                        )
                    selections += found
                extend(value)
            elif isinstance(value, Node):
                push(value)
    if directives > settings.max_directives:
        return _refuse(
            "directives",
            f"Too many directives in the document: {directives} (at most {settings.max_directives}).",
            directives,
            settings.max_directives,
        )
    if selections > settings.max_selections:
        return _refuse(
            "selections",
            f"Too many selections in the document: {selections} (at most {settings.max_selections}).",
            selections,
            settings.max_selections,
        )
    return None


def _refuse(
    limit: str, message: str, found: int, maximum: int, nodes: list[Node] | None = None
) -> GraphQLError:
    QUERY_REFUSED.labels(limit).inc()
    return too_complex(message, nodes, limit=limit, found=found, max=maximum)


# -- the query's cost, before execution -------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryCost:
    nodes: int
    cost: int
    static: bool = True  # False: a variable sets a page size (compute per request)

    def report(self, settings: Settings) -> dict[str, int]:
        """What `extensions.cost` holds: each number with its limit."""
        return {
            "nodes": self.nodes,
            "maxNodes": settings.max_query_nodes,
            "cost": self.cost,
            "maxCost": settings.max_query_cost,
        }

    def error(self, settings: Settings) -> GraphQLError | None:
        """QUERY_TOO_COMPLEX when over a limit, else None."""
        if (
            self.nodes <= settings.max_query_nodes
            and self.cost <= settings.max_query_cost
        ):
            return None
        QUERY_REFUSED.labels("cost").inc()
        return GraphQLError(
            f"Query too complex: it may return {self.nodes} nodes (at most {settings.max_query_nodes}) "
            f"and resolve lists {self.cost} times (at most {settings.max_query_cost}). "
            "Ask for smaller pages (`first`) or less nesting.",
            extensions={"code": CODE, "cost": self.report(settings)},
        )


def query_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: dict[str, Any] | None,
    max_page_size: int,
) -> QueryCost:
    """The cost of a validated operation (see the module docstring): one walk,
    each fragment walked once."""
    walk = _Walk(schema, document, operation, variables or {}, max_page_size)
    root = schema.get_root_type(operation.operation)
    nodes, cost = (
        walk.selection_set(root, operation.selection_set, in_page=False)
        if root is not None
        else (0, 0)
    )
    return QueryCost(nodes, cost, static=not walk.uses_variables)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any],
        max_page_size: int,
    ) -> None:
        self.schema = schema
        self.fragments = {
            d.name.value: d
            for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.defaults = {
            v.variable.name.value: v.default_value
            for v in operation.variable_definitions or ()
        }
        self.variables = variables
        self.max_page_size = max_page_size
        self.uses_variables = False
        # a fragment's (nodes, cost) for one parent object: the counts are linear
        # in the parent's multiplicity, so each fragment is walked once however
        # often it is spread (no blow-up from fragments spreading fragments)
        self.spread: dict[tuple[str, bool], tuple[int, int]] = {}

    def selection_set(
        self,
        parent: GraphQLNamedType,
        selection_set: SelectionSetNode,
        *,
        in_page: bool,
    ) -> tuple[int, int]:
        """(nodes, cost) of a selection set, for one parent object. `in_page`: the
        set is a connection's, whose lists are the page already counted."""
        nodes = cost = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                n, c = self.field(parent, selection, in_page=in_page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = (
                    self.schema.get_type(condition.name.value)
                    if condition is not None
                    else parent
                )
                n, c = (
                    self.selection_set(target, selection.selection_set, in_page=in_page)
                    if target is not None
                    else (0, 0)
                )
            elif isinstance(selection, FragmentSpreadNode):
                n, c = self.fragment(selection.name.value, in_page=in_page)
            else:  # pragma: no cover - no other kind of selection exists
                continue
            nodes += n
            cost += c
        return nodes, cost

    def fragment(self, name: str, *, in_page: bool) -> tuple[int, int]:
        key = (name, in_page)
        known = self.spread.get(key)
        if known is not None:
            return known
        self.spread[key] = (0, 0)  # a cycle (refused by validation) counts nothing
        definition = self.fragments.get(name)
        target = (
            self.schema.get_type(definition.type_condition.name.value)
            if definition is not None
            else None
        )
        result = (
            self.selection_set(target, definition.selection_set, in_page=in_page)
            if definition and target
            else (0, 0)
        )
        self.spread[key] = result
        return result

    def field(
        self, parent: GraphQLNamedType, node: FieldNode, *, in_page: bool
    ) -> tuple[int, int]:
        if node.selection_set is None or not isinstance(
            parent, GraphQLObjectType | GraphQLInterfaceType
        ):
            return 0, 0  # a leaf, or a field of a union (only __typename)
        name = node.name.value
        if name.startswith("__"):
            return 0, 0  # introspection
        definition = parent.fields.get(name)
        if definition is None:
            return 0, 0
        child = get_named_type(definition.type)
        if "first" in definition.args:  # a connection: `first` objects in its page
            size = self.page_size(node)
            nodes, cost = self.selection_set(child, node.selection_set, in_page=True)
            return size + size * nodes, 1 + size * cost
        field_type = (
            definition.type.of_type
            if isinstance(definition.type, GraphQLNonNull)
            else definition.type
        )
        nodes, cost = self.selection_set(child, node.selection_set, in_page=False)
        if not isinstance(field_type, GraphQLList) or in_page:
            return nodes, cost  # one object (or a page counted at its connection)
        size = DEFAULT_PAGE_SIZE
        return size + size * nodes, 1 + size * cost

    def page_size(self, node: FieldNode) -> int:
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = argument.value
        if isinstance(value, VariableNode):
            self.uses_variables = True
            name = value.name.value
            value = (
                self.variables[name]
                if name in self.variables
                else self.defaults.get(name)
            )
        if isinstance(value, IntValueNode):
            value = int(value.value)
        if type(value) is not int:  # null, absent, or a value execution will refuse
            return DEFAULT_PAGE_SIZE
        return min(max(value, 0), self.max_page_size)


# -- on Strawberry's path -------------------------------------------------------------


def cost_requested(extensions: Any) -> bool:
    """Did the request ask for its cost (`"extensions": {"cost": true}`)?"""
    return type(extensions) is dict and extensions.get("cost") is True


class LimitedValidation(ValidationCache):
    """Validation (cached, as ValidationCache), with the shape limits before it
    and the cost limit after it: a document over a limit is never validated, a
    query over its cost is never executed. Both answers are errors before
    execution, like a validation error (`data: null`). With `"extensions":
    {"cost": true}` in the request, the response's `extensions.cost` holds the
    query's cost and the limits."""

    def __init__(self, maxsize: int) -> None:
        super().__init__(maxsize=maxsize)
        self.cost: dict[str, int] | None = None

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        settings: Settings | None = getattr(ec.context, "settings", None)
        document = ec.graphql_document
        assert document is not None  # noqa: S101 - Strawberry validates only a parsed document
        # everything happens before the yield: Strawberry reads the errors inside
        # the validation step, before the code after a yield would run
        error = None if settings is None else shape_error(document, settings)
        if error is None:
            ec.pre_execution_errors = self.cached_validate_document(
                ec.schema._schema, document, ec.validation_rules
            )
            if not ec.pre_execution_errors and settings is not None:
                error = self._check_cost(settings, document)
        if error is not None:
            ec.pre_execution_errors = [error]
        yield

    def _check_cost(
        self, settings: Settings, document: DocumentNode
    ) -> GraphQLError | None:
        ec = self.execution_context
        operation = get_operation_ast(document, ec.operation_name)
        if operation is None:
            return None  # execution reports it
        cost = query_cost(
            ec.schema._schema, document, operation, ec.variables, settings.max_page_size
        )
        error = cost.error(settings)
        if error is None and cost_requested(ec.operation_extensions):
            self.cost = cost.report(settings)
        return error

    def get_results(self) -> dict[str, Any]:
        return {} if self.cost is None else {"cost": self.cost}


__all__ = [
    "CODE",
    "LimitedValidation",
    "QueryCost",
    "cost_requested",
    "query_cost",
    "shape_error",
    "too_complex",
]
