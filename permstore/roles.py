"""SQL for roles, role membership and role grants (sql/queries/roles, user_roles, role_permissions)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from permstore.db import read_sql
from permstore.models import RoleRow

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

SELECT_ALL = read_sql("roles/select_all")
SELECT_BY_IDS = read_sql("roles/select_by_ids")
SELECT_FOR_UPDATE = read_sql("roles/select_for_update")
INSERT = read_sql("roles/insert")
UPDATE = read_sql("roles/update")
DELETE = read_sql("roles/delete")
ASSIGN = read_sql("user_roles/insert")
UNASSIGN = read_sql("user_roles/delete")
HOLDERS = read_sql("user_roles/select_user_ids_by_role_id")
HOLDERS_OF_PERMISSION = read_sql("user_roles/select_user_ids_by_permission_id")
COUNT_ACTIVE_HOLDERS = read_sql("user_roles/count_active_holders_of_permission")
GRANT = read_sql("role_permissions/insert")
REVOKE = read_sql("role_permissions/delete")
REPLACE_GRANTS = read_sql("role_permissions/replace")


def _row(r: asyncpg.Record) -> RoleRow:
    return RoleRow(r["id"], r["name"], r["description"])


def _maybe(r: asyncpg.Record | None) -> RoleRow | None:
    return None if r is None else _row(r)


async def select_all(db: Database) -> list[RoleRow]:
    return [_row(r) for r in await db.fetch(SELECT_ALL)]


async def select_by_ids(db: Database, ids: Sequence[int]) -> dict[int, RoleRow]:
    return {r["id"]: _row(r) for r in await db.fetch(SELECT_BY_IDS, list(ids))}


async def select_for_update(con: asyncpg.Connection, role_id: int) -> RoleRow | None:
    return _maybe(await con.fetchrow(SELECT_FOR_UPDATE, role_id))


async def insert(
    con: asyncpg.Connection, name: str, description: str
) -> RoleRow | None:
    return _maybe(await con.fetchrow(INSERT, name, description))


async def update(
    con: asyncpg.Connection, role_id: int, name: str | None, description: str | None
) -> RoleRow | None:
    return _maybe(await con.fetchrow(UPDATE, role_id, name, description))


async def delete(con: asyncpg.Connection, role_id: int) -> RoleRow | None:
    return _maybe(await con.fetchrow(DELETE, role_id))


async def assign(
    con: asyncpg.Connection, user_id: int, role_id: int, granted_by: int | None
) -> bool:
    """True when the user did not hold the role before."""
    return await con.fetchval(ASSIGN, user_id, role_id, granted_by) is not None


async def unassign(con: asyncpg.Connection, user_id: int, role_id: int) -> bool:
    return await con.fetchval(UNASSIGN, user_id, role_id) is not None


async def holders(con: asyncpg.Connection, role_id: int) -> list[int]:
    return [r["user_id"] for r in await con.fetch(HOLDERS, role_id)]


async def holders_of_permission(
    con: asyncpg.Connection, permission_id: int
) -> list[int]:
    return [r["user_id"] for r in await con.fetch(HOLDERS_OF_PERMISSION, permission_id)]


async def count_active_holders(con: asyncpg.Connection, code: str) -> int:
    return int(await con.fetchval(COUNT_ACTIVE_HOLDERS, code))


async def grant(con: asyncpg.Connection, role_id: int, permission_id: int) -> bool:
    return await con.fetchval(GRANT, role_id, permission_id) is not None


async def revoke(con: asyncpg.Connection, role_id: int, permission_id: int) -> bool:
    return await con.fetchval(REVOKE, role_id, permission_id) is not None


async def replace_grants(
    con: asyncpg.Connection, role_id: int, permission_ids: Sequence[int]
) -> None:
    await con.execute(REPLACE_GRANTS, role_id, list(permission_ids))


__all__ = [
    "assign",
    "count_active_holders",
    "delete",
    "grant",
    "holders",
    "holders_of_permission",
    "insert",
    "replace_grants",
    "revoke",
    "select_all",
    "select_by_ids",
    "select_for_update",
    "unassign",
    "update",
]

LOCK_GUARD = read_sql("roles/lock_guard")


async def lock_guard(con: asyncpg.Connection) -> None:
    await con.execute(LOCK_GUARD)
