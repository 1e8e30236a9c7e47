"""SQL for permissions: one function per file under sql/queries/permissions/."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from permstore.db import read_sql
from permstore.models import PermissionRow, UserAccess

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database, Executor

SELECT_ACCESS_BY_USER_IDS = read_sql("permissions/select_access_by_user_ids")
SELECT_ALL = read_sql("permissions/select_all")
SELECT_BY_IDS = read_sql("permissions/select_by_ids")
SELECT_BY_ROLE_IDS = read_sql("permissions/select_by_role_ids")
SELECT_BY_CODE = read_sql("permissions/select_by_code")
SELECT_BY_CODES = read_sql("permissions/select_by_codes")
INSERT = read_sql("permissions/insert")
DELETE = read_sql("permissions/delete")


def _row(r: asyncpg.Record) -> PermissionRow:
    return PermissionRow(r["id"], r["code"], r["description"])


async def select_access_by_user_ids(
    db: Database, user_ids: Sequence[int]
) -> dict[int, UserAccess]:
    rows = await db.fetch(SELECT_ACCESS_BY_USER_IDS, list(user_ids))
    return {
        r["user_id"]: UserAccess(
            r["user_id"],
            r["is_active"],
            tuple(r["role_ids"]),
            tuple(r["roles"]),
            tuple(r["codes"]),  # array_agg(distinct ... order by): sorted, unique
            r["not_before"],
            tuple(r["revoked_sessions"]),
        )
        for r in rows
    }


async def select_all(db: Database) -> list[PermissionRow]:
    return [_row(r) for r in await db.fetch(SELECT_ALL)]


async def select_by_ids(db: Executor, ids: Sequence[int]) -> dict[int, PermissionRow]:
    return {r["id"]: _row(r) for r in await db.fetch(SELECT_BY_IDS, list(ids))}


async def select_by_role_ids(
    db: Executor, role_ids: Sequence[int]
) -> dict[int, list[PermissionRow]]:
    out: dict[int, list[PermissionRow]] = {r: [] for r in role_ids}
    for r in await db.fetch(SELECT_BY_ROLE_IDS, list(role_ids)):
        out[r["role_id"]].append(_row(r))
    return out


async def select_by_code(con: asyncpg.Connection, code: str) -> PermissionRow | None:
    r = await con.fetchrow(SELECT_BY_CODE, code)
    return None if r is None else _row(r)


async def select_by_codes(
    con: asyncpg.Connection, codes: Sequence[str]
) -> dict[str, PermissionRow]:
    return {r["code"]: _row(r) for r in await con.fetch(SELECT_BY_CODES, list(codes))}


async def insert(
    con: asyncpg.Connection, code: str, description: str
) -> PermissionRow | None:
    r = await con.fetchrow(INSERT, code, description)
    return None if r is None else _row(r)


async def delete(con: asyncpg.Connection, permission_id: int) -> PermissionRow | None:
    r = await con.fetchrow(DELETE, permission_id)
    return None if r is None else _row(r)


__all__ = [
    "delete",
    "insert",
    "select_access_by_user_ids",
    "select_all",
    "select_by_code",
    "select_by_codes",
    "select_by_ids",
    "select_by_role_ids",
]
