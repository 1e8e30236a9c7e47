"""One operation = one transaction + audit rows; it returns once its change has
reached the cache.

What an operation changes is recorded by the database itself, in the same
transaction (the change log of migration 0013: whoever writes, psql included);
after the commit the actor's `settle` waits until this instance's change stream
has applied it (permcore/stream.py). No operation names the users it makes stale.

The delegation rule (permcore/delegation.py) runs inside that transaction; its
refusals, like every `Refused` raised in the body, roll the transaction back.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from permadmin.refusals import NotAllowed, NotFound
from permcore import delegation
from permstore import audit as audit_store, changes

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who acts (None: nobody signed in, as at login), with the permissions of
    their entry, on which database, and how their commits are settled."""

    db: Database
    user_id: int | None
    settle: changes.Settle
    permissions: frozenset[str] = field(default_factory=frozenset)


@dataclass
class Work:
    con: asyncpg.Connection
    actor: Actor
    # False: this instance could not confirm the change in Redis within
    # CHANGE_WAIT_S (it distrusts the cache until its stream catches up)
    confirmed: bool = True
    _rules: delegation.Delegation | None = None

    async def rules(self, needs: str | None = None) -> delegation.Delegation:
        """The delegation rule for this transaction (permcore/delegation.py): takes the
        lock that serialises privilege changes, reads the actor as committed and
        checks again `needs`, the operation's own permission (the first call must
        name it). Call it before reading the subject."""
        if self._rules is None:
            if needs is None:
                msg = "the first rules() call of a transaction names the operation's permission"
                raise TypeError(msg)
            self._rules = await delegation.begin(self.con, self.actor.user_id, needs)
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
            self.con, self.actor.user_id, action, target_type, target_id, before, after
        )
        logger.info(
            "%s actor=%s target=%s:%s",
            action,
            self.actor.user_id,
            target_type,
            target_id,
        )


@asynccontextmanager
async def unit_of_work(actor: Actor) -> AsyncIterator[Work]:
    """Run the body in one transaction; after commit, return once this instance
    has applied what it changed (`Actor.settle`)."""
    async with actor.db.transaction() as con:
        work = Work(con, actor)
        try:
            yield work
        except delegation.Denied as denied:  # rolls the transaction back
            raise NotAllowed(denied.message, denied.missing) from None
        except delegation.Unknown as unknown:
            raise NotFound(unknown.entity, unknown.ident) from None
        xid, logged = await changes.select_xid(con)
    # committed
    work.confirmed = await actor.settle(xid, logged=logged)


def snapshot(obj: Any, *names: str) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}


__all__ = ["Actor", "Work", "snapshot", "unit_of_work"]
