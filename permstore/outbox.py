"""SQL for the cache invalidation outbox (sql/queries/cache_outbox)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from permstore.db import read_sql

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

INSERT = read_sql("cache_outbox/insert")
SELECT_PENDING = read_sql("cache_outbox/select_pending")
DELETE = read_sql("cache_outbox/delete")


async def insert(con: asyncpg.Connection, user_ids: Sequence[int] | None) -> int:
    return int(await con.fetchval(INSERT, None if user_ids is None else list(user_ids)))


async def select_pending(
    db: Database, limit: int = 100
) -> list[tuple[int, list[int] | None]]:
    return [(r["id"], r["user_ids"]) for r in await db.fetch(SELECT_PENDING, limit)]


async def delete(db: Database, ids: Sequence[int]) -> None:
    async with db.connection() as con:
        await con.execute(DELETE, list(ids))


__all__ = ["delete", "insert", "select_pending"]
