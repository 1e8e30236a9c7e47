"""One mutation = one transaction + audit rows + exact invalidation after commit.

The delegation rule (permcore/delegation.py) runs inside that transaction; its
refusals become the mutation's `NotAllowedError` / `NotFoundError` results.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from loaders.factory import forget
from permcore import delegation
from permstore import audit as audit_store
from schema.mutations.results import (
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    not_found,
)

if TYPE_CHECKING:
    import asyncpg

    from permcore.invalidation import Ticket
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
    stale: set[int] = field(default_factory=set)
    stale_all: bool = False
    ticket: Ticket | None = None
    confirmed: bool = (
        True  # False: Redis missed the invalidation; the outbox replays it
    )
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

    def invalidate(self, user_ids: Iterable[int]) -> None:
        self.stale.update(user_ids)


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[Work]:
    """Run the body in one transaction; after commit, invalidate exactly the users
    it marked stale (recorded in the outbox inside the transaction)."""
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
        if work.stale_all or work.stale:
            work.ticket = await ctx.invalidator.record(
                con, None if work.stale_all else sorted(work.stale)
            )
    # committed
    if work.ticket is not None:
        work.confirmed = await ctx.invalidator.apply(work.ticket)
        loader = ctx.loaders.access_by_user_id
        if work.stale_all:
            loader.clear_all()
        else:
            forget(loader, *work.stale)
        if ctx.viewer_id in work.stale or work.stale_all:
            await ctx.load_viewer()


def snapshot(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


__all__ = ["Refusal", "Rollback", "Work", "rolls_back", "snapshot", "unit_of_work"]
