"""SQL for refresh tokens and the login throttle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from api.db import read_sql

if TYPE_CHECKING:
    import asyncpg

INSERT = read_sql("refresh_tokens/insert")
SPEND = read_sql("refresh_tokens/spend")
SELECT_FAMILY = read_sql("refresh_tokens/select_family")
REVOKE_FAMILY = read_sql("refresh_tokens/revoke_family")
REVOKE_USER = read_sql("refresh_tokens/revoke_user")
RECORD_FAILURE = read_sql("users/record_login_failure")
RECORD_SUCCESS = read_sql("users/record_login_success")


async def insert(
    con: asyncpg.Connection, jti: str, family_id: str, user_id: int, expires_at: datetime
) -> None:
    await con.execute(INSERT, uuid.UUID(jti), uuid.UUID(family_id), user_id, expires_at)


async def spend(con: asyncpg.Connection, jti: str) -> tuple[str, int] | None:
    """(family_id, user_id) when the token was live; it is spent now."""
    row = await con.fetchrow(SPEND, uuid.UUID(jti))
    return None if row is None else (str(row["family_id"]), int(row["user_id"]))


async def family_of(con: asyncpg.Connection, jti: str) -> str | None:
    value = await con.fetchval(SELECT_FAMILY, uuid.UUID(jti))
    return None if value is None else str(value)


async def revoke_family(con: asyncpg.Connection, family_id: str) -> None:
    await con.execute(REVOKE_FAMILY, uuid.UUID(family_id))


async def revoke_user(con: asyncpg.Connection, user_id: int) -> None:
    await con.execute(REVOKE_USER, user_id)


async def record_login_failure(
    con: asyncpg.Connection, user_id: int, max_failures: int, lockout_s: int
) -> None:
    await con.execute(RECORD_FAILURE, user_id, max_failures, lockout_s)


async def record_login_success(
    con: asyncpg.Connection, user_id: int, new_hash: str | None
) -> None:
    await con.execute(RECORD_SUCCESS, user_id, new_hash)


__all__ = [
    "family_of",
    "insert",
    "record_login_failure",
    "record_login_success",
    "revoke_family",
    "revoke_user",
    "spend",
]
