"""One job: the Redis client as the permission core uses it.

- The process's pool (`create_redis`), with round trips counted
  (`CountingConnection`).
- Every call bounded by a time budget and guarded by a circuit breaker
  (`GuardedRedis.call`, `CircuitBreaker`): a failure is a miss (None), never an
  error, never a grant. A full pool (`pool_exhausted`) is a miss too, but no
  failure of Redis.
- Reads of one event-loop turn coalesced into one MGET (`GuardedRedis.mget`,
  `Coalesced`).

What the calls mean (keys, values, fills, invalidation) is permcore/cache.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError
from redis.maint_notifications import MaintNotificationsConfig

from permbase.metrics import (
    BREAKER_OPEN,
    POOL_EXHAUSTED,
    REDIS_ERRORS,
    REDIS_ROUND_TRIPS,
)

if TYPE_CHECKING:
    from permbase.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

# -- the pool --------------------------------------------------------------------


def pool_exhausted(exc: BaseException) -> bool:
    """redis-py's answer when its pool has no free connection: a ConnectionError
    (MaxConnectionsError in recent versions) raised before anything is sent."""
    return isinstance(exc, RedisConnectionError) and str(exc) == "Too many connections"


def as_text(value: bytes | str | None) -> str:
    """A reply's text (the pool does not decode; None, a missing key: "")."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class CountingConnection(aioredis.Connection):
    """Counts packets sent to Redis: one per command, one per pipeline."""

    round_trips = 0

    async def send_packed_command(
        self, command: Any, check_health: bool = True
    ) -> None:
        CountingConnection.round_trips += 1
        REDIS_ROUND_TRIPS.inc()
        await super().send_packed_command(command, check_health)


def create_redis(settings: Settings) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(
        settings.redis_url,
        connection_class=CountingConnection,
        max_connections=settings.redis_max_connections,
        # no socket timeout of the client's own: with one, redis-py wraps every
        # send in asyncio.wait_for (a task and a timer per command) and every read
        # in a timeout. Every call of ours is bounded as a whole instead
        # (GuardedRedis.call's budget, readyz's ping); when a bound expires
        # mid-call, redis-py drops that connection.
        socket_timeout=None,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        # no CLIENT SETINFO round trips on every new connection
        driver_info=None,
        # no maintenance notifications (a managed-cluster feature): with them on,
        # the pool skips its check that a connection handed out has no unread
        # data left on it, a second guard against reading another call's reply
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return aioredis.Redis(connection_pool=pool)


# -- the breaker -----------------------------------------------------------------


class CircuitBreaker:
    """Skips Redis after repeated failures.

    Closed -> (threshold consecutive failures) -> open for `cooldown` seconds ->
    half-open: one call goes through; success closes, failure re-opens."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self._probing or time.monotonic() - self.opened_at < self.cooldown:
            return False
        self._probing = True
        return True

    def success(self) -> None:
        if not self.failures and self.opened_at is None:
            return  # closed, and nothing to reset (every healthy call)
        if self.opened_at is not None:
            logger.warning("redis circuit breaker closed")
        self.failures = 0
        self.opened_at = None
        self._probing = False
        BREAKER_OPEN.set(0)

    def failure(self) -> None:
        self.failures += 1
        self._probing = False
        if self.failures >= self.threshold:
            if self.opened_at is None:
                logger.warning(
                    "redis circuit breaker opened after %d failures", self.failures
                )
            self.opened_at = time.monotonic()
            BREAKER_OPEN.set(1)


# -- one MGET per loop turn ------------------------------------------------------

Fetch = Callable[[list[str]], Awaitable[list[Any] | None]]


class Coalesced:
    """`get(keys)`: the values of `keys` in order, or None when the fetch failed;
    fetched with the other `get`s of the same loop turn, up to `max_keys`
    distinct keys per fetch (a caller asking for more has a fetch of its own).

    Under load, a Python process spends more CPU in the Redis client per command
    (pool, retry, timeouts, packing, parsing: bench/README.md, "Profiles") than
    Redis spends answering it. Every request reads its entries with one MGET once
    it has started; requests that reach that read in the same turn of the event
    loop (their bytes arrived together) can share one MGET: each still reads after
    it started, so it sees every invalidation that completed before, exactly as
    with an MGET of its own (README, "How the cache stays correct"). The keys are
    deduplicated (the caller of `user(id)` is often the same user).

    Knows nothing of permissions: a function that fetches keys (None: unavailable)
    goes in, a per-caller answer comes out."""

    __slots__ = ("_fetch", "_keys", "_loop", "_tasks", "_waiting", "max_keys")

    def __init__(self, fetch: Fetch, max_keys: int = 4096) -> None:
        self._fetch = fetch
        self.max_keys = max_keys
        self._keys: dict[str, int] = {}  # the batch being gathered: key -> position
        self._waiting: list[tuple[Sequence[str], asyncio.Future[list[Any] | None]]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # fetches in flight (kept alive)
        self._loop: asyncio.AbstractEventLoop | None = None  # the gathering batch's

    def get(self, keys: Sequence[str]) -> Awaitable[list[Any] | None]:
        loop = asyncio.get_running_loop()
        if self._waiting and self._loop is not loop:
            # gathered on a loop that stopped before sending it: nobody waits now
            self._keys, self._waiting = {}, []
        if self._waiting and len(self._keys) + len(keys) > self.max_keys:
            fresh = sum(1 for k in dict.fromkeys(keys) if k not in self._keys)
            if len(self._keys) + fresh > self.max_keys:
                self._send()  # this batch is full: it goes now
        if not self._waiting:
            self._loop = loop
            loop.call_soon(self._send)
        positions = self._keys
        for key in keys:
            positions.setdefault(key, len(positions))
        future: asyncio.Future[list[Any] | None] = loop.create_future()
        self._waiting.append((keys, future))
        return future

    def _send(self) -> None:
        if not self._waiting:
            return  # already sent: it was full
        batch = (list(self._keys), self._keys, self._waiting)
        self._keys, self._waiting = {}, []
        task = asyncio.ensure_future(self._run(*batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(
        self,
        keys: list[str],
        positions: dict[str, int],
        waiting: list[tuple[Sequence[str], asyncio.Future[list[Any] | None]]],
    ) -> None:
        values: list[Any] | None = None
        try:
            values = await self._fetch(keys)
            if values is not None and (
                type(values) is not list or len(values) != len(keys)
            ):  # not the reply to this fetch: nobody gets it
                logger.error(
                    "coalesced fetch of %d keys answered %s; treated as unavailable",
                    len(keys),
                    type(values).__name__,
                )
                values = None
        except Exception:  # the fetch reports Redis failures as None; this is a bug
            logger.exception("coalesced fetch of %d keys failed", len(keys))
        finally:  # a waiter never hangs: failed, or cancelled at shutdown, each gets None
            for wanted, future in waiting:
                if not future.done():
                    future.set_result(
                        None
                        if values is None
                        else [values[positions[k]] for k in wanted]
                    )


# -- the client as the core uses it ----------------------------------------------


class GuardedRedis:
    """The process's client with its breaker and its time budget. `call(op, fn)`
    runs one Redis call, None on failure (a miss); `mget(keys)` reads with the
    other reads of the same loop turn, None when Redis is unavailable."""

    __slots__ = ("breaker", "budget", "client", "mget")

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_cooldown_s
        )
        # each call's bound (the client has none of its own: create_redis):
        # a new connection if one is needed, then the answer within the socket timeout
        self.budget = settings.redis_connect_timeout_s + settings.redis_socket_timeout_s
        # reads of the same loop turn share one MGET (Coalesced). `mget` is that
        # Coalesced's own `get`, bound once: no layer of its own on the read path
        self.mget = Coalesced(
            lambda keys: self.call("mget", lambda: self.client.mget(keys))
        ).get

    async def call(
        self,
        op: str,
        fn: Callable[[], Awaitable[T]],
        *,
        force: bool = False,
        budget: float | None = None,
    ) -> T | None:
        """Run one Redis call under the breaker and a time budget; None on failure."""
        if not force and not self.breaker.allow():
            return None
        try:
            async with asyncio.timeout(budget or self.budget):
                result = await fn()
        except _REDIS_FAILURES as exc:
            if pool_exhausted(exc):
                # every connection of this process's pool is in use: Redis itself
                # is fine, so this is a miss but no failure of Redis (the breaker
                # would turn the cache off for everyone)
                POOL_EXHAUSTED.labels("redis").inc()
                logger.warning("redis pool exhausted, treating %s as a miss", op)
                return None
            REDIS_ERRORS.labels(op).inc()
            self.breaker.failure()
            logger.warning(
                "redis %s failed, treating as a miss: %s", op, type(exc).__name__
            )
            return None
        self.breaker.success()
        return result


__all__ = [
    "CircuitBreaker",
    "Coalesced",
    "CountingConnection",
    "GuardedRedis",
    "as_text",
    "create_redis",
]
