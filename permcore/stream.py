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

It is also how a write keeps its promise ("after it returns, nobody reads the
old permissions"): `settle(xid)` returns once a pass whose snapshot sees the
writing transaction as ended has reached Redis, and a request carrying that xid
as its consistency token reads the cache only once this instance has got that
far (`reached`, else one pass, else PostgreSQL: `Consistent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from permbase.errors import InvalidInput
from permbase.metrics import (
    INVALIDATION_FAILURES,
    STREAM_APPLIED,
    STREAM_LAG_SECONDS,
    STREAM_POSITION,
    STREAM_SINCE_PASS_SECONDS,
)
from permcore.cache import InvalidationFailed
from permstore import changes

if TYPE_CHECKING:
    import asyncpg

    from permcore.cache import CacheRead, PermissionCache
    from permcore.singleflight import SingleFlight
    from permstore.db import Database
    from permstore.models import UserAccess

logger = logging.getLogger(__name__)

CHANNEL = "permission_changes"
# more users than this in one pass: replace the epoch (one SET) instead of
# unlinking each entry; the keeper refills
FLUSH_ABOVE = 50_000
# a LISTEN connection that could not be opened is tried again after this long
LISTEN_RETRY_S = 30.0


class ChangeStream:
    def __init__(
        self,
        db: Database,
        cache: PermissionCache,
        *,
        name: str,
        poll_interval: float = 1.0,
        retention_s: float = 3600.0,
        wait_s: float = 2.0,
    ) -> None:
        self.db = db
        self.cache = cache
        self.name = name
        self.poll_interval = poll_interval
        self.retention_s = retention_s
        self.wait_s = wait_s  # how long a write or a token's reader waits for a pass
        self.position: int | None = None  # every change below it is applied
        self._ahead: dict[int, int] = {}  # change id -> xid, applied above position
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        # the cache (cache.trusted, False until then) is trusted once a pass begun
        # after the last failure (and after start: what changed while no instance
        # ran) has reached Redis
        self._distrusted_at = 0  # passes begun when the last failure was seen
        self.applied_at = time.monotonic()  # the last pass that reached Redis
        # what the last pass that reached Redis saw as ended: every change those
        # transactions made is applied (None: no pass yet)
        self.snapshot: changes.Snapshot | None = None
        self._begun = 0  # passes begun
        self._good = 0  # the number of the last pass that reached Redis
        # called after every whole-cache flush (the keeper's kick)
        self.on_flush: Callable[[], None] | None = None
        # called with the users of every invalidation and the fill tokens it set
        # (the keeper's refill_soon)
        self.on_invalidated: Callable[[dict[int, str]], None] | None = None
        self._listen_con: asyncpg.Connection | None = None
        self._listen_retry_at = 0.0  # no new LISTEN attempt before (monotonic)
        self._passing: asyncio.Future[int] | None = None  # catch_up's pass

    async def start(self) -> None:
        """Resume where this reader stopped; a new reader begins where the
        furthest-behind live reader stands, or the furthest-behind of all when
        none is live (or at the current horizon)."""
        # live: seen within two heartbeats (the run loop's, every retention/10)
        live_s = self.retention_s / 5
        self.position = await changes.select_position(self.db, self.name, live_s)
        # record a new reader's position, so that a restart resumes there even
        # before the first change arrives
        await changes.save_position(self.db, self.name, self.position)

    async def apply_pending(self) -> int:
        """One pass; returns the number of changes applied. Raises
        InvalidationFailed (position unchanged) when Redis cannot be reached."""
        async with self._lock:
            return await self._pass()

    async def _pass(self) -> int:
        self._begun += 1
        number = self._begun
        if self.position is None:
            await self.start()
        assert self.position is not None  # noqa: S101 - set just above
        pending = await changes.select_pending(self.db, self.position, self._ahead)
        horizon, snapshot, fresh = pending.horizon, pending.snapshot, pending.changes
        if fresh:
            await self._apply(fresh, pending.holders)
        for c in fresh:
            if c.xid >= horizon:
                self._ahead[c.id] = c.xid
        self._ahead = {i: x for i, x in self._ahead.items() if x >= horizon}
        self.snapshot, self._good = snapshot, number
        self.applied_at = time.monotonic()
        STREAM_SINCE_PASS_SECONDS.set(0)
        if not self.cache.trusted and number > self._distrusted_at:
            self.cache.trusted = True
            logger.info("permission change stream caught up: cache trusted")
        STREAM_POSITION.set(horizon)
        if horizon != self.position:
            self.position = horizon
            await changes.save_position(self.db, self.name, horizon)
        return len(fresh)

    def reached(self, xid: int) -> bool:
        """Has this instance applied every change of transaction `xid` (and of
        every transaction that committed before it)?"""
        return self.snapshot is not None and self.snapshot.ended(xid)

    async def catch_up(self) -> None:
        """Return once a pass that began after this call has reached Redis: every
        change committed before the call is then applied. Concurrent callers share
        passes, and a caller that stops waiting (its timeout) cancels nobody's
        pass: each runs in a task of its own. Raises as a pass does
        (InvalidationFailed, a database error; PassCancelled when the pass was
        cancelled under it, at shutdown)."""
        asked = self._begun  # passes begun before this call
        while self._good <= asked:
            task = self._passing
            if task is None or task.done():
                task = self._passing = asyncio.ensure_future(self.apply_pending())
                task.add_done_callback(_retrieved)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if task.cancelled() and not (current and current.cancelling()):
                    raise PassCancelled from None  # not this caller's cancel
                raise

    async def settle(self, xid: int) -> bool:
        """After transaction `xid` committed: return once this instance applied it
        (True). When that cannot be confirmed within `wait_s` (Redis or
        PostgreSQL unreachable), this instance stops trusting the cache until a
        pass succeeds, so that nobody here reads an entry older than the write,
        and the answer is False. The change log keeps the change: the next good
        pass, here or on another instance, applies it."""
        if self.reached(xid):
            return True
        try:
            async with asyncio.timeout(self.wait_s):
                await self.catch_up()
            return True
        except Exception:  # noqa: BLE001 - any failure ends the same way
            logger.warning("write %d not confirmed in redis; cache distrusted", xid)
            self.distrust()
            return False

    def distrust(self, why: str = "permission changes could not reach redis") -> None:
        """Stop reading the cache until a pass begun after this call reaches Redis
        (the run loop retries at least every second meanwhile)."""
        if self.cache.trusted:
            logger.warning("%s; cache distrusted until a pass succeeds", why)
        INVALIDATION_FAILURES.inc()
        self._distrusted_at = self._begun
        self.cache.trusted = False
        self._wake.set()

    async def reach(self, xid: int) -> bool:
        """For a reader holding `xid` as its consistency token: True once this
        instance has applied it (one pass at most, within `wait_s`); False: read
        PostgreSQL."""
        if self.reached(xid):
            return True
        try:
            async with asyncio.timeout(self.wait_s):
                await self.catch_up()
        except Exception:  # noqa: BLE001 - the reader falls back to PostgreSQL
            return False
        if self.snapshot is not None and xid >= self.snapshot.xmax:
            # no transaction has that id yet: not a token a write returned
            raise InvalidInput(REFUSED_HEADER, field="X-Consistency-Token")
        return self.reached(xid)

    def behind_s(self) -> float | None:
        """Seconds since the last good pass, when that is more than three poll
        intervals (and 5 s) ago; None while the consumer keeps up."""
        late = time.monotonic() - self.applied_at
        return late if late > max(3 * self.poll_interval, 5.0) else None

    async def _apply(self, found: list[changes.Change], holders: list[int]) -> None:
        if any(c.everyone for c in found):
            await self.cache.invalidate_all()
            if self.on_flush is not None:
                self.on_flush()
        else:
            user_ids = {u for c in found for u in c.user_ids}
            user_ids.update(holders)  # of the roles the changes name, same snapshot
            if len(user_ids) > FLUSH_ABOVE:  # a bulk change: cheaper as one flush
                await self.cache.invalidate_all()
                if self.on_flush is not None:
                    self.on_flush()
            elif user_ids:
                tokens = await self.cache.invalidate_users(user_ids)
                if self.on_invalidated is not None:
                    self.on_invalidated(tokens)
        STREAM_APPLIED.inc(len(found))
        STREAM_LAG_SECONDS.observe(max(c.age for c in found))

    async def _postgres_answers(self) -> bool:
        """Is PostgreSQL up? (When it is down nobody can commit a change, and the
        cache keeps answering what it holds.)"""
        try:
            await self.db.ping()
        except Exception:  # noqa: BLE001 - down, whatever the error
            return False
        return True

    def kick(self) -> None:
        self._wake.set()

    async def _listening(
        self, connect: Callable[[], Awaitable[asyncpg.Connection | None]]
    ) -> None:
        """Keep a LISTEN connection, opened again when it was lost (a PostgreSQL
        restart, a terminated backend): its loss wakes the loop, and the pass
        right after a new one catches what was notified meanwhile. A failed
        attempt is retried after LISTEN_RETRY_S, not at every pass (polling
        carries on meanwhile)."""
        con = self._listen_con
        if con is not None and not con.is_closed():
            return
        self._listen_con = None
        if time.monotonic() < self._listen_retry_at:
            return
        con = await connect()
        if con is not None:
            try:
                con.add_termination_listener(lambda _: self._wake.set())
                await con.add_listener(CHANNEL, lambda *_: self._wake.set())
            except Exception:
                logger.warning("LISTEN failed; polling only for now", exc_info=True)
                await con.close(timeout=1)
                con = None
        if con is None:
            self._listen_retry_at = time.monotonic() + LISTEN_RETRY_S
        self._listen_con = con

    async def run(
        self, listen: Callable[[], Awaitable[asyncpg.Connection | None]] | None = None
    ) -> None:
        """Forever: a pass at every notification, and at least every poll
        interval. `listen` opens a connection for LISTEN (None: polling only)."""
        try:
            await self._run(listen)
        finally:
            if self._passing is not None:
                self._passing.cancel()
            con, self._listen_con = self._listen_con, None
            if con is not None and not con.is_closed():
                await con.close()

    async def _run(
        self, listen: Callable[[], Awaitable[asyncpg.Connection | None]] | None
    ) -> None:
        trimmed = 0.0
        while True:
            self._wake.clear()
            try:
                if listen is not None:
                    await self._listening(listen)
                await self.apply_pending()
                if time.monotonic() - trimmed > self.retention_s / 10:
                    # alive, even when nothing moved the position: a reader not
                    # seen within the retention is forgotten by the trim
                    assert self.position is not None  # noqa: S101 - a pass set it
                    await changes.save_position(self.db, self.name, self.position)
                    await changes.trim(self.db, self.retention_s)
                    trimmed = time.monotonic()
            except InvalidationFailed:
                self.distrust()
                self._wake.clear()
            except Exception:  # PostgreSQL down or the like: the next pass retries
                logger.warning("permission change stream pass failed", exc_info=True)
                if self.behind_s() is not None and await self._postgres_answers():
                    # PostgreSQL answers, yet the log cannot be read: writes go
                    # on unseen, so nobody here reads the cache until it can
                    self.distrust("the permission change log cannot be read")
                    self._wake.clear()
            STREAM_SINCE_PASS_SECONDS.set(time.monotonic() - self.applied_at)
            wait = (
                self.poll_interval
                if self.cache.trusted
                else min(self.poll_interval, 1.0)
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            task = asyncio.current_task()  # see permcore/keeper.py (Python 3.11)
            if task is not None and task.cancelling():
                raise asyncio.CancelledError


class PassCancelled(RuntimeError):
    """The pass a caller waited for was cancelled (the stream is stopping)."""


def _retrieved(task: asyncio.Future[int]) -> None:
    """A pass nobody waits for any more: its error was seen by its waiters' own
    handling, or is retried by the next pass; not an unretrieved exception."""
    if not task.cancelled():
        task.exception()


TOKEN_DIGITS = 19  # an xid8 below 2**63, in decimal
REFUSED_HEADER = (
    "X-Consistency-Token must be a token a mutation returned "
    "(extensions.consistencyToken)."
)


def parse_token(text: str) -> int:
    """A consistency token as a client sends it back (`X-Consistency-Token`): the
    decimal id of a write's transaction. Raises InvalidInput for anything else."""
    if not (0 < len(text) <= TOKEN_DIGITS and text.isascii() and text.isdigit()):
        raise InvalidInput(REFUSED_HEADER, field="X-Consistency-Token")
    return int(text)


class Consistent:
    """The cache as a request carrying a consistency token sees it: read only once
    this instance has applied the token's transaction (`ChangeStream.reach`, asked
    once per request); otherwise every read is a miss and nothing is written back,
    so the request answers from PostgreSQL. It never answers from an entry older
    than the token."""

    def __init__(self, cache: PermissionCache, stream: ChangeStream, xid: int) -> None:
        self.cache = cache
        self.stream = stream
        self.xid = xid
        self._reached: asyncio.Task[bool] | None = None

    @property
    def inflight(self) -> SingleFlight:
        return self.cache.inflight

    @property
    def before_fill(self) -> Callable[[Sequence[int]], Awaitable[None]] | None:
        return self.cache.before_fill

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None:
        if self._reached is None:
            self._reached = asyncio.ensure_future(self.stream.reach(self.xid))
        if not await asyncio.shield(self._reached):
            return None
        return await self.cache.read(user_ids)

    async def fill(
        self, read: CacheRead, loaded: dict[int, UserAccess | None]
    ) -> int | None:
        return await self.cache.fill(read, loaded)


__all__ = [
    "CHANNEL",
    "LISTEN_RETRY_S",
    "ChangeStream",
    "Consistent",
    "PassCancelled",
    "parse_token",
]
