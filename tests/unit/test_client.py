"""permcore/client.py's pure pieces. Reads of the same loop turn share one fetch
(`Coalesced`), with a fake fetch at the seam; a guarded call (`GuardedRedis`)
with a fake Redis call at its seam. The same on real Redis, one MGET for
concurrent requests, and the breaker with Redis down or hung:
tests/integration/test_permission_cache.py, tests/integration/test_faults.py."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from hypothesis import given, settings, strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError

from permbase.settings import Settings
from permcore.client import CircuitBreaker, Coalesced, GuardedRedis


class Store:
    """Redis as a dict; records each fetch; `down`: every fetch fails (None)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.data = {f"k{i}": f"v{i}" for i in range(50)}
        self.fetches: list[list[str]] = []
        self.down = False
        self.delay = delay

    async def fetch(self, keys: list[str]) -> list[Any] | None:
        self.fetches.append(keys)
        await asyncio.sleep(self.delay)
        return None if self.down else [self.data.get(k) for k in keys]


key_lists = st.lists(
    st.lists(st.sampled_from([f"k{i}" for i in range(60)]), min_size=1, max_size=8),
    min_size=1,
    max_size=12,
)


@given(asked=key_lists, max_keys=st.integers(1, 20))
@settings(max_examples=100, deadline=None)
def test_each_caller_gets_its_own_keys_in_order(
    asked: list[list[str]], max_keys: int
) -> None:
    async def run() -> None:
        store = Store()
        reads = Coalesced(store.fetch, max_keys=max_keys)
        answers = await asyncio.gather(*(reads.get(keys) for keys in asked))
        assert answers == [[store.data.get(k) for k in keys] for keys in asked]
        distinct = {k for keys in asked for k in keys}
        # keys are fetched once per batch; a batch holds at most max_keys distinct
        # keys unless one caller alone asks for more
        for fetched in store.fetches:
            assert len(fetched) == len(set(fetched))
            assert len(fetched) <= max(max_keys, max(len(set(k)) for k in asked))
        if len(distinct) <= max_keys:
            assert len(store.fetches) == 1

    asyncio.run(run())


async def test_one_fetch_per_turn_not_per_caller() -> None:
    store = Store()
    reads = Coalesced(store.fetch)
    first = list(await asyncio.gather(reads.get(["k1", "k2"]), reads.get(["k2", "k3"])))
    assert first == [["v1", "v2"], ["v2", "v3"]]
    assert store.fetches == [["k1", "k2", "k3"]]
    assert await reads.get(["k4"]) == ["v4"]  # a later turn: a fetch of its own
    assert len(store.fetches) == 2


async def test_a_failed_fetch_fails_every_caller_of_the_batch() -> None:
    store = Store()
    store.down = True
    reads = Coalesced(store.fetch)
    assert list(await asyncio.gather(reads.get(["k1"]), reads.get(["k2"]))) == [
        None,
        None,
    ]
    store.down = False
    assert await reads.get(["k1"]) == ["v1"]


async def test_a_cancelled_caller_cancels_only_its_own_wait() -> None:
    store = Store(delay=0.05)
    reads = Coalesced(store.fetch)

    async def wait(keys: list[str]) -> list[Any] | None:
        return await reads.get(keys)

    leaving = asyncio.ensure_future(wait(["k1"]))
    staying = asyncio.ensure_future(wait(["k1", "k2"]))
    await asyncio.sleep(0.01)  # the fetch is in flight
    leaving.cancel()
    assert await staying == ["v1", "v2"]
    assert len(store.fetches) == 1


def test_breaker_opens_cools_down_and_probes_once() -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=0.05)
    breaker.failure()
    assert breaker.allow()
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    time.sleep(0.06)
    assert breaker.allow()  # the one probe
    assert not breaker.allow()  # nobody else while it is out
    breaker.success()
    assert not breaker.is_open and breaker.allow()


class Outcome:
    """What one Redis call does at GuardedRedis's seam."""

    OK, FAIL, EXHAUSTED, HANG = "ok", "fail", "exhausted", "hang"


async def _redis_call(outcome: str, calls: list[str]) -> int:
    calls.append(outcome)
    if outcome == Outcome.FAIL:
        raise RedisConnectionError("Connection reset by peer")
    if outcome == Outcome.EXHAUSTED:  # redis-py's pool, before anything is sent
        raise RedisConnectionError("Too many connections")
    if outcome == Outcome.HANG:
        await asyncio.sleep(1)  # past the budget
    return 1


@given(
    outcomes=st.lists(
        st.sampled_from([Outcome.OK, Outcome.FAIL, Outcome.EXHAUSTED, Outcome.HANG]),
        max_size=12,
    ),
    threshold=st.integers(1, 4),
)
@settings(max_examples=60, deadline=None)
def test_a_guarded_call_is_a_value_or_a_miss_and_the_breaker_counts_redis_failures(
    outcomes: list[str], threshold: int
) -> None:
    """Any sequence of calls: each answers its value or None (never raises);
    `threshold` failures or timeouts in a row open the breaker, after which no
    call reaches Redis (until the cooldown, longer than the test); a full pool
    is a miss but no failure of Redis; a success resets the count."""

    async def run() -> None:
        guarded = GuardedRedis(
            None,  # type: ignore[arg-type]  # the raw client: these calls never use it
            Settings(
                breaker_failure_threshold=threshold,
                breaker_cooldown_s=60,
                redis_connect_timeout_s=0.002,
                redis_socket_timeout_s=0.003,
            ),
        )
        failures, is_open = 0, False
        for outcome in outcomes:
            calls: list[str] = []
            answer = await guarded.call("op", partial(_redis_call, outcome, calls))
            if is_open:
                assert (answer, calls) == (None, [])  # Redis not asked
                continue
            assert calls == [outcome]
            assert answer == (1 if outcome == Outcome.OK else None)
            if outcome == Outcome.OK:
                failures = 0
            elif outcome in (Outcome.FAIL, Outcome.HANG):
                failures += 1
                is_open = failures >= threshold
            assert guarded.breaker.is_open == is_open

    asyncio.run(run())


async def test_a_forced_call_goes_through_an_open_breaker() -> None:
    """Invalidations and the epoch are forced: they are tried even while reads
    skip Redis."""
    guarded = GuardedRedis(
        None,  # type: ignore[arg-type]  # the raw client: these calls never use it
        Settings(breaker_failure_threshold=1, breaker_cooldown_s=60),
    )
    calls: list[str] = []
    assert await guarded.call("op", lambda: _redis_call(Outcome.FAIL, calls)) is None
    assert guarded.breaker.is_open
    assert await guarded.call("op", lambda: _redis_call(Outcome.OK, calls)) is None
    assert (
        await guarded.call("op", lambda: _redis_call(Outcome.OK, calls), force=True)
        == 1
    )
    assert calls == [Outcome.FAIL, Outcome.OK] and not guarded.breaker.is_open
