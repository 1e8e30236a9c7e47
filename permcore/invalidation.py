"""Invalidation after commit, made durable by the outbox.

A mutation calls `record(con, user_ids)` inside its transaction, which writes an
outbox row with exactly the users it makes stale (None: everyone). After commit
it calls `apply(ticket)`: Redis drops the entries and replaces the fill tokens,
then the row is deleted. If Redis cannot be reached the row stays, this instance
stops trusting Redis (reads go to PostgreSQL) and the replayer (`replay_pending`,
run every `outbox_replay_interval_s` by every instance) applies it later; only
then is the cache trusted again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from permbase.metrics import INVALIDATION_FAILURES
from permcore.cache import InvalidationFailed
from permstore import outbox

if TYPE_CHECKING:
    import asyncpg

    from permcore.cache import PermissionCache
    from permstore.db import Database

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ticket:
    outbox_id: int
    user_ids: tuple[int, ...] | None  # None: every user


class Invalidator:
    def __init__(self, db: Database, cache: PermissionCache) -> None:
        self.db = db
        self.cache = cache
        # called after every whole-cache flush Redis confirmed (the keeper's kick)
        self.on_flush: Callable[[], None] | None = None

    async def record(
        self, con: asyncpg.Connection, user_ids: Sequence[int] | None
    ) -> Ticket | None:
        """Inside the mutation's transaction. None when nothing became stale."""
        if user_ids is not None:
            user_ids = sorted(set(user_ids))
            if not user_ids:
                return None
        outbox_id = await outbox.insert(con, user_ids)
        return Ticket(outbox_id, None if user_ids is None else tuple(user_ids))

    async def _send(self, user_ids: Sequence[int] | None) -> None:
        if user_ids is None:
            await self.cache.invalidate_all()
            if self.on_flush is not None:
                self.on_flush()
        else:
            await self.cache.invalidate_users(user_ids)

    async def apply(self, ticket: Ticket | None) -> bool:
        """After commit. True when Redis confirmed; False leaves it to the replayer."""
        if ticket is None:
            return True
        try:
            await self._send(ticket.user_ids)
        except InvalidationFailed:
            INVALIDATION_FAILURES.inc()
            self.cache.trusted = False
            logger.warning(
                "invalidation could not reach redis; kept in outbox %d",
                ticket.outbox_id,
            )
            return False
        await outbox.delete(self.db, [ticket.outbox_id])
        return True

    async def replay_pending(self) -> int:
        """Apply every outbox row; trust the cache again once none is left."""
        rows = await outbox.select_pending(self.db)
        done = []
        for outbox_id, user_ids in rows:
            try:
                await self._send(user_ids)
            except InvalidationFailed:
                self.cache.trusted = False
                break
            done.append(outbox_id)
        if done:
            await outbox.delete(self.db, done)
            logger.info("replayed %d outbox invalidations", len(done))
        if len(done) == len(rows):
            self.cache.trusted = True
        return len(done)

    async def run_replayer(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.replay_pending()
            except Exception:
                logger.warning("outbox replay failed; retrying", exc_info=True)


__all__ = ["Invalidator", "Ticket"]
