"""The Redis permission cache: reads, race-free fills, invalidation, circuit breaker;
the fill sequence the loader and the keeper share (`load_and_fill`), composed of
the cache and an in-process single flight (`SingleFlight`).

Keys (prefix `P` = settings.permissions_cache_prefix, default `permissions:user:`):

    P{id}          JSON {"v": 2, "roles": [...], "role_ids": [...], "permissions": [...],
                   "active": bool, "nbf": float|null, "rs": [...], "e": epoch}
                   (nbf, rs: what ends the user's sessions, permstore/models.py)  TTL 300 s ± jitter
    P{id}:gen      fill token of the user; replaced by every invalidation  TTL 1 day
    Pepoch         cache epoch; replaced by a whole-cache flush           no TTL

Why the two extra keys (see README, "How the cache stays correct"): a reader reads
`P{id}:gen` and `Pepoch` in the same MGET as the value. On a miss it loads from
PostgreSQL and writes back through a Lua script that stores the value only if both
tokens are still what it read. Every invalidation replaces the user's token in the
same MULTI as it unlinks the value, so a value read from PostgreSQL before a
mutation committed can never land after that mutation's invalidation.
A flush replaces the epoch: values carrying an older epoch are misses at once,
and the SCAN + UNLINK that follows only reclaims memory.

Redis is an optimisation only: every error or timeout counts as a miss (reads) or
a skipped fill (writes); a circuit breaker skips Redis after repeated failures.
Invalidations that fail raise `InvalidationFailed`, so the caller can keep them in
the outbox for replay (permstore/outbox.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError, RedisError

from permbase.metrics import (
    BREAKER_OPEN,
    CACHE_CORRUPT,
    CACHE_INVALIDATIONS,
    CACHE_STALE_WRITES_REFUSED,
    POOL_EXHAUSTED,
    REDIS_ERRORS,
    REDIS_ROUND_TRIPS,
)
from permstore.models import UserAccess

if TYPE_CHECKING:
    from permbase.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")

GEN_TTL_S = 24 * 3600
UNLINK_CHUNK = 1000
DECODED_MAX = (
    100_000  # decoded values remembered per process (~1 KB each); cleared when full
)
SCAN_COUNT = 1000
_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)

# KEYS: epoch, then (value, gen) per user. ARGV: expected epoch, then
# (expected gen, value, ttl) per user. Returns how many fills were refused.
_FILL_SCRIPT = """
local epoch = redis.call('GET', KEYS[1]) or ''
local refused = 0
for j = 0, (#KEYS - 1) / 2 - 1 do
  local gen = redis.call('GET', KEYS[3 + 2 * j]) or ''
  if epoch == ARGV[1] and gen == ARGV[2 + 3 * j] then
    redis.call('SET', KEYS[2 + 2 * j], ARGV[3 + 3 * j], 'EX', ARGV[4 + 3 * j])
  else
    refused = refused + 1
  end
end
return refused
"""


def _pool_exhausted(exc: BaseException) -> bool:
    """redis-py's answer when its pool has no free connection: a ConnectionError
    (MaxConnectionsError in recent versions) raised before anything is sent."""
    return isinstance(exc, RedisConnectionError) and str(exc) == "Too many connections"


class InvalidationFailed(Exception):
    """Redis did not confirm an invalidation; the outbox keeps it for replay."""


class CountingConnection(aioredis.Connection):
    """Counts packets sent to Redis: one per command, one per pipeline."""

    round_trips = 0

    async def send_packed_command(
        self, command: Any, check_health: bool = True
    ) -> None:
        CountingConnection.round_trips += 1
        REDIS_ROUND_TRIPS.inc()
        await super().send_packed_command(command, check_health)


class CircuitBreaker:
    """Closed -> (threshold consecutive failures) -> open for `cooldown` seconds ->
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


def create_redis(settings: Settings) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(
        settings.redis_url,
        connection_class=CountingConnection,
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_socket_timeout_s,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        # no CLIENT SETINFO round trips on every new connection
        driver_info=None,
    )
    return aioredis.Redis(connection_pool=pool)


@dataclass(frozen=True, slots=True)
class CacheRead:
    """One MGET's worth: usable entries, and the tokens a fill must present."""

    hits: dict[int, UserAccess | None]
    epoch: str
    gens: dict[int, str]


# The value format. 2 added "nbf" and "rs" (what ends a session); a value of an
# older format is a miss, never a hit without them (see validate_access).
FORMAT = 2
# The epoch reported for a value of an older format: no cache epoch ever equals it
# (epochs are hex), so the reader treats the value as a miss and overwrites it.
_OLD_FORMAT_EPOCH = "\x00old-format"


def encode_access(access: UserAccess | None, epoch: str) -> bytes:
    if access is None:  # unknown user: cached as such, so it is not re-queried
        return orjson.dumps({"missing": True, "e": epoch})
    return orjson.dumps(
        {
            "v": FORMAT,
            "roles": list(access.roles),
            "role_ids": list(access.role_ids),
            "permissions": list(access.codes),
            "active": access.is_active,
            "nbf": access.not_before,
            "rs": list(access.revoked_sessions),
            "e": epoch,
        }
    )


_STR = {str}
_INT = {int}


class _Corrupt(ValueError):
    pass


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def decode_access(user_id: int, raw: bytes | str) -> tuple[UserAccess | None, str]:
    """Parse and validate one cached value; raise _Corrupt for anything odd."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _Corrupt(str(exc)) from None
    return validate_access(user_id, data)


def _parse_many(values: list[bytes | str]) -> list[Any] | None:
    """Every value in one orjson call (one call instead of one per user). None
    when that cannot be trusted: a value that is not one JSON document breaks the
    array or changes its length, and then each value is parsed on its own."""
    try:
        parsed = orjson.loads(
            b"["
            + b",".join(v if isinstance(v, bytes) else v.encode() for v in values)
            + b"]"
        )
    except orjson.JSONDecodeError:
        return None
    return parsed if type(parsed) is list and len(parsed) == len(values) else None


def validate_access(user_id: int, data: Any) -> tuple[UserAccess | None, str]:
    """Validate one parsed cached value; raise _Corrupt for anything odd."""
    if not isinstance(data, dict) or not isinstance(data.get("e"), str):
        raise _Corrupt("not an object with an epoch")
    if data.get("missing") is True:
        return None, data["e"]
    roles, role_ids, perms, active = (
        data.get("roles"),
        data.get("role_ids"),
        data.get("permissions"),
        data.get("active"),
    )
    if not (
        type(roles) is list
        and type(role_ids) is list
        and type(perms) is list
        and type(active) is bool
        and len(roles) == len(role_ids)
        and set(map(type, roles)) <= _STR
        and set(map(type, role_ids)) <= _INT
        and set(map(type, perms)) <= _STR
    ):
        raise _Corrupt("fields missing or of the wrong type")
    if data.get("v") != FORMAT:
        # written by an older version, without what ends a session: a miss
        # (overwritten by the next fill), never a hit, and not corrupt
        return None, _OLD_FORMAT_EPOCH
    not_before, revoked = data.get("nbf", False), data.get("rs")
    if not (
        (not_before is None or type(not_before) is float)
        and type(revoked) is list
        and set(map(type, revoked)) <= _STR
    ):
        raise _Corrupt("session fields missing or of the wrong type")
    # encode_access writes them sorted and unique; order is only presentation
    # (checks use the set), so it is not re-verified on this hot path
    access = UserAccess(
        user_id,
        active,
        tuple(role_ids),
        tuple(roles),
        tuple(perms),
        not_before,
        tuple(revoked),
    )
    return access, data["e"]


FlightKey = tuple[int, str, str]  # (user id, fill token, epoch)
Pending = asyncio.Future[UserAccess | None]  # one user's load in flight


class SingleFlight:
    """The permission loads in flight in this process, by (user id, fill token,
    epoch): a miss that another batch is already loading under the same token
    and epoch is awaited, not queried again (a cold-cache stampede loads each
    user once). The same token means no invalidation came between the two
    reads, so sharing cannot serve rows older than the waiter may see.

    Knows nothing of Redis or PostgreSQL; `load_and_fill` composes it with the
    cache and the store."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: dict[FlightKey, Pending] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def join(
        self, read: CacheRead, user_ids: Sequence[int]
    ) -> tuple[dict[int, Pending], dict[FlightKey, Pending]]:
        """Split `user_ids` (distinct): the users another batch is loading (their
        futures, to wait for) and the users the caller now loads (its futures: it
        settles them with `set_result` or `abandon`, then `release`s them)."""
        waiting: dict[int, Pending] = {}
        owned: dict[FlightKey, Pending] = {}
        futures, gens, epoch = self._futures, read.gens, read.epoch
        loop = asyncio.get_running_loop()
        for u in user_ids:
            key = (u, gens.get(u, ""), epoch)
            if (future := futures.get(key)) is not None:
                waiting[u] = future
            else:
                owned[key] = futures[key] = loop.create_future()
        return waiting, owned

    def release(self, owned: dict[FlightKey, Pending]) -> None:
        for key in owned:
            self._futures.pop(key, None)

    @staticmethod
    def abandon(owned: dict[FlightKey, Pending], exc: BaseException) -> None:
        """The owner's load failed: its waiters re-raise `exc`; if it was
        cancelled (abandoned, not failed), they load those users themselves."""
        for future in owned.values():
            if future.done():
                continue
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters, if any, re-raise it

    @staticmethod
    async def wait(
        waiting: dict[int, Pending],
    ) -> tuple[dict[int, UserAccess | None], list[int]]:
        """The entries other batches loaded, and the orphans: the users whose
        batch was cancelled before it loaded them (the caller loads those itself).
        Waited for without `await future`: cancelling the waiter must not cancel a
        future another request's batch owns (and its other waiters with it). An
        owner's failure is re-raised."""
        await asyncio.wait(waiting.values())
        orphans = [u for u, future in waiting.items() if future.cancelled()]
        done = {u: f.result() for u, f in waiting.items() if not f.cancelled()}
        return done, orphans


class PermissionCache:
    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.prefix = settings.permissions_cache_prefix
        self.ttl = settings.permissions_cache_ttl_s
        self.jitter = settings.permissions_cache_ttl_jitter_s
        self.epoch_key = f"{self.prefix}epoch"
        self.breaker = CircuitBreaker(
            settings.breaker_failure_threshold, settings.breaker_cooldown_s
        )
        # the client's own timeouts bound each socket operation; this bounds the call
        self.budget = (
            settings.redis_connect_timeout_s + 2 * settings.redis_socket_timeout_s
        )
        self._fill = client.register_script(_FILL_SCRIPT)
        # False while an invalidation may be missing from Redis (see permcore/invalidation.py):
        # reads and fills skip Redis until the outbox has been replayed
        self.trusted = False
        self.enabled = settings.permissions_cache_enabled
        self.instance = secrets.token_hex(4)
        # Values decoded before, by user: (the exact bytes, what they decode to,
        # their epoch). Every read still fetches the value from Redis, so an
        # invalidation is seen at once; only the parsing and validation of bytes
        # already seen is skipped (a warm 100-user page decodes 100 JSON values).
        # UserAccess objects are never modified, so sharing them is safe.
        self._decoded: dict[int, tuple[bytes | str, UserAccess | None, str]] = {}
        # loads in flight in this process (a separate piece; it lives here because,
        # like the cache, there is one per process): see load_and_fill
        self.inflight = SingleFlight()
        # test seam: awaited between a batch's SQL read and its write-back
        self.before_fill: Callable[[Sequence[int]], Awaitable[None]] | None = None

    async def prepare(self) -> None:
        """Load the fill script so the first write-back is one round trip."""
        await self._call(
            "script_load", lambda: self.client.script_load(_FILL_SCRIPT), force=True
        )
        await self.ensure_epoch()

    async def ensure_epoch(self) -> None:
        """Give the cache a random epoch if it has none (at start). Fill tokens and
        single-flight keys include the epoch, so a random one keeps tokens read
        before a Redis restart from equalling tokens read after it, as long as an
        instance restarts with Redis (a restarted Redis keeps no epoch until then:
        see the note in SECURITY.md)."""
        await self._call(
            "epoch",
            lambda: self.client.set(self.epoch_key, secrets.token_hex(8), nx=True),
            force=True,
        )

    def key(self, user_id: int) -> str:
        return f"{self.prefix}{user_id}"

    def gen_key(self, user_id: int) -> str:
        return f"{self.prefix}{user_id}:gen"

    async def _call(
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
            if _pool_exhausted(exc):
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

    # -- reads ---------------------------------------------------------------

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None:
        """One MGET of values, fill tokens and the epoch. None: Redis unavailable."""
        if not (self.trusted and self.enabled):
            return None
        keys = [self.epoch_key]
        keys += [self.key(u) for u in user_ids]
        keys += [self.gen_key(u) for u in user_ids]
        raw = await self._call("mget", lambda: self.client.mget(keys))
        if raw is None:
            return None
        n = len(user_ids)
        epoch = _text(raw[0])
        values, gen_values = raw[1 : n + 1], raw[n + 1 :]
        hits: dict[int, UserAccess | None] = {}
        gens = {u: _text(g) for u, g in zip(user_ids, gen_values, strict=True)}
        decoded = self._decoded
        present: list[tuple[int, bytes | str]] = []
        for user_id, value in zip(user_ids, values, strict=True):
            if value is None:
                continue
            known = decoded.get(user_id)
            if known is not None and known[0] == value:  # the very bytes decoded before
                if known[2] == epoch:
                    hits[user_id] = known[1]
            else:
                present.append((user_id, value))
        parsed = _parse_many([v for _, v in present]) if present else []
        if len(decoded) + len(present) > DECODED_MAX:
            decoded.clear()
        for i, (user_id, value) in enumerate(present):
            try:
                if parsed is None:
                    access, value_epoch = decode_access(user_id, value)
                else:
                    access, value_epoch = validate_access(user_id, parsed[i])
            except _Corrupt as exc:
                CACHE_CORRUPT.inc()
                logger.warning("corrupt cache entry for user %d: %s", user_id, exc)
                continue
            decoded[user_id] = (value, access, value_epoch)
            if value_epoch == epoch:
                hits[user_id] = access
        return CacheRead(hits, epoch, gens)

    async def read_tokens(self, user_ids: Sequence[int]) -> CacheRead | None:
        """Only the fill tokens and the epoch, for a refresh that reloads every
        entry anyway. None: Redis unavailable (then there is nothing to refresh)."""
        if not (self.trusted and self.enabled):
            return None
        keys = [self.epoch_key, *(self.gen_key(u) for u in user_ids)]
        raw = await self._call("mget", lambda: self.client.mget(keys))
        if raw is None:
            return None
        gens = {u: _text(g) for u, g in zip(user_ids, raw[1:], strict=True)}
        return CacheRead({}, _text(raw[0]), gens)

    async def take_lease(
        self, name: str, seconds: float, *, force: bool = False
    ) -> bool:
        """A Redis lease shared by every instance (SET NX PX): True when this
        instance holds it now. `force` takes it regardless."""
        if not (self.trusted and self.enabled):
            return False
        key, ms = f"{self.prefix}lease:{name}", max(1, int(seconds * 1000))
        done = await self._call(
            "lease", lambda: self.client.set(key, self.instance, px=ms, nx=not force)
        )
        return bool(done)

    async def fill(
        self, read: CacheRead, loaded: dict[int, UserAccess | None]
    ) -> int | None:
        """Write back loaded entries in one round trip; return the number refused."""
        if not loaded or not (self.trusted and self.enabled):
            return 0
        if not read.epoch:
            # Redis lost its data (a restart without persistence): with no epoch,
            # a fill could not tell a read made before a second loss from one made
            # after it. Store nothing under an empty epoch; set a fresh one, and
            # the next read fills under it.
            await self.ensure_epoch()
            return 0
        keys = [self.epoch_key]
        args: list[Any] = [read.epoch]
        for user_id, access in loaded.items():
            keys += [self.key(user_id), self.gen_key(user_id)]
            ttl = self.ttl + (random.randint(0, self.jitter) if self.jitter else 0)  # noqa: S311 - jitter, not crypto
            args += [read.gens.get(user_id, ""), encode_access(access, read.epoch), ttl]
        refused = await self._call("fill", lambda: self._fill(keys=keys, args=args))
        if refused:
            CACHE_STALE_WRITES_REFUSED.inc(int(refused))
            logger.info("refused %d stale permission write-backs", refused)
        return None if refused is None else int(refused)

    # -- invalidation ----------------------------------------------------------

    async def invalidate_users(self, user_ids: Iterable[int]) -> None:
        """Drop the users' entries and replace their fill tokens: one UNLINK and the
        token SETs per chunk of 1000, in one MULTI per chunk."""
        ids = sorted(set(user_ids))
        if not ids:
            return
        for start in range(0, len(ids), UNLINK_CHUNK):
            chunk = ids[start : start + UNLINK_CHUNK]

            async def run(chunk: list[int] = chunk) -> list[Any]:
                async with self.client.pipeline(transaction=True) as pipe:
                    pipe.unlink(*[self.key(u) for u in chunk])
                    for u in chunk:
                        pipe.set(self.gen_key(u), secrets.token_hex(8), ex=GEN_TTL_S)
                    return await pipe.execute()

            if await self._call("invalidate", run, force=True) is None:
                raise InvalidationFailed(f"could not invalidate {len(ids)} users")
        CACHE_INVALIDATIONS.labels("users" if len(ids) > 1 else "user").inc()

    async def invalidate_all(self) -> None:
        """Replace the epoch (every entry becomes a miss at once), then reclaim
        memory with SCAN + UNLINK in batches; never KEYS."""
        token = secrets.token_hex(8)
        if (
            await self._call(
                "flush", lambda: self.client.set(self.epoch_key, token), force=True
            )
            is None
        ):
            raise InvalidationFailed("could not replace the cache epoch")
        CACHE_INVALIDATIONS.labels("all").inc()

        async def sweep() -> int:
            removed = 0
            batch: list[bytes] = []
            async for key in self.client.scan_iter(
                match=f"{self.prefix}*", count=SCAN_COUNT
            ):
                if key.endswith(b":gen") or key == self.epoch_key.encode():
                    continue
                batch.append(key)
                if len(batch) >= UNLINK_CHUNK:
                    removed += await self.client.unlink(*batch)
                    batch = []
            if batch:
                removed += await self.client.unlink(*batch)
            return removed

        # memory only: correctness already holds through the epoch
        await self._call("sweep", sweep, force=True, budget=60.0)


# -- the fill sequence ----------------------------------------------------------

Select = Callable[[list[int]], Awaitable[Mapping[int, UserAccess]]]
"""The store's batch query: the entries of the users that exist (permstore/permissions.py)."""

_UNGATED = nullcontext()


class Fillable(Protocol):
    """What the fill sequence uses of a cache: PermissionCache (a fake in tests/unit)."""

    before_fill: Callable[[Sequence[int]], Awaitable[None]] | None

    async def fill(
        self, read: CacheRead, loaded: dict[int, UserAccess | None]
    ) -> int | None: ...


async def load_and_fill(
    read: CacheRead | None,
    user_ids: Sequence[int],
    select: Select,
    *,
    cache: Fillable,
    flights: SingleFlight | None = None,
    gate: asyncio.Semaphore | None = None,
) -> tuple[dict[int, UserAccess | None], int | None]:
    """The race-free fill, written once (the loader and the keeper use it):
    single flight -> one `select` of the users -> the `before_fill` test seam ->
    one token-checked write-back.

    `read` holds the fill tokens and the epoch read *before* this call (None:
    Redis unavailable: load, write nothing). `user_ids` are distinct. With
    `flights`, a user another batch of this process is loading under the same
    token and epoch is awaited, not selected again. `gate` is held for the
    write-back. Returns every user's fresh entry (None: no such user) and the
    fill's outcome: the number of write-backs refused (a token or the epoch
    changed since `read`), None when nothing could be written. A failed `select`
    raises, fills nothing and fails the batches waiting on it."""
    waiting: dict[int, Pending] = {}
    owned: dict[FlightKey, Pending] = {}
    if flights is not None and read is not None:
        waiting, owned = flights.join(read, user_ids)
    mine = [u for u in user_ids if u not in waiting] if waiting else list(user_ids)
    fresh: dict[int, UserAccess | None] = {}
    refused: int | None = None if read is None else 0
    try:
        if mine:
            loaded = await select(mine)
            fresh = {u: loaded.get(u) for u in mine}
            for (u, _, _), future in owned.items():
                future.set_result(fresh[u])  # waiters need not wait for the write-back
            if read is not None:
                # test seam: pause between read and write-back
                if cache.before_fill is not None:
                    await cache.before_fill(mine)
                async with gate or _UNGATED:
                    refused = await cache.fill(read, fresh)
    except BaseException as exc:
        SingleFlight.abandon(owned, exc)
        raise
    finally:
        if flights is not None and owned:
            flights.release(owned)
    if waiting:
        others, orphans = await SingleFlight.wait(waiting)
        fresh.update(others)
        if orphans:  # no write-back for them: the next read fills them
            loaded = await select(orphans)
            fresh.update({u: loaded.get(u) for u in orphans})
    return fresh, refused


__all__ = [
    "CacheRead",
    "CircuitBreaker",
    "CountingConnection",
    "Fillable",
    "InvalidationFailed",
    "PermissionCache",
    "Select",
    "SingleFlight",
    "create_redis",
    "decode_access",
    "encode_access",
    "load_and_fill",
]
