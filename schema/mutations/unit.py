"""One mutation = one transaction + audit rows + exact invalidation after commit."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from api.store import audit as audit_store, roles as role_store
from loaders.factory import forget
from schema.mutations.results import NotAllowedError

if TYPE_CHECKING:
    import asyncpg

    from api.context import Context
    from api.invalidation import Ticket

logger = logging.getLogger(__name__)


class Rollback(Exception):
    """Raised inside `unit_of_work` to roll back and return `result` instead."""

    def __init__(self, result: Any) -> None:
        super().__init__("rollback")
        self.result = result


@dataclass
class Work:
    con: asyncpg.Connection
    ctx: Context
    stale: set[int] = field(default_factory=set)
    stale_all: bool = False
    ticket: Ticket | None = None
    confirmed: bool = True  # False: Redis missed the invalidation; the outbox replays it

    async def audit(self, action: str, target_type: str, target_id: int | str, before: Any, after: Any) -> None:
        await audit_store.insert(self.con, self.ctx.viewer_id, action, target_type, target_id, before, after)
        logger.info("%s actor=%s target=%s:%s", action, self.ctx.viewer_id, target_type, target_id)

    def invalidate(self, user_ids: Iterable[int]) -> None:
        self.stale.update(user_ids)


@asynccontextmanager
async def unit_of_work(ctx: Context) -> AsyncIterator[Work]:
    """Run the body in one transaction; after commit, invalidate exactly the users
    it marked stale (recorded in the outbox inside the transaction)."""
    async with ctx.db.transaction() as con:
        work = Work(con, ctx)
        yield work
        if work.stale_all or work.stale:
            work.ticket = await ctx.invalidator.record(con, None if work.stale_all else sorted(work.stale))
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




GUARDED_PERMISSION = "roles:write"
PERMISSION_ADMIN = "permissions:write"


async def lock_guard(work: Work) -> None:
    """Call before a change that may take privileges away."""
    await role_store.lock_guard(work.con)


async def ensure_guard_holder_remains(work: Work) -> None:
    """Roll back when no active user would hold roles:write any more."""
    if await role_store.count_active_holders(work.con, GUARDED_PERMISSION) == 0:
        raise Rollback(
            NotAllowedError(
                message=f"This would leave nobody holding {GUARDED_PERMISSION!r}.",
                missing_permissions=[],
            )
        )


async def ensure_actor_holds(work: Work, codes: Iterable[str]) -> None:
    """Nobody grants what they do not hold themselves. One exception, or a new
    permission could never be granted: a holder of permissions:write (who defines
    permissions) may grant one that no active user holds yet."""
    access = work.ctx.viewer_access()
    missing = sorted(set(codes) - access.permissions)
    if missing and PERMISSION_ADMIN in access.permissions:
        missing = [c for c in missing if await role_store.count_active_holders(work.con, c) > 0]
    if missing:
        raise Rollback(
            NotAllowedError(
                message="You cannot grant permissions you do not hold: " + ", ".join(missing) + ".",
                missing_permissions=missing,
            )
        )


__all__ = [
    "Rollback",
    "Work",
    "ensure_actor_holds",
    "ensure_guard_holder_remains",
    "lock_guard",
    "snapshot",
    "unit_of_work",
]
