"""The response cache (`ResponseCache`, schema/engine/prepared.py) with a fake request at the
seam: what it replays, and that requests changing it while another waits for
its entries never break that one. On real servers: tests/integration/test_responses.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from types import SimpleNamespace
from typing import Any

from permauth.tokens import Principal
from permstore.models import UserAccess
from schema.engine.prepared import ResponseCache

Read = Callable[[Sequence[int]], Awaitable[list[UserAccess | None]]]


class Memo:
    """The request's entry memo (loaders.factory.AccessMemo) over `read`."""

    def __init__(self, read: Read) -> None:
        self.read = read
        self.entries: dict[int, UserAccess | None] = {}
        self.mixed = False

    async def __call__(self, user_ids: Sequence[int]) -> list[UserAccess | None]:
        values = await self.read(user_ids)
        self.entries.update(zip(user_ids, values, strict=True))
        return values


def request(read: Read, *, connections: int = 0) -> Any:
    """What the cache reads of a request's context."""
    return SimpleNamespace(
        principal=Principal(1, "t", "s", 0.0),
        consistency=None,
        db=SimpleNamespace(connections=connections),
        loaders=SimpleNamespace(access=Memo(read)),
    )


ENTRY = UserAccess(1, True, (1,), ("admin",), ("users:read",))


async def test_a_replay_survives_its_answer_being_dropped_while_it_reads() -> None:
    cache = ResponseCache(8)

    async def same(user_ids: Sequence[int]) -> list[UserAccess | None]:
        return [ENTRY for _ in user_ids]

    first = request(same)
    key = cache.key(first, "{ me { permissions } }", None, None, False)
    assert key is not None
    await first.loaders.access([1])
    cache.remember(key, first, b"body")

    async def meanwhile_dropped(user_ids: Sequence[int]) -> list[UserAccess | None]:
        # another request that took a database connection answers the same key
        cache.remember(key, request(same, connections=1), b"other")
        await asyncio.sleep(0)
        return [ENTRY for _ in user_ids]

    assert await cache.replay(key, request(meanwhile_dropped)) == b"body"
    assert len(cache) == 0  # dropped it stays
    assert await cache.replay(key, request(same)) is None
