"""SQL for refresh tokens, the login throttle and the login's re-check."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from permstore.db import read_sql

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

INSERT = read_sql("refresh_tokens/insert")
SPEND = read_sql("refresh_tokens/spend")
SELECT_FAMILY = read_sql("refresh_tokens/select_family")
REVOKE_FAMILY = read_sql("refresh_tokens/revoke_family")
REVOKE_USER = read_sql("refresh_tokens/revoke_user")
RECORD_SUCCESS = read_sql("users/record_login_success")
SELECT_LOGIN_FOR_UPDATE = read_sql("users/select_login_for_update")
THROTTLE_LOCK = read_sql("login_throttle/lock")
THROTTLE_CHARGE = read_sql("login_throttle/charge")
THROTTLE_SETTLE = read_sql("login_throttle/settle")
THROTTLE_PURGE = read_sql("login_throttle/purge")


@dataclass(frozen=True, slots=True)
class ThrottleRow:
    """One login-throttle counter, as locked for an attempt."""

    key: bytes
    failures: int
    failure_age_s: float | None  # since the last failure; None: never failed
    success_age_s: float | None  # since the last success; None: never succeeded


async def insert(
    con: asyncpg.Connection,
    jti: str,
    family_id: str,
    user_id: int,
    expires_at: datetime,
    access_until: datetime,
) -> None:
    await con.execute(
        INSERT, uuid.UUID(jti), uuid.UUID(family_id), user_id, expires_at, access_until
    )


async def spend(con: asyncpg.Connection, jti: str) -> tuple[str, int] | None:
    """(family_id, user_id) when the token was live; it is spent now."""
    row = await con.fetchrow(SPEND, uuid.UUID(jti))
    return None if row is None else (str(row["family_id"]), int(row["user_id"]))


async def family_of(con: asyncpg.Connection, jti: str) -> tuple[str, int] | None:
    """(family_id, user_id) of a known token, live or not."""
    row = await con.fetchrow(SELECT_FAMILY, uuid.UUID(jti))
    return None if row is None else (str(row["family_id"]), int(row["user_id"]))


async def revoke_family(con: asyncpg.Connection, family_id: str) -> int:
    """How many of the family's tokens were revoked now (0: it already was)."""
    status = await con.execute(REVOKE_FAMILY, uuid.UUID(family_id))
    return int(status.rsplit(" ", 1)[-1])


async def revoke_user(con: asyncpg.Connection, user_id: int) -> None:
    await con.execute(REVOKE_USER, user_id)


async def select_login_for_update(
    con: asyncpg.Connection, user_id: int
) -> tuple[str | None, bool] | None:
    """(password_hash, is_active), the user's row locked; None: no such user."""
    row = await con.fetchrow(SELECT_LOGIN_FOR_UPDATE, user_id)
    return None if row is None else (row["password_hash"], bool(row["is_active"]))


async def record_login_success(
    con: asyncpg.Connection, user_id: int, new_hash: str, verified_hash: str
) -> None:
    await con.execute(RECORD_SUCCESS, user_id, new_hash, verified_hash)


async def lock_throttle(
    con: asyncpg.Connection, keys: Sequence[bytes], user_ids: Sequence[int | None]
) -> list[ThrottleRow]:
    """Create missing counters, lock all of them for the transaction. `keys` sorted."""
    rows = await con.fetch(THROTTLE_LOCK, list(keys), list(user_ids))
    return [
        ThrottleRow(
            bytes(r["key"]), r["failures"], r["failure_age_s"], r["success_age_s"]
        )
        for r in rows
    ]


async def charge_throttle(
    con: asyncpg.Connection, keys: Sequence[bytes], reset_s: float
) -> None:
    await con.execute(THROTTLE_CHARGE, list(keys), reset_s)


async def settle_throttle(
    con: asyncpg.Connection, pair_key: bytes, other_keys: Sequence[bytes]
) -> None:
    await con.execute(THROTTLE_SETTLE, pair_key, list(other_keys))


async def purge_throttle(db: Database, older_than_s: float) -> None:
    async with db.connection() as con:
        await con.execute(THROTTLE_PURGE, older_than_s)


__all__ = [
    "ThrottleRow",
    "charge_throttle",
    "family_of",
    "insert",
    "lock_throttle",
    "purge_throttle",
    "record_login_success",
    "revoke_family",
    "revoke_user",
    "select_login_for_update",
    "settle_throttle",
    "spend",
]
