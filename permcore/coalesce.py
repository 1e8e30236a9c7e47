"""Reads asked for in the same turn of the event loop go to Redis as one MGET
(`Coalesced`).

Under load, a Python process spends more CPU in the Redis client per command
(pool, retry, timeouts, packing, parsing: bench/README.md, "Profiles") than
Redis spends answering it. Every request reads its entries with one MGET once
it has started; requests that reach that read in the same turn of the event
loop (their bytes arrived together) can share one MGET: each still reads after
it started, so it sees every invalidation that completed before, exactly as with
an MGET of its own (README, "How the cache stays correct"). The keys are
deduplicated (the caller of `user(id)` is often the same user).

Knows nothing of permissions: a function that fetches keys (None: unavailable)
goes in, a per-caller answer comes out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

Fetch = Callable[[list[str]], Awaitable[list[Any] | None]]


class Coalesced:
    """`get(keys)`: the values of `keys` in order, or None when the fetch failed;
    fetched with the other `get`s of the same loop turn, up to `max_keys`
    distinct keys per fetch (a caller asking for more has a fetch of its own)."""

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


__all__ = ["Coalesced"]
