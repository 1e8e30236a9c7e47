"""Remembered answers: the response body of a prepared query whose answer came
from permission entries alone, sent again while those entries are unchanged.

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

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import orjson

from permbase.metrics import GRAPHQL_REPLAYED

# the label children, bound once (`.labels()` takes a lock and a lookup per call)
_REPLAYED, _CHANGED = (
    GRAPHQL_REPLAYED.labels("replayed"),
    GRAPHQL_REPLAYED.labels("changed"),
)

if TYPE_CHECKING:
    from permstore.models import UserAccess
    from schema.context import Context


class _Answer:
    __slots__ = ("body", "entries", "user_ids")

    def __init__(
        self, body: bytes, user_ids: list[int], entries: list[UserAccess | None]
    ) -> None:
        self.body = body
        self.user_ids = user_ids
        self.entries = entries


class ResponseCache:
    """Per process: answers by (document, operation, variables, cost wanted, the
    caller's token), LRU, at most `maxsize` of them and none larger than
    `max_body` bytes. `maxsize` 0: nothing is remembered."""

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


__all__ = ["ResponseCache"]
