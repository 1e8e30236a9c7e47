"""The Redis permission cache (`PermissionCache`): reads (what one yields:
`CacheRead`), race-free fills, invalidation, the epoch, leases. The other
pieces: permcore/client.py (how the core talks to Redis: the pool, each call
under a time budget and a circuit breaker, the shared MGET), codec.py (the
value format), singleflight.py, read.py (the read-through: `load_access`, and
`load_and_fill`, the fill sequence the loader and the keeper share).

Keys (prefix `P` = settings.permissions_cache_prefix, default `permissions:user:`):

    P{id}          JSON {"v": 3, "u": id, "roles": [...], "role_ids": [...], "permissions": [...],
                   "active": bool, "nbf": float|null, "rs": [...], "e": epoch}
                   (nbf, rs: what ends the user's sessions, permstore/models.py)  TTL 3600 s ± jitter
    P{id}:gen      fill token of the user; replaced by every invalidation  TTL 1 day
    Pepoch         cache epoch; replaced by a whole-cache flush           no TTL

Why the two extra keys (see README, "How the cache stays correct"): a reader reads
`P{id}:gen` and `Pepoch` in the same MGET as the value. On a miss it loads from
PostgreSQL and writes back through a Lua script that stores the value only if both
tokens are still what it read. Every invalidation replaces the user's token in the
same MULTI as it unlinks the value, so a value read from PostgreSQL before a
change committed can never land after that change's invalidation.
A flush replaces the epoch: values carrying an older epoch are misses at once,
and the SCAN + UNLINK that follows only reclaims memory.

Redis is an optimisation only: every error or timeout counts as a miss (reads) or
a skipped fill (writes); a circuit breaker skips Redis after repeated failures
(both permcore/client.py's).
Invalidations that fail raise `InvalidationFailed`: the change stream then keeps
its position and distrusts the cache until a pass succeeds (permcore/stream.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from permbase.metrics import (
    CACHE_CORRUPT,
    CACHE_INVALIDATIONS,
    CACHE_STALE_WRITES_REFUSED,
)
from permcore.client import GuardedRedis, as_text
from permcore.codec import (
    Corrupt,
    decode_access,
    encode_access,
    parse_many,
    validate_access,
)
from permcore.singleflight import SingleFlight
from permstore.models import UserAccess

if TYPE_CHECKING:
    from permbase.settings import Settings

logger = logging.getLogger(__name__)

GEN_TTL_S = 24 * 3600
UNLINK_CHUNK = 1000
DECODED_MAX = (
    100_000  # decoded values remembered per process (~1 KB each); cleared when full
)
SCAN_COUNT = 1000

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


class CacheRead:
    """One MGET's worth: usable entries (`hits`), and the tokens a fill must
    present (`epoch`, `gens`: the fill token read for each user). The tokens
    are kept as Redis returned them, for `user_ids` in order, and decoded when
    first asked for: a read whose users are all hits needs none."""

    __slots__ = ("_gens", "_tokens", "_user_ids", "epoch", "hits")

    def __init__(
        self,
        hits: dict[int, UserAccess | None],
        epoch: str,
        user_ids: Sequence[int],
        tokens: Sequence[bytes | str | None],
    ) -> None:
        self.hits = hits
        self.epoch = epoch
        self._user_ids = user_ids
        self._tokens = tokens
        self._gens: dict[int, str] | None = None

    @property
    def gens(self) -> dict[int, str]:
        if self._gens is None:
            self._gens = {
                u: as_text(g) for u, g in zip(self._user_ids, self._tokens, strict=True)
            }
        return self._gens


class InvalidationFailed(Exception):
    """Redis did not confirm an invalidation; the change log keeps it for the
    stream's next pass (permcore/stream.py)."""


class PermissionCache:
    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        # the client, under its breaker and time budget (permcore/client.py)
        self.guarded = GuardedRedis(client, settings)
        self.prefix = settings.permissions_cache_prefix
        self.ttl = settings.permissions_cache_ttl_s
        self.jitter = settings.permissions_cache_ttl_jitter_s
        self.epoch_key = f"{self.prefix}epoch"
        self._fill = client.register_script(_FILL_SCRIPT)
        # False while an invalidation may be missing from Redis (see permcore/stream.py):
        # reads and fills skip Redis until the change stream has caught up
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
        await self.guarded.call(
            "script_load",
            lambda: self.guarded.client.script_load(_FILL_SCRIPT),
            force=True,
        )
        await self.ensure_epoch()

    async def ensure_epoch(self) -> None:
        """Give the cache a random epoch if it has none (at start). Fill tokens and
        single-flight keys include the epoch, so a random one keeps tokens read
        before a Redis restart from equalling tokens read after it, as long as an
        instance restarts with Redis (a restarted Redis keeps no epoch until then:
        see the note in SECURITY.md)."""
        await self.guarded.call(
            "epoch",
            lambda: self.guarded.client.set(
                self.epoch_key, secrets.token_hex(8), nx=True
            ),
            force=True,
        )

    def key(self, user_id: int) -> str:
        return f"{self.prefix}{user_id}"

    def gen_key(self, user_id: int) -> str:
        return f"{self.prefix}{user_id}:gen"

    # -- reads ---------------------------------------------------------------

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None:
        """One MGET of values, fill tokens and the epoch (shared with the reads
        of the same loop turn). None: Redis unavailable."""
        if not (self.trusted and self.enabled):
            return None
        keys = [self.epoch_key]
        keys += [self.key(u) for u in user_ids]
        keys += [self.gen_key(u) for u in user_ids]
        raw = await self.guarded.mget(keys)
        if raw is None:
            return None
        n = len(user_ids)
        epoch = as_text(raw[0])
        values, gen_values = raw[1 : n + 1], raw[n + 1 :]
        hits: dict[int, UserAccess | None] = {}
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
        parsed = parse_many([v for _, v in present]) if present else []
        if len(decoded) + len(present) > DECODED_MAX:
            decoded.clear()
        for i, (user_id, value) in enumerate(present):
            try:
                if parsed is None:
                    access, value_epoch = decode_access(user_id, value)
                else:
                    access, value_epoch = validate_access(user_id, parsed[i])
            except Corrupt as exc:
                CACHE_CORRUPT.inc()
                logger.warning("corrupt cache entry for user %d: %s", user_id, exc)
                continue
            decoded[user_id] = (value, access, value_epoch)
            if value_epoch == epoch:
                hits[user_id] = access
        return CacheRead(hits, epoch, user_ids, gen_values)

    async def read_tokens(self, user_ids: Sequence[int]) -> CacheRead | None:
        """Only the fill tokens and the epoch, for a refresh that reloads every
        entry anyway. None: Redis unavailable (then there is nothing to refresh)."""
        if not (self.trusted and self.enabled):
            return None
        keys = [self.epoch_key, *(self.gen_key(u) for u in user_ids)]
        raw = await self.guarded.call("mget", lambda: self.guarded.client.mget(keys))
        if raw is None:
            return None
        return CacheRead({}, as_text(raw[0]), user_ids, raw[1:])

    async def take_lease(
        self, name: str, seconds: float, *, force: bool = False
    ) -> bool:
        """A Redis lease shared by every instance (SET NX PX): True when this
        instance holds it now. `force` takes it regardless."""
        if not (self.trusted and self.enabled):
            return False
        key, ms = f"{self.prefix}lease:{name}", max(1, int(seconds * 1000))
        done = await self.guarded.call(
            "lease",
            lambda: self.guarded.client.set(key, self.instance, px=ms, nx=not force),
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
            args += [
                read.gens.get(user_id, ""),
                encode_access(user_id, access, read.epoch),
                ttl,
            ]
        refused = await self.guarded.call(
            "fill", lambda: self._fill(keys=keys, args=args)
        )
        if refused:
            CACHE_STALE_WRITES_REFUSED.inc(int(refused))
            logger.info("refused %d stale permission write-backs", refused)
        return None if refused is None else int(refused)

    # -- invalidation ----------------------------------------------------------

    async def invalidate_users(self, user_ids: Iterable[int]) -> dict[int, str]:
        """Drop the users' entries and replace their fill tokens: one UNLINK and the
        token SETs per chunk of 1000, in one MULTI per chunk. Returns the tokens
        set (whoever replaces one later has invalidated the entry after this)."""
        ids = sorted(set(user_ids))
        tokens = {u: secrets.token_hex(8) for u in ids}
        for start in range(0, len(ids), UNLINK_CHUNK):
            chunk = ids[start : start + UNLINK_CHUNK]

            async def run(chunk: list[int] = chunk) -> list[Any]:
                async with self.guarded.client.pipeline(transaction=True) as pipe:
                    pipe.unlink(*[self.key(u) for u in chunk])
                    for u in chunk:
                        pipe.set(self.gen_key(u), tokens[u], ex=GEN_TTL_S)
                    return await pipe.execute()

            if await self.guarded.call("invalidate", run, force=True) is None:
                raise InvalidationFailed(f"could not invalidate {len(ids)} users")
        if ids:
            CACHE_INVALIDATIONS.labels("users" if len(ids) > 1 else "user").inc()
        return tokens

    async def invalidate_all(self) -> None:
        """Replace the epoch (every entry becomes a miss at once), then reclaim
        memory with SCAN + UNLINK in batches; never KEYS."""
        token = secrets.token_hex(8)
        if (
            await self.guarded.call(
                "flush",
                lambda: self.guarded.client.set(self.epoch_key, token),
                force=True,
            )
            is None
        ):
            raise InvalidationFailed("could not replace the cache epoch")
        CACHE_INVALIDATIONS.labels("all").inc()

        async def sweep() -> int:
            # each SCAN page and each UNLINK within the budget of one call (the
            # client has no timeout of its own): a stalled step ends the sweep,
            # not the change stream's pass that runs it
            removed, cursor, epoch_key = 0, 0, self.epoch_key.encode()
            while True:
                async with asyncio.timeout(self.guarded.budget):
                    cursor, keys = await self.guarded.client.scan(
                        cursor, match=f"{self.prefix}*", count=SCAN_COUNT
                    )
                found: list[bytes] = keys  # type: ignore[assignment]  # bytes: the client does not decode
                batch = [
                    k for k in found if not (k.endswith(b":gen") or k == epoch_key)
                ]
                if batch:
                    async with asyncio.timeout(self.guarded.budget):
                        removed += await self.guarded.client.unlink(*batch)
                if cursor == 0:
                    return removed

        # memory only: correctness already holds through the epoch
        await self.guarded.call("sweep", sweep, force=True, budget=60.0)


__all__ = [
    "CacheRead",
    "InvalidationFailed",
    "PermissionCache",
]
