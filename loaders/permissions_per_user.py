"""The design permgraph replaced, kept only so `bench/` can compare against it
(PERMISSIONS_LOADER=per_user; never the default).

Each user on its own, one after another: one Redis GET, on a miss one JOIN query, one SET EX. No
fill tokens, so it also has the stale write-back hole described in the README.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from permcore.codec import decode_access, encode_access
from permstore import permissions as store

if TYPE_CHECKING:
    from permcore.cache import PermissionCache
    from permstore.db import Database
    from permstore.models import UserAccess


async def _one(user_id: int, db: Database, cache: PermissionCache) -> UserAccess | None:
    key, guarded = cache.key(user_id), cache.guarded
    async with asyncio.timeout(guarded.budget):  # the client has no timeout of its own
        raw = await guarded.client.get(key)
    if raw is not None:
        access, _ = decode_access(user_id, raw)
        return access
    loaded = (await store.select_access_by_user_ids(db, [user_id])).get(user_id)
    async with asyncio.timeout(guarded.budget):
        await guarded.client.set(key, encode_access(user_id, loaded, ""), ex=cache.ttl)
    return loaded


async def load_access_one_by_one(
    user_ids: Sequence[int], *, db: Database, cache: PermissionCache
) -> list[UserAccess | None]:
    return [await _one(u, db, cache) for u in user_ids]


__all__ = ["load_access_one_by_one"]
