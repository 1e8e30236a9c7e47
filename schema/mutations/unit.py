"""One mutation = one transaction + audit rows; it returns once its change has
reached the cache.

What a mutation changes is recorded by the database itself, in the same
transaction (the change log of migration 0013: whoever writes, psql included);
after the commit `Context.settle` waits until this instance's change stream has
applied it (permcore/stream.py), and the response carries the transaction as its
consistency token. No mutation names the users it makes stale.

The delegation rule (permcore/delegation.py) runs inside that transaction; its
refusals become the mutation's `NotAllowedError` / `NotFoundError` results.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from permcore import delegation
from permstore import audit as audit_store, changes
from schema.mutations.results import (
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    not_found,
)

if TYPE_CHECKING:
    import asyncpg

    from schema.context import Context

logger = logging.getLogger(__name__)

Refusal = NotFoundError | InvalidInputError | ConflictError | NotAllowedError
"""What a mutation returns instead of its payload when its transaction rolls back."""

P = ParamSpec("P")
R = TypeVar("R")


class Rollback(Exception):
    """Raised inside `unit_of_work` to roll back and return `result` instead;
    a resolver decorated with `rolls_back` returns it."""

    def __init__(self, result: Refusal) -> None:
        super().__init__("rollback")
        self.result = result


def rolls_back(
    resolver: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """The one epilogue of every mutation: its body returns the payload or raises
    `Rollback(refusal)` (itself, or `unit_of_work` for the delegation rule's
    refusals), and the field returns that refusal. Put it under
    `@strawberry.mutation`: the signature Strawberry reads is the resolver's.

    The cast to `R` is the contract, checked nowhere else: a body raises only
    refusals that its field's result union lists."""

    @functools.wraps(resolver)
    async def resolve(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolver(*args, **kwargs)
        except Rollback as rollback:
            return cast("R", rollback.result)

    return resolve


@dataclass
class Work:
    con: asyncpg.Connection
    ctx: Context
    # False: this instance could not confirm the change in Redis within
    # CHANGE_WAIT_S (it distrusts the cache until its stream catches up)
    confirmed: bool = True
    _rules: delegation.Delegation | None = None

    async def rules(self, needs: str | None = None) -> delegation.Delegation:
        """The delegation rule for this transaction (permcore/delegation.py): takes the
        lock that serialises privilege changes, reads the caller as committed and
        checks again `needs`, the mutation's own permission (the first call must
        name it). Call it before reading the subject."""
        if self._rules is None:
            if needs is None:
                msg = "the first rules() call of a transaction names the mutation's permission"
                raise TypeError(msg)
            self._rules = await delegation.begin(self.con, self.ctx.viewer_id, needs)
        return self._rules

    async def audit(
        self,
        action: str,
        target_type: str,
        target_id: int | str,
        before: Any,
        after: Any,
    ) -> None:
        await audit_store.insert(
            self.con, self.ctx.viewer_id, action, target_type, target_id, before, after
        )
        logger.info(
            "%s actor=%s target=%s:%s",
            action,
            self.ctx.viewer_id,
            target_type,
            target_id,
        )


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[Work]:
    """Run the body in one transaction; after commit, return once this instance
    has applied what it changed (`Context.settle`)."""
    async with ctx.db.transaction() as con:
        work = Work(con, ctx)
        try:
            yield work
        except delegation.Denied as denied:  # rolls the transaction back
            raise Rollback(
                NotAllowedError(
                    message=denied.message, missing_permissions=denied.missing
                )
            ) from None
        except delegation.Unknown as unknown:
            raise Rollback(not_found(unknown.entity, unknown.ident)) from None
        xid, logged = await changes.select_xid(con)
    # committed
    work.confirmed = await ctx.settle(xid, logged=logged)


def snapshot(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


__all__ = ["Refusal", "Rollback", "Work", "rolls_back", "snapshot", "unit_of_work"]
