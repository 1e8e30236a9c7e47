"""The permission loads in flight in this process (`SingleFlight`)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from permstore.models import UserAccess

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
        self, user_ids: Sequence[int], gens: Mapping[int, str], epoch: str
    ) -> tuple[dict[int, Pending], dict[FlightKey, Pending]]:
        """Split `user_ids` (distinct), read with the fill tokens `gens` (by
        user) under `epoch`: the users another batch is loading (their futures,
        to wait for) and the users the caller now loads (its futures: it settles
        them with `set_result` or `abandon`, then `release`s them)."""
        waiting: dict[int, Pending] = {}
        owned: dict[FlightKey, Pending] = {}
        futures = self._futures
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


__all__ = ["FlightKey", "Pending", "SingleFlight"]
