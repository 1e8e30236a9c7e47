"""SQL for the permission change log the database writes (sql/queries/permission_changes,
migration 0013): which users' entries may have changed, in commit-safe order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from permstore.db import read_sql

if TYPE_CHECKING:
    from permstore.db import Database

SELECT_SINCE = read_sql("permission_changes/select_since")
SELECT_HOLDERS = read_sql("permission_changes/select_holders")
SELECT_POSITION = read_sql("permission_changes/select_position")
SAVE_POSITION = read_sql("permission_changes/save_position")
TRIM = read_sql("permission_changes/trim")


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    xid: int
    user_ids: tuple[int, ...]
    role_ids: tuple[int, ...]
    everyone: bool
    age: float  # seconds from its write to this read


async def select_since(db: Database, position: int) -> tuple[int, list[Change]]:
    """(the next position, the visible changes at or above `position`, in xid order)."""
    rows = await db.fetch(SELECT_SINCE, position)
    horizon = int(rows[0]["horizon"])
    return horizon, [
        Change(
            r["id"],
            r["xid"],
            tuple(r["user_ids"] or ()),
            tuple(r["role_ids"] or ()),
            r["everyone"],
            r["age"],
        )
        for r in rows
        if r["id"] is not None
    ]


async def select_holders(db: Database, role_ids: Sequence[int]) -> list[int]:
    return [r["user_id"] for r in await db.fetch(SELECT_HOLDERS, list(role_ids))]


async def select_position(db: Database, name: str) -> int:
    return int(await db.fetchval(SELECT_POSITION, name))


async def save_position(db: Database, name: str, position: int) -> None:
    await db.fetchval(SAVE_POSITION, name, position)


async def trim(db: Database, retention_s: float) -> None:
    await db.fetchval(TRIM, retention_s)


__all__ = [
    "Change",
    "save_position",
    "select_holders",
    "select_position",
    "select_since",
    "trim",
]
