"""Login, refresh-token rotation, logout and password change.

Refresh tokens rotate: each is spent by one refresh (an atomic UPDATE, so of two
concurrent refreshes exactly one wins) and replaced by the next one of its family.
Presenting a spent token again means it leaked: the whole family is revoked.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from api.errors import InvalidInput, Unauthenticated
from api.passwords import check_strength, hash_password, verify_password
from api.store import tokens as token_store, users as user_store

if TYPE_CHECKING:
    import asyncpg

    from api.auth import IssuedToken, TokenService
    from api.db import Database
    from api.settings import Settings

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_REFRESH = "The refresh token is invalid, expired or already used."


@dataclass(frozen=True, slots=True)
class TokenPair:
    user_id: int
    family_id: str
    access: IssuedToken
    refresh: IssuedToken


async def _issue_pair(
    con: asyncpg.Connection, tokens: TokenService, user_id: int, family_id: str
) -> TokenPair:
    access = tokens.issue(user_id, "access")
    refresh = tokens.issue(user_id, "refresh", family_id=family_id)
    await token_store.insert(con, refresh.jti, family_id, user_id, refresh.expires_at)
    return TokenPair(user_id, family_id, access, refresh)


async def login(
    db: Database, tokens: TokenService, settings: Settings, email: str, password: str
) -> TokenPair | None:
    """A token pair, or None for every kind of failure (same answer, same cost)."""
    try:
        row = await user_store.select_login_by_email(db, email.strip())
    except InvalidInput:  # text PostgreSQL cannot store (a NUL): no such account
        row = None
    locked = bool(row and row.locked_until and row.locked_until > datetime.now(UTC))
    # always verify (a dummy hash when the account is unknown or locked), so that
    # the time taken does not tell whether the account exists
    ok, needs_rehash = await verify_password(
        row.password_hash if row and not locked else None, password
    )
    if row is None or locked or not ok or not row.is_active:
        if row is not None and not locked:
            async with db.connection() as con:
                await token_store.record_login_failure(
                    con, row.id, settings.login_max_failures, settings.login_lockout_s
                )
        return None
    new_hash = await hash_password(password) if needs_rehash else None
    async with db.transaction() as con:
        await token_store.record_login_success(con, row.id, new_hash)
        pair = await _issue_pair(con, tokens, row.id, str(uuid.uuid4()))
    logger.info("login user=%d", row.id)
    return pair


async def refresh(db: Database, tokens: TokenService, token: str) -> TokenPair:
    claims = tokens.decode(token, "refresh")
    jti = str(claims["jti"])
    try:
        uuid.UUID(jti)
    except ValueError:
        raise Unauthenticated(INVALID_REFRESH) from None
    async with db.transaction() as con:
        spent = await token_store.spend(con, jti)
        if spent is not None:
            family_id, user_id = spent
            user = await user_store.select_for_update(con, user_id)
            if user is not None and user.is_active:
                return await _issue_pair(con, tokens, user_id, family_id)
    # not live: a reuse of a spent token revokes its family (committed before raising)
    async with db.transaction() as con:
        family_id_of = await token_store.family_of(con, jti)
        if family_id_of is not None:
            await token_store.revoke_family(con, family_id_of)
            logger.warning("refresh token reuse or inactive user: family revoked")
    raise Unauthenticated(INVALID_REFRESH)


async def logout(db: Database, tokens: TokenService, token: str) -> None:
    claims = tokens.decode(token, "refresh")
    async with db.transaction() as con:
        family_id = await token_store.family_of(con, str(claims["jti"]))
        if family_id is not None:
            await token_store.revoke_family(con, family_id)


async def change_password(db: Database, user_id: int, current: str, new: str) -> None:
    """Raises InvalidInput for a wrong current password or a weak new one."""
    problem = check_strength(new)
    if problem:
        raise InvalidInput(problem, field="newPassword")
    stored = await user_store.select_password_hash(db, user_id)
    ok, _ = await verify_password(stored, current)
    if not ok:
        raise InvalidInput("The current password is wrong.", field="currentPassword")
    new_hash = await hash_password(new)
    async with db.transaction() as con:
        await user_store.update_password(con, user_id, new_hash)
        await token_store.revoke_user(con, user_id)
    logger.info("password changed user=%d", user_id)


__all__ = ["INVALID_CREDENTIALS", "TokenPair", "change_password", "login", "logout", "refresh"]
