"""Prepared documents: queries that passed parsing and validation once run
straight on graphql-core afterwards.

Strawberry's `Schema.execute` runs every schema extension's hooks for every
request (parse, validate, execute, result), through async context managers,
even when the parser and validation caches answer. For a small query that is a
large share of the CPU (bench/README.md, "Profiles"). A document's validity
depends only on its text and the schema (the limits are validation rules of the
schema), so once a query document has passed the full path, the same text may
skip to execution. What the extensions do at execution is done here too:

- the caller's entry is loaded first, by the rule `LoadViewer` applies too
  (`load_viewer_first`, schema/engine/viewer.py);
- errors are logged and masked by the same functions as `ShapeErrors` and
  `PermgraphSchema.process_errors` (schema/engine/errors.py), and coded by `add_codes`.

Only queries: mutations keep the full path. A document is remembered by
`RememberValid`, an extension whose `on_execute` runs only for a document that
parsed and validated; the store is a bounded LRU keyed by the exact text.

A prepared query's answer may also be remembered (`ResponseCache`): sent again,
without execution, while the permission entries it was computed from are
unchanged.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    GraphQLError,
    OperationType,
    execute,
    get_operation_ast,
)
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType as StrawberryOperationType
from strawberry.utils.await_maybe import await_maybe

from permbase.errors import AppError
from permbase.metrics import GRAPHQL_REPLAYED
from schema.engine.errors import add_codes, log_errors, mask
from schema.engine.execution import PermgraphExecutionContext
from schema.engine.limits import QueryCost, query_cost
from schema.engine.viewer import load_viewer_first

logger = logging.getLogger(__name__)

# the label children, bound once (`.labels()` takes a lock and a lookup per call)
_REPLAYED, _CHANGED, _FAILED = (
    GRAPHQL_REPLAYED.labels("replayed"),
    GRAPHQL_REPLAYED.labels("changed"),
    GRAPHQL_REPLAYED.labels("failed"),
)

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from permstore.models import UserAccess
    from schema.context import Context


class Prepared:
    """A document known to be valid, and the costs of its operations that do not
    depend on variables, by (operation name, max page size) (schema/engine/limits.py)."""

    __slots__ = ("costs", "document")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self.costs: dict[tuple[str | None, int], QueryCost] = {}


class PreparedDocuments:
    """Query documents that passed validation, by their exact text (LRU).

    A document is kept from its second validation on: clients that inline
    values into the text (`user(id: "42")`) send a new document almost every
    time, and keeping each would only churn the LRU and hand the garbage
    collector thousands of AST nodes to promote and later free. The first
    sighting leaves only the text's hash behind (an int, which the collector
    does not track)."""

    def __init__(self, maxsize: int = 512, seen_max: int = 8192) -> None:
        self.maxsize = maxsize
        self.seen_max = seen_max
        self._documents: OrderedDict[str, Prepared] = OrderedDict()
        self._seen: OrderedDict[int, None] = OrderedDict()

    def entry(self, query: str) -> Prepared | None:
        entry = self._documents.get(query)
        if entry is not None:
            self._documents.move_to_end(query)
        return entry

    def get(self, query: str) -> DocumentNode | None:
        entry = self.entry(query)
        return None if entry is None else entry.document

    def remember(self, query: str, document: DocumentNode) -> None:
        key = hash(query)
        if key not in self._seen:
            self._seen[key] = None
            if len(self._seen) > self.seen_max:
                self._seen.popitem(last=False)
            return
        if query not in self._documents:
            self._documents[query] = Prepared(document)
        self._documents.move_to_end(query)
        while len(self._documents) > self.maxsize:
            self._documents.popitem(last=False)

    def __len__(self) -> int:
        return len(self._documents)


class RememberValid(SchemaExtension):
    """Remembers a query document once it has parsed and validated."""

    def __init__(self, prepared: PreparedDocuments) -> None:
        self.prepared = prepared

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        if (
            ec.query is not None
            and ec.graphql_document is not None
            and ec.operation_type == StrawberryOperationType.QUERY
        ):
            self.prepared.remember(ec.query, ec.graphql_document)
        yield


class _Answer:
    __slots__ = ("body", "entries", "user_ids")

    def __init__(
        self, body: bytes, user_ids: list[int], entries: list[UserAccess | None]
    ) -> None:
        self.body = body
        self.user_ids = user_ids
        self.entries = entries


class ResponseCache:
    """Remembered answers: the response body of a prepared query whose answer
    came from permission entries alone, sent again while those entries are
    unchanged. Per process: by (document, operation, variables, cost wanted,
    the caller's token), LRU, at most `maxsize` of them and none larger than
    `max_body` bytes. `maxsize` 0: nothing is remembered.

    "What may this user do?" (`user(id) { id permissions hasPermission(...) }`,
    `me { permissions }`) is answered from the permission entries of the caller and
    of the users asked about, with no SQL. Such an answer is a function of the
    document, its variables, the caller's verified token and those entries, nothing
    else. So it is remembered with the entries it was computed from, and a later
    request with the same document, variables and token reads the same entries
    (one MGET, as every request does: a change that committed is seen at once) and,
    when every one is the very entry the answer was computed from, gets the
    remembered bytes without execution. When one changed, the request executes as
    usual, on the entries it has just read (no second MGET), and its answer is
    remembered in place of the old one.

    "The very entry": the permission cache decodes each distinct cached value once
    per process and hands out the same `UserAccess` object for the same bytes and
    epoch (permcore/cache.py), so identity is the test. An entry loaded from
    PostgreSQL (a miss, a distrusted cache) is an object no later read returns:
    an answer computed from one is not remembered when this request took a
    connection (one that waited for another request's load is, and is simply never
    replayed). Nor is an answer that read anything else from PostgreSQL (a row, a
    page), one whose request read a user twice and got two different entries, one
    with errors, one asked with a consistency token, or an anonymous one.
    """

    def __init__(self, maxsize: int, max_body: int = 8192) -> None:
        self.maxsize = maxsize
        self.max_body = max_body
        self._answers: OrderedDict[Hashable, _Answer] = OrderedDict()

    def key(
        self,
        context: Context,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        want_cost: bool,
    ) -> Hashable | None:
        """The answer's key, or None: this request's answer is not one to remember."""
        if (
            not self.maxsize
            or context.principal is None
            or context.consistency is not None
        ):
            return None
        return (
            query,
            operation_name,
            orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else None,
            want_cost,
            context.principal,  # user, session, issue time, token id
        )

    async def replay(self, key: Hashable, context: Context) -> bytes | None:
        """The remembered body, when the entries it was computed from are those
        the request reads now; None: execute (the entries just read are the
        request's, memoized)."""
        answer = self._answers.get(key)
        if answer is None:
            return None
        entries = await context.loaders.access(answer.user_ids)
        for now, then in zip(entries, answer.entries, strict=True):
            if now is not then:
                _CHANGED.inc()
                return None
        if (
            self._answers.get(key) is answer
        ):  # (another request may have replaced it meanwhile)
            self._answers.move_to_end(key)
        _REPLAYED.inc()
        return answer.body

    def remember(self, key: Hashable, context: Context, body: bytes) -> None:
        """Keep an answer without errors if the request read nothing but cached
        permission entries (no statement on its database view)."""
        memo = context.loaders.access
        if context.db.connections or memo.mixed or len(body) > self.max_body:
            self._answers.pop(key, None)
            return
        seen = memo.entries
        self._answers[key] = _Answer(body, list(seen), list(seen.values()))
        self._answers.move_to_end(key)
        while len(self._answers) > self.maxsize:
            self._answers.popitem(last=False)

    def __len__(self) -> int:
        return len(self._answers)


def prepared_query(
    prepared: PreparedDocuments, query: str, operation_name: str | None
) -> Prepared | None:
    """The prepared document when it may take the prepared path: known, and the
    operation it selects is a query."""
    entry = prepared.entry(query)
    if entry is None:
        return None
    operation = get_operation_ast(entry.document, operation_name)
    if operation is None or operation.operation != OperationType.QUERY:
        return None
    return entry


async def execute_prepared(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    context: Context,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    want_cost: bool = False,
    costs: dict[tuple[str | None, int], QueryCost] | None = None,
) -> dict[str, Any]:
    """Execute a prepared query; return the response body as a client sees it.
    Its cost is checked first (schema/engine/limits.py: the document passed the shape
    limits when it was validated, the cost may depend on the variables), and
    reported in `extensions.cost` when `want_cost`. `costs`: where to keep the
    cost when variables do not change it (`Prepared.costs`)."""
    data: Any = None
    errors: list[GraphQLError] | None
    extensions: dict[str, Any] | None = None
    operation = get_operation_ast(document, operation_name)
    if operation is not None:
        settings = context.settings
        key = (operation_name, settings.max_page_size)
        cost = None if costs is None else costs.get(key)
        if cost is None:
            cost = query_cost(
                schema, document, operation, variables, settings.max_page_size
            )
            if cost.static and costs is not None:
                costs[key] = cost
        refused = cost.error(settings)
        if refused is not None:
            return add_codes({"data": None, "errors": [refused.formatted]})
        if want_cost:
            extensions = {"cost": cost.report(settings)}
    try:
        await load_viewer_first(context, operation)
        result = await await_maybe(
            execute(
                schema,
                document,
                context_value=context,
                variable_values=variables,
                operation_name=operation_name,
                executor_class=PermgraphExecutionContext,
                is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # Strawberry's own, as its execute passes it
            )
        )
        data, errors = result.data, result.errors
    except Exception as exc:  # noqa: BLE001 - as Strawberry's execute: an error of the response
        errors = [
            exc
            if isinstance(exc, GraphQLError)
            else GraphQLError(str(exc), original_error=exc)
        ]
    response: dict[str, Any] = {"data": data}
    if errors:
        log_errors(errors, context.request_id)
        response["errors"] = [mask(e, context.request_id).formatted for e in errors]
        add_codes(response)
    if extensions is not None:
        response["extensions"] = extensions
    return response


async def answer_prepared(
    schema: GraphQLSchema,
    prepared: Prepared,
    query: str,
    *,
    context: Context,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    want_cost: bool,
    responses: ResponseCache,
) -> bytes:
    """The response body of a prepared query: remembered when it is still what
    executing would answer (`ResponseCache`), else executed."""
    key = responses.key(context, query, operation_name, variables, want_cost)
    if key is not None:
        try:
            body = await responses.replay(key, context)
        except (
            Exception
        ) as exc:  # execution answers it, coded (a miss with PostgreSQL down)
            _FAILED.inc()
            if not isinstance(exc, AppError):
                logger.exception(
                    "replaying a remembered answer failed (request %s)",
                    context.request_id,
                )
            body = None
        if body is not None:
            return body
    result = await execute_prepared(
        schema,
        prepared.document,
        context=context,
        variables=variables,
        operation_name=operation_name,
        want_cost=want_cost,
        costs=prepared.costs,
    )
    body = orjson.dumps(result)
    if key is not None and "errors" not in result:
        responses.remember(key, context, body)
    return body


__all__ = [
    "Prepared",
    "PreparedDocuments",
    "RememberValid",
    "ResponseCache",
    "answer_prepared",
    "execute_prepared",
    "prepared_query",
]
