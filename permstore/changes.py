"""SQL for the permission change log the database writes (sql/queries/permission_changes,
migration 0013): which users' entries may have changed, in commit-safe order."""

from __future__ import annotations

from collections.abc import Awaitable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from permstore.db import read_sql

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

SELECT_SINCE = read_sql("permission_changes/select_since")
SELECT_HOLDERS = read_sql("permission_changes/select_holders")
SELECT_POSITION = read_sql("permission_changes/select_position")
SAVE_POSITION = read_sql("permission_changes/save_position")
TRIM = read_sql("permission_changes/trim")
SELECT_XID = read_sql("permission_changes/select_xid")
INSERT = read_sql("permission_changes/insert")
# what a pass of the change stream runs (tools that count a request's statements
# leave them out)
STREAM_SQL = frozenset(
    {SELECT_SINCE, SELECT_HOLDERS, SELECT_POSITION, SAVE_POSITION, TRIM}
)


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    xid: int
    user_ids: tuple[int, ...]
    role_ids: tuple[int, ...]
    everyone: bool
    age: float  # seconds from its write to this read


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Which transactions a read saw as ended: every xid below `xmin`, and those
    below `xmax` not in `running` (PostgreSQL's pg_snapshot)."""

    xmin: int
    xmax: int
    running: frozenset[int]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        xmin, xmax, running = text.split(":")
        return cls(
            int(xmin), int(xmax), frozenset(int(x) for x in running.split(",") if x)
        )

    def ended(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.running)


@dataclass(frozen=True, slots=True)
class Pending:
    """What one pass of a reader reads, in one snapshot."""

    horizon: int  # the next position: every transaction below it has ended
    snapshot: Snapshot  # which transactions the read saw as ended
    changes: list[Change]  # visible changes at or above the position, in xid order
    holders: list[int]  # the users now holding a role those changes name


async def select_pending(
    db: Database, position: int, applied: Collection[int] = ()
) -> Pending:
    """The changes at or above `position` not in `applied` (ids), and the holders
    of the roles they name, read in one REPEATABLE READ snapshot: a membership
    change committed between the two reads cannot hide a holder."""
    async with (
        db.connection() as con,
        con.transaction(isolation="repeatable_read", readonly=True),
    ):
        rows = await con.fetch(SELECT_SINCE, position, list(applied))
        found = [
            Change(
                r["id"],
                r["xid"],
                tuple(r["user_ids"] or ()),
                tuple(r["role_ids"] or ()),
                r["everyone"],
                r["age"],
            )
            for r in rows
            if r["id"] is not None and r["id"] not in applied
        ]
        role_ids = sorted({r for c in found for r in c.role_ids})
        holders = (
            [r["user_id"] for r in await con.fetch(SELECT_HOLDERS, role_ids)]
            if role_ids
            else []
        )
    return Pending(
        int(rows[0]["horizon"]), Snapshot.parse(rows[0]["snapshot"]), found, holders
    )


async def select_position(db: Database, name: str, live_s: float) -> int:
    """Where reader `name` resumes; a new reader, where the furthest-behind
    reader seen within `live_s` stands (select_position.sql)."""
    return int(await db.fetchval(SELECT_POSITION, name, live_s))


async def save_position(db: Database, name: str, position: int) -> None:
    await db.fetchval(SAVE_POSITION, name, position)


async def trim(db: Database, retention_s: float) -> None:
    await db.fetchval(TRIM, retention_s)


async def select_xid(con: asyncpg.Connection) -> tuple[int, bool]:
    """The running transaction's id (its consistency token once it commits), and
    whether it wrote to the change log (else no permission entry changed)."""
    row = await con.fetchrow(SELECT_XID)
    assert row is not None  # noqa: S101 - one row, always
    return int(row["xid"]), bool(row["logged"])


class Settle(Protocol):
    """Called after a commit with `select_xid`'s answer: returns once the
    committed transaction `xid` has reached the cache (False: not confirmed in
    time); `logged`: it wrote to the change log (schema/context.py
    `Context.settle`)."""

    def __call__(self, xid: int, *, logged: bool = True) -> Awaitable[bool]: ...


async def insert(con: asyncpg.Connection, user_ids: Sequence[int] | None) -> None:
    """Record a change by hand: these users' entries, or everyone's (None)."""
    await con.fetchval(INSERT, None if user_ids is None else list(user_ids))


__all__ = [
    "Change",
    "Pending",
    "Settle",
    "STREAM_SQL",
    "Snapshot",
    "insert",
    "select_xid",
    "save_position",
    "select_position",
    "select_pending",
    "trim",
]
