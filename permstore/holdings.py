"""SQL for what subjects hold, read by the delegation rule inside its transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from permstore.db import read_sql

if TYPE_CHECKING:
    import asyncpg

CODES_HELD_BY_USER_IDS = read_sql("permissions/select_codes_held_by_user_ids")
CODES_HELD_BY_ROLE_HOLDERS = read_sql("permissions/select_codes_held_by_role_holders")
CODES_HELD_BY_PERMISSION_HOLDERS = read_sql(
    "permissions/select_codes_held_by_permission_holders"
)
CODES_OF_ROLES_HOLDING_PERMISSION = read_sql(
    "permissions/select_codes_of_roles_holding_permission"
)
ALL_CODES = read_sql("permissions/select_codes")
EVER_GRANTED = read_sql("granted_permission_code/select_by_codes")
IS_ACTIVE = read_sql("users/select_is_active")
HELD_CODES = read_sql("permissions/select_held_codes")


async def codes_held_by_users(
    con: asyncpg.Connection, user_ids: Sequence[int]
) -> frozenset[str]:
    return frozenset(await con.fetchval(CODES_HELD_BY_USER_IDS, list(user_ids)))


async def codes_held_by_role_holders(
    con: asyncpg.Connection, role_id: int
) -> frozenset[str]:
    return frozenset(await con.fetchval(CODES_HELD_BY_ROLE_HOLDERS, role_id))


async def codes_held_by_permission_holders(
    con: asyncpg.Connection, permission_id: int
) -> frozenset[str]:
    return frozenset(
        await con.fetchval(CODES_HELD_BY_PERMISSION_HOLDERS, permission_id)
    )


async def codes_of_roles_holding_permission(
    con: asyncpg.Connection, permission_id: int
) -> frozenset[str]:
    return frozenset(
        await con.fetchval(CODES_OF_ROLES_HOLDING_PERMISSION, permission_id)
    )


async def is_active(con: asyncpg.Connection, user_id: int) -> bool:
    """False for an unknown or deactivated user."""
    return bool(await con.fetchval(IS_ACTIVE, user_id))


async def held_codes(con: asyncpg.Connection, codes: Iterable[str]) -> frozenset[str]:
    """Those of `codes` that some user holds."""
    return frozenset(r["code"] for r in await con.fetch(HELD_CODES, sorted(codes)))


async def all_codes(con: asyncpg.Connection) -> frozenset[str]:
    return frozenset(r["code"] for r in await con.fetch(ALL_CODES))


async def ever_granted(con: asyncpg.Connection, codes: Iterable[str]) -> frozenset[str]:
    return frozenset(r["code"] for r in await con.fetch(EVER_GRANTED, sorted(codes)))


__all__ = [
    "all_codes",
    "codes_held_by_permission_holders",
    "codes_held_by_role_holders",
    "codes_held_by_users",
    "codes_of_roles_holding_permission",
    "ever_granted",
    "held_codes",
    "is_active",
]
