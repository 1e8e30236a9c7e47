"""The consumer of the permission change log (migration 0013): every committed
change to roles, grants, memberships, users or sessions, whoever wrote it (a
mutation, psql, a migration, another service), reaches Redis.

One per instance. A pass reads the changes at or above its position together
with the snapshot's xmin (the horizon: every transaction below it has ended),
invalidates the entries they name (users; every holder of a role, looked up as
the change is applied; everyone), then moves its position to the horizon.
Changes above the horizon that are already visible are applied at once and
remembered, so a long-running transaction elsewhere delays nothing and nothing
is applied twice. LISTEN/NOTIFY only wakes the consumer early; polling every
`poll_interval` is what guarantees progress (a listener that was disconnected
misses notifications). If Redis cannot be reached the position stays and the
cache is not trusted (reads go to PostgreSQL) until a pass succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from permbase.metrics import STREAM_APPLIED, STREAM_LAG_SECONDS
from permcore.cache import InvalidationFailed
from permstore import changes

if TYPE_CHECKING:
    import asyncpg

    from permcore.cache import PermissionCache
    from permstore.db import Database

logger = logging.getLogger(__name__)

CHANNEL = "permission_changes"


class ChangeStream:
    def __init__(
        self,
        db: Database,
        cache: PermissionCache,
        *,
        name: str,
        poll_interval: float = 1.0,
        retention_s: float = 3600.0,
    ) -> None:
        self.db = db
        self.cache = cache
        self.name = name
        self.poll_interval = poll_interval
        self.retention_s = retention_s
        self.position: int | None = None  # every change below it is applied
        self._ahead: dict[int, int] = {}  # change id -> xid, applied above position
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.failing = False
        self.applied_at = time.monotonic()  # the last pass that reached Redis
        # called after every whole-cache flush (the keeper's kick)
        self.on_flush: Callable[[], None] | None = None

    async def start(self) -> None:
        """Resume where this reader stopped (or begin at the current horizon)."""
        self.position = await changes.select_position(self.db, self.name)
        # a new reader's position is the current horizon: record it, so that a
        # restart resumes there even before the first change arrives
        await changes.save_position(self.db, self.name, self.position)

    async def apply_pending(self) -> int:
        """One pass; returns the number of changes applied. Raises
        InvalidationFailed (position unchanged) when Redis cannot be reached."""
        async with self._lock:
            if self.position is None:
                await self.start()
            assert self.position is not None  # noqa: S101 - set just above
            horizon, found = await changes.select_since(self.db, self.position)
            fresh = [c for c in found if c.id not in self._ahead]
            if fresh:
                await self._apply(fresh)
            for c in fresh:
                if c.xid >= horizon:
                    self._ahead[c.id] = c.xid
            self._ahead = {i: x for i, x in self._ahead.items() if x >= horizon}
            if horizon != self.position:
                self.position = horizon
                await changes.save_position(self.db, self.name, horizon)
            self.applied_at = time.monotonic()
            return len(fresh)

    def behind_s(self) -> float | None:
        """Seconds since the last good pass, when that is more than three poll
        intervals (and 5 s) ago; None while the consumer keeps up."""
        late = time.monotonic() - self.applied_at
        return late if late > max(3 * self.poll_interval, 5.0) else None

    async def _apply(self, found: list[changes.Change]) -> None:
        if any(c.everyone for c in found):
            await self.cache.invalidate_all()
            if self.on_flush is not None:
                self.on_flush()
        else:
            user_ids = {u for c in found for u in c.user_ids}
            role_ids = {r for c in found for r in c.role_ids}
            if role_ids:
                user_ids.update(await changes.select_holders(self.db, sorted(role_ids)))
            if user_ids:
                await self.cache.invalidate_users(sorted(user_ids))
        STREAM_APPLIED.inc(len(found))
        STREAM_LAG_SECONDS.observe(max(c.age for c in found))

    def kick(self) -> None:
        self._wake.set()

    async def _listen(self, con: asyncpg.Connection) -> None:
        await con.add_listener(CHANNEL, lambda *_: self._wake.set())

    async def run(self, listen: asyncpg.Connection | None = None) -> None:
        """Forever: a pass at every notification, and at least every poll interval."""
        if listen is not None:
            await self._listen(listen)
        trimmed = 0.0
        while True:
            self._wake.clear()
            try:
                await self.apply_pending()
                if self.failing:
                    self.failing = False
                    self.cache.trusted = True
                    logger.info("permission change stream caught up")
                if time.monotonic() - trimmed > self.retention_s / 10:
                    await changes.trim(self.db, self.retention_s)
                    trimmed = time.monotonic()
            except InvalidationFailed:
                if not self.failing:
                    logger.warning("permission changes could not reach redis; retrying")
                self.failing = True
                self.cache.trusted = False
            except Exception:  # PostgreSQL down or the like: the next pass retries
                logger.warning("permission change stream pass failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()
            task = asyncio.current_task()  # see permcore/keeper.py (Python 3.11)
            if task is not None and task.cancelling():
                raise asyncio.CancelledError


__all__ = ["CHANNEL", "ChangeStream"]
