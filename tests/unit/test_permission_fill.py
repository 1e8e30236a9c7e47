"""The permission loader and the fill sequence (permcore/read.py `load_and_fill`)
with fakes at the seam: a cache that holds values, a fill token per user and an
epoch, and whose fill refuses a stale token as the Lua script does; a store that
records its queries. No sockets: the same protocol on real servers is
tests/integration/test_permission_cache.py, test_warm.py and test_faults.py.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import pytest

from loaders.factory import AccessMemo, SharedLoader
from permcore.cache import CacheRead
from permcore.read import load_access, load_and_fill
from permcore.singleflight import SingleFlight
from permstore.models import UserAccess

Entry = UserAccess | None
_tokens = itertools.count(1)


def entry(user_id: int, *codes: str) -> UserAccess:
    return UserAccess(user_id, True, (1,), ("member",), tuple(sorted(codes)))


class FakeCache:
    """Redis as the loader sees it. `available = False` is Redis down: reads
    return None and fills fail (None)."""

    def __init__(self, epoch: str = "E1") -> None:
        self.values: dict[int, Entry] = {}
        self.gens: dict[int, str] = {}
        self.epoch = epoch
        self.available = True
        self.reads: list[list[int]] = []
        self.fills: list[tuple[CacheRead, dict[int, Entry]]] = []
        self.before_fill: Callable[[Sequence[int]], Awaitable[None]] | None = None
        self.inflight = SingleFlight()

    async def read(self, user_ids: Sequence[int]) -> CacheRead | None:
        self.reads.append(list(user_ids))
        if not self.available:
            return None
        hits = {u: self.values[u] for u in user_ids if u in self.values}
        return CacheRead(
            hits, self.epoch, user_ids, [self.gens.get(u, "") for u in user_ids]
        )

    async def read_tokens(self, user_ids: Sequence[int]) -> CacheRead | None:
        if not self.available:
            return None
        return CacheRead(
            {}, self.epoch, user_ids, [self.gens.get(u, "") for u in user_ids]
        )

    async def fill(self, read: CacheRead, loaded: dict[int, Entry]) -> int | None:
        self.fills.append((read, dict(loaded)))
        if not self.available:
            return None
        refused = 0
        for u, value in loaded.items():
            token = read.gens.get(u, "")
            if read.epoch == self.epoch and token == self.gens.get(u, ""):
                self.values[u] = value
            else:
                refused += 1
        return refused

    def invalidate(self, user_id: int) -> None:
        """What a committed mutation does: drop the value, replace the token."""
        self.values.pop(user_id, None)
        self.gens[user_id] = f"g{next(_tokens)}"


class FakeStore:
    """PostgreSQL's batch query. `hold` keeps every query waiting until it is set;
    `during` runs while a query is in flight; `error` fails the query."""

    def __init__(self, rows: dict[int, UserAccess]) -> None:
        self.rows = rows
        self.calls: list[list[int]] = []
        self.hold: asyncio.Event | None = None
        self.during: Callable[[], None] | None = None
        self.error: Exception | None = None

    async def __call__(self, user_ids: list[int]) -> dict[int, UserAccess]:
        self.calls.append(list(user_ids))
        # the rows as the query saw them
        snapshot = {u: self.rows[u] for u in user_ids if u in self.rows}
        if self.during is not None:
            self.during()
        if self.hold is not None:
            await self.hold.wait()
        if self.error is not None:
            raise self.error
        return snapshot


async def until(condition: Callable[[], bool]) -> None:
    """Let the other tasks run until `condition` holds (no clock involved)."""
    for _ in range(100):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the other tasks never got there")


async def load(
    cache: FakeCache, store: FakeStore, user_ids: Sequence[int]
) -> list[Entry]:
    """The permission batch function over the fakes."""
    return await load_access(user_ids, cache=cache, select=store)


async def test_n_keys_in_n_values_out_in_key_order() -> None:
    cache, store = FakeCache(), FakeStore({u: entry(u, f"p:{u}") for u in (1, 2, 3)})
    cache.values[2] = entry(2, "cached")
    got = await load(cache, store, [3, 1, 3, 99, 2])
    assert got == [
        entry(3, "p:3"),
        entry(1, "p:1"),
        entry(3, "p:3"),
        None,
        entry(2, "cached"),
    ]


async def test_misses_go_to_the_store_once_in_one_batch() -> None:
    cache, store = FakeCache(), FakeStore({u: entry(u) for u in (1, 2, 3)})
    cache.values[2] = entry(2)
    await load(cache, store, [3, 1, 2, 3, 99, 1])
    # hits stay out, each miss once, unknown users included
    assert store.calls == [[3, 1, 99]]
    assert cache.reads == [[3, 1, 2, 3, 99, 1]]  # one read for the batch
    # one write-back
    assert [loaded for _, loaded in cache.fills] == [
        {3: entry(3), 1: entry(1), 99: None}
    ]
    # now everything is cached, the unknown user too: no query at all
    assert await load(cache, store, [1, 99, 3]) == [entry(1), None, entry(3)]
    assert store.calls == [[3, 1, 99]]


async def test_the_write_back_presents_the_tokens_read_before_the_query() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1, "old"), 2: entry(2, "old")})
    cache.gens = {1: "a", 2: "b"}

    def revoke_1() -> None:  # a mutation commits while the query runs
        store.rows[1] = entry(1)
        cache.invalidate(1)

    store.during = revoke_1
    await load(cache, store, [1, 2])
    [(read, loaded)] = cache.fills
    assert (read.epoch, read.gens) == ("E1", {1: "a", 2: "b"})
    assert loaded == {1: entry(1, "old"), 2: entry(2, "old")}
    assert 1 not in cache.values  # refused: the revoked entry never lands
    assert cache.values[2] == entry(2, "old")


async def test_a_refused_fill_still_returns_the_fresh_values() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1, "a:x"), 2: entry(2, "a:x")})
    seen: list[list[int]] = []

    async def revoke_before_the_write_back(user_ids: Sequence[int]) -> None:
        seen.append(list(user_ids))
        store.rows[1] = entry(1)
        cache.invalidate(1)

    cache.before_fill = revoke_before_the_write_back
    assert await load(cache, store, [1, 2]) == [entry(1, "a:x"), entry(2, "a:x")]
    assert seen == [[1, 2]]
    assert 1 not in cache.values and cache.values[2] == entry(2, "a:x")
    cache.before_fill = None
    # the next read sees the revocation
    assert await load(cache, store, [1, 2]) == [entry(1), entry(2, "a:x")]
    assert store.calls == [[1, 2], [1]]


async def test_a_store_failure_rejects_every_key_and_fills_nothing() -> None:
    cache, store = FakeCache(), FakeStore({u: entry(u) for u in (1, 2, 3)})
    cache.values[3] = entry(3)
    store.error = ConnectionError("postgres went away")
    loads = SharedLoader(partial(load, cache, store))
    got = await asyncio.gather(
        *(loads.load(u) for u in (1, 2, 3)), return_exceptions=True
    )
    assert got == [store.error] * 3  # the cached one too: never a partial batch
    assert cache.fills == [] and 1 not in cache.values
    assert len(cache.inflight) == 0
    store.error = None
    assert await load(cache, store, [1, 2]) == [entry(1), entry(2)]


async def test_single_flight_one_query_per_user_token_and_epoch() -> None:
    cache, store = FakeCache(), FakeStore({u: entry(u) for u in (1, 2, 3)})
    store.hold = asyncio.Event()
    first = asyncio.create_task(load(cache, store, [1, 2]))
    await until(lambda: len(store.calls) == 1)
    second = asyncio.create_task(load(cache, store, [2, 3]))
    await until(lambda: len(store.calls) == 2)
    store.hold.set()
    assert await first == [entry(1), entry(2)]
    assert await second == [entry(2), entry(3)]
    assert store.calls == [[1, 2], [3]]  # user 2 queried once
    assert len(cache.inflight) == 0


async def test_a_waiter_gets_the_value_before_the_owners_write_back() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1)})
    paused, resume = asyncio.Event(), asyncio.Event()

    async def pause(user_ids: Sequence[int]) -> None:
        paused.set()
        await resume.wait()

    cache.before_fill = pause
    first = asyncio.create_task(load(cache, store, [1]))
    await paused.wait()  # the owner has its rows and waits to write them back
    cache.before_fill = None
    second = asyncio.create_task(load(cache, store, [1]))
    try:
        await until(second.done)  # not held up by the paused owner
    finally:
        resume.set()
    assert second.result() == [entry(1)]
    assert store.calls == [[1]]
    assert await first == [entry(1)]
    assert cache.values[1] == entry(1)


async def test_single_flight_is_not_shared_across_an_invalidation() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1, "a:x")})
    store.hold = asyncio.Event()
    first = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(store.calls) == 1)
    store.rows[1] = entry(1)  # revoked and invalidated: a new token
    cache.invalidate(1)
    second = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(store.calls) == 2)
    store.hold.set()
    assert await first == [entry(1, "a:x")]
    assert await second == [entry(1)]  # its own query, not the older one's rows
    assert cache.values[1] == entry(1)  # and only the newer fill landed


async def test_waiters_of_a_failed_load_get_its_error() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1)})
    store.hold = asyncio.Event()
    first = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(store.calls) == 1)
    second = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(cache.reads) == 2)
    store.error = ConnectionError("postgres went away")
    store.hold.set()
    for task in (first, second):
        with pytest.raises(ConnectionError):
            await task
    assert store.calls == [[1]] and cache.fills == []


async def test_waiters_of_a_cancelled_load_load_it_themselves() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1)})
    store.hold = asyncio.Event()
    first = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(store.calls) == 1)
    second = asyncio.create_task(load(cache, store, [1]))
    await until(lambda: len(cache.reads) == 2)
    first.cancel()
    await until(lambda: len(store.calls) == 2)
    store.hold.set()
    assert await second == [entry(1)]
    assert first.cancelled()
    # the orphan is not written back
    assert store.calls == [[1], [1]] and cache.fills == []
    assert len(cache.inflight) == 0


async def test_redis_unavailable_everything_from_the_store_and_no_fill() -> None:
    cache, store = FakeCache(), FakeStore({1: entry(1), 2: entry(2)})
    cache.values[1] = entry(1, "cached")
    cache.available = False
    seam: list[list[int]] = []

    async def record(user_ids: Sequence[int]) -> None:
        seam.append(list(user_ids))

    cache.before_fill = record
    assert await load(cache, store, [1, 2, 1]) == [entry(1), entry(2), entry(1)]
    assert store.calls == [[1, 2]]
    assert cache.fills == [] and seam == []


async def test_the_keepers_fill_reports_refusals_and_a_failed_write_back() -> None:
    """The keeper's use: tokens only, every user reloaded, no single flight."""
    cache, store = FakeCache(), FakeStore({1: entry(1), 2: entry(2)})
    cache.values = {1: entry(1, "stale"), 2: entry(2, "stale")}
    read = await cache.read_tokens([1, 2, 3])
    assert read is not None
    store.during = lambda: cache.invalidate(2)
    fresh, refused = await load_and_fill(read, [1, 2, 3], store, cache=cache)
    assert (fresh, refused) == ({1: entry(1), 2: entry(2), 3: None}, 1)
    assert cache.values == {1: entry(1), 3: None}
    cache.available = False
    store.during = None
    # Redis failed: the keeper stops
    _, refused = await load_and_fill(read, [1], store, cache=cache)
    assert refused is None


async def test_overlapping_reads_that_disagree_are_flagged() -> None:
    """Two calls of the request's memo in flight at once may both read a user;
    if the entry changed between their reads the request saw both, and its
    answer must not be remembered as computed from one (`ResponseCache`, schema/engine/prepared.py)."""
    versions = iter([entry(7, "a:read"), entry(7, "b:read")])
    gate = asyncio.Event()

    async def load(user_ids: Sequence[int]) -> list[Entry]:
        await gate.wait()
        return [next(versions) for _ in user_ids]

    memo = AccessMemo(load)
    first = asyncio.ensure_future(memo([7]))
    second = asyncio.ensure_future(memo([7]))
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, second)
    assert memo.mixed

    eight = entry(8)
    same = AccessMemo(lambda ids: asyncio.sleep(0, [eight] * len(ids)))
    await asyncio.gather(same([8]), same([8, 8]))
    assert not same.mixed  # the same object both times: nothing to flag
