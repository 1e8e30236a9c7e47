"""SQL for users: one function per file under sql/queries/users/."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from permstore import roles as role_store
from permstore.db import read_sql
from permstore.models import UserRow

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

SELECT_BY_IDS = read_sql("users/select_by_ids")
SELECT_PAGE = read_sql("users/select_page")
SELECT_PAGE_BY_ACTIVE = read_sql("users/select_page_by_active")
SELECT_PAGE_BY_EMAIL = read_sql("users/select_page_by_email")
SELECT_PAGE_BY_ROLE = read_sql("users/select_page_by_role")
SELECT_PAGE_BY_EMAIL_AND_ROLE = read_sql("users/select_page_by_email_and_role")
COUNT_ALL = read_sql("users/count_all")
COUNT_BY_ACTIVE = read_sql("users/count_by_active")
COUNT_BY_EMAIL = read_sql("users/count_by_email")
COUNT_BY_ROLE = read_sql("users/count_by_role")
PLAN_TEXT_FILTER = read_sql("users/plan_text_filter")
SELECT_MEMBERS_BY_ROLE_IDS = read_sql("users/select_members_by_role_ids")
COUNT_MEMBERS_BY_ROLE_IDS = read_sql("users/count_members_by_role_ids")
SELECT_LOGIN_BY_EMAIL = read_sql("users/select_login_by_email")
SELECT_PASSWORD_HASH = read_sql("users/select_password_hash")
SELECT_FOR_UPDATE = read_sql("users/select_for_update")
INSERT = read_sql("users/insert")
UPDATE_PROFILE = read_sql("users/update_profile")
UPDATE_EMAIL = read_sql("users/update_email")
SET_ACTIVE = read_sql("users/set_active")
UPDATE_PASSWORD = read_sql("users/update_password")
SELECT_IDS_AFTER = read_sql("users/select_ids_after")


@dataclass(frozen=True, slots=True)
class UserFilter:
    email_contains: str | None = None
    is_active: bool | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class LoginRow:
    id: int
    password_hash: str | None
    is_active: bool


def to_user(r: asyncpg.Record) -> UserRow:
    return UserRow(
        r["id"],
        r["email"],
        r["display_name"],
        r["avatar_url"],
        r["is_active"],
        r["created_at"],
        r["updated_at"],
    )


def _maybe(r: asyncpg.Record | None) -> UserRow | None:
    return None if r is None else to_user(r)


async def select_by_ids(db: Database, ids: Sequence[int]) -> dict[int, UserRow]:
    return {r["id"]: to_user(r) for r in await db.fetch(SELECT_BY_IDS, list(ids))}


# A text with at most this many email suffixes (user_email_suffixes) is rare: its
# page is read from its matches. A text with more is common: a walk in id order
# of the emails holding its first four characters (of users, for a shorter
# text; of the deactivated users, for isActive: false) fills its page after
# ~page / (its share of what is walked) rows. Every common text pays the probe
# of RARE_SUFFIXES + 1 index entries (sql/queries/users/select_page_by_email.sql,
# bench/README.md, scale).
RARE_SUFFIXES = 2000


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_pattern(text: str) -> str:
    """The ILIKE pattern matching `text` anywhere (its \\ % _ taken literally)."""
    return f"%{_escaped(text)}%"


def prefix_pattern(text: str) -> str:
    """The LIKE pattern matching what starts with `text` (taken literally)."""
    return f"{_escaped(text)}%"


async def select_page(
    db: Database, after_id: int, flt: UserFilter, limit: int
) -> list[UserRow]:
    """A page of users by id. Each filter shape has its own statement, so that
    each keeps the plan of its index (see sql/queries/users/select_page.sql)."""
    text = flt.email_contains
    if text:
        role_id = None
        if flt.role is not None:
            # the role's id, not its name, lets the planner weigh the role's size
            role_id = {r.name: r.id for r in await role_store.select_all(db)}.get(
                flt.role
            )
            if role_id is None:
                return []
        # planned for this text, never with a bitmap (plan_text_filter.sql)
        async with db.transaction() as con:
            await con.execute(PLAN_TEXT_FILTER)
            prefix = prefix_pattern(text)
            if role_id is None:
                rows = await con.fetch(
                    SELECT_PAGE_BY_EMAIL,
                    after_id,
                    text,
                    prefix,
                    flt.is_active,
                    limit,
                    RARE_SUFFIXES,
                )
            else:
                rows = await con.fetch(
                    SELECT_PAGE_BY_EMAIL_AND_ROLE,
                    after_id,
                    text,
                    prefix,
                    role_id,
                    flt.is_active,
                    limit,
                    RARE_SUFFIXES,
                )
    elif flt.role is not None:
        rows = await db.fetch(
            SELECT_PAGE_BY_ROLE, after_id, flt.role, flt.is_active, limit
        )
    elif flt.is_active is not None:
        rows = await db.fetch(SELECT_PAGE_BY_ACTIVE, after_id, flt.is_active, limit)
    else:
        rows = await db.fetch(SELECT_PAGE, after_id, limit)
    return [to_user(r) for r in rows]


async def count_filtered(db: Database, flt: UserFilter) -> int:
    """How many users match: O(matches), as any exact count (O(users) unfiltered)."""
    pattern = contains_pattern(flt.email_contains) if flt.email_contains else None
    if flt.role is not None:
        count = await db.fetchval(COUNT_BY_ROLE, flt.role, pattern, flt.is_active)
    elif pattern is not None:
        count = await db.fetchval(COUNT_BY_EMAIL, pattern, flt.is_active)
    elif flt.is_active is not None:
        count = await db.fetchval(COUNT_BY_ACTIVE, flt.is_active)
    else:
        count = await db.fetchval(COUNT_ALL)
    return int(count)


async def select_members_by_role_ids(
    db: Database, role_ids: Sequence[int], after_id: int, limit: int
) -> dict[int, list[UserRow]]:
    out: dict[int, list[UserRow]] = {r: [] for r in role_ids}
    for r in await db.fetch(
        SELECT_MEMBERS_BY_ROLE_IDS, list(role_ids), after_id, limit
    ):
        out[r["role_id"]].append(to_user(r))
    return out


async def count_members_by_role_ids(
    db: Database, role_ids: Sequence[int]
) -> dict[int, int]:
    counts = {
        r["role_id"]: int(r["count"])
        for r in await db.fetch(COUNT_MEMBERS_BY_ROLE_IDS, list(role_ids))
    }
    return {r: counts.get(r, 0) for r in role_ids}


async def select_ids_after(db: Database, after_id: int, limit: int) -> list[int]:
    return [r["id"] for r in await db.fetch(SELECT_IDS_AFTER, after_id, limit)]


async def select_login_by_email(db: Database, email: str) -> LoginRow | None:
    r = await db.fetchrow(SELECT_LOGIN_BY_EMAIL, email)
    return None if r is None else LoginRow(r["id"], r["password_hash"], r["is_active"])


async def select_password_hash(db: Database, user_id: int) -> str | None:
    value = await db.fetchval(SELECT_PASSWORD_HASH, user_id)
    return None if value is None else str(value)


async def select_for_update(con: asyncpg.Connection, user_id: int) -> UserRow | None:
    return _maybe(await con.fetchrow(SELECT_FOR_UPDATE, user_id))


async def insert(
    con: asyncpg.Connection,
    email: str,
    display_name: str,
    avatar_url: str | None,
    password_hash: str | None,
) -> UserRow | None:
    return _maybe(
        await con.fetchrow(INSERT, email, display_name, avatar_url, password_hash)
    )


async def update_profile(
    con: asyncpg.Connection,
    user_id: int,
    display_name: str | None,
    avatar_url: str | None,
    *,
    clear_avatar: bool = False,
) -> UserRow | None:
    return _maybe(
        await con.fetchrow(
            UPDATE_PROFILE, user_id, display_name, avatar_url, clear_avatar
        )
    )


async def update_email(
    con: asyncpg.Connection, user_id: int, email: str
) -> UserRow | None:
    return _maybe(await con.fetchrow(UPDATE_EMAIL, user_id, email))


async def set_active(
    con: asyncpg.Connection, user_id: int, *, active: bool
) -> UserRow | None:
    return _maybe(await con.fetchrow(SET_ACTIVE, user_id, active))


async def update_password(
    con: asyncpg.Connection,
    user_id: int,
    password_hash: str,
    tokens_not_before: datetime,
) -> None:
    """Access tokens issued before `tokens_not_before` stop counting (a password change ends every session)."""
    await con.execute(UPDATE_PASSWORD, user_id, password_hash, tokens_not_before)


__all__ = [
    "LoginRow",
    "UserFilter",
    "contains_pattern",
    "count_filtered",
    "count_members_by_role_ids",
    "insert",
    "select_by_ids",
    "select_for_update",
    "select_ids_after",
    "select_login_by_email",
    "select_members_by_role_ids",
    "select_page",
    "select_password_hash",
    "set_active",
    "to_user",
    "update_email",
    "update_password",
    "update_profile",
]
