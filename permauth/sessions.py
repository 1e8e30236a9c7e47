"""Login, refresh-token rotation, logout, password change, and the login throttle.

Refresh tokens rotate: each is spent by one refresh (an atomic UPDATE, so of two
concurrent refreshes exactly one wins) and replaced by the next one of its family.
Presenting a spent token again means it leaked: the whole family is revoked.

Sessions end at once (SECURITY.md, "What ends a session, and how fast"): every
access token names its family (`sid`); a logout or a detected reuse revokes the
family, a password change revokes every family and sets the user's "tokens not
before" time; the database's change log names the user (migration 0013), and
each of them returns only once the user's permission entry says so (`settle`,
as a permission change does), so the very next request sees it. Whoever issues or revokes a user's tokens holds the user's row
lock first: a revocation then either sees a concurrent refresh's new token or
makes that refresh fail.

Password checks (login, changePassword) are throttled, never locked out
(SECURITY.md, "Password guessing and throttling"): each attempt is charged to
three counters before the password is checked: (account, client address), the
address, the account; a counter past its free failures holds the next attempt for
base * 2^k seconds (capped), and a held attempt checks nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from permauth.emails import BadEmail, normalize_email
from permauth.passwords import check_strength, hash_password, verify_password
from permbase.errors import InvalidInput, Unauthenticated
from permstore import changes, tokens as token_store, users as user_store

if TYPE_CHECKING:
    import asyncpg

    from permauth.tokens import IssuedToken, TokenService
    from permbase.settings import Settings
    from permstore.db import Database
    from permstore.tokens import ThrottleRow

logger = logging.getLogger(__name__)

INVALID_CREDENTIALS = "Invalid email or password."
INVALID_REFRESH = "The refresh token is invalid, expired or already used."
TOO_MANY_ATTEMPTS = "Too many failed attempts; try again later."
WRONG_PASSWORD = "The current password is wrong."  # noqa: S105 - a message, not a password
PURGE_ONE_IN = 100  # one charged attempt in this many also forgets stale counters


@dataclass(frozen=True, slots=True)
class TokenPair:
    user_id: int
    family_id: str
    access: IssuedToken
    refresh: IssuedToken


@dataclass(frozen=True, slots=True)
class Throttled:
    """Too many failed password checks for this account or from this address:
    this attempt checked nothing. The next one may be counted in `retry_after_s`."""

    retry_after_s: int


async def _issue_pair(
    con: asyncpg.Connection, tokens: TokenService, user_id: int, family_id: str
) -> TokenPair:
    access = tokens.issue(user_id, "access", family_id=family_id)
    refresh = tokens.issue(user_id, "refresh", family_id=family_id)
    # a revoked family stays listed in the user's entry while this access token may be used
    access_until = access.expires_at + timedelta(seconds=tokens.leeway)
    await token_store.insert(
        con, refresh.jti, family_id, user_id, refresh.expires_at, access_until
    )
    return TokenPair(user_id, family_id, access, refresh)


async def login(
    db: Database,
    tokens: TokenService,
    settings: Settings,
    email: str,
    password: str,
    client: str | None = None,
) -> TokenPair | Throttled | None:
    """A token pair; Throttled when this attempt was held (no password checked);
    None for every other failure (same answer, same cost). `client`: the client's
    address."""
    try:
        email = normalize_email(
            email
        )  # the spelling it was stored in (permauth/emails.py)
        row = await user_store.select_login_by_email(db, email)
    except (
        BadEmail,
        InvalidInput,
    ):  # not an address, or text PostgreSQL cannot store: no such account
        email = email.strip().lower()
        row = None
    # counted the same whether the account exists or not: no enumeration signal
    attempt = _Attempt.of(None if row is None else row.id, email, client)
    held = await _charge(db, settings, attempt)
    if held is not None:
        return held
    # always verify (a dummy hash when the account is unknown), so that the time
    # taken does not tell whether the account exists
    ok, needs_rehash = await verify_password(
        None if row is None else row.password_hash, password
    )
    if row is None or not ok or not row.is_active:
        return None  # the attempt stays charged as a failure
    new_hash = await hash_password(password) if needs_rehash else None
    async with db.transaction() as con:
        # under the user's row lock: a password change or deactivation that
        # committed since the check above wins
        if await token_store.select_login_for_update(con, row.id) != (
            row.password_hash,
            True,
        ):
            return None
        if new_hash is not None and row.password_hash is not None:
            await token_store.record_login_success(
                con, row.id, new_hash, row.password_hash
            )
        await _settle(con, attempt)
        pair = await _issue_pair(con, tokens, row.id, str(uuid.uuid4()))
    logger.info("login user=%d", row.id)
    return pair


async def refresh(
    db: Database, tokens: TokenService, settle: changes.Settle, token: str
) -> TokenPair:
    claims = tokens.decode(token, "refresh")
    jti = str(claims["jti"])
    try:
        uuid.UUID(jti)
    except ValueError:
        raise Unauthenticated(INVALID_REFRESH) from None
    user_id = int(claims["sub"])
    async with db.transaction() as con:
        user = await user_store.select_for_update(
            con, user_id
        )  # the user's row lock first
        spent = None if user is None else await token_store.spend(con, jti)
        if (
            spent is not None
            and spent[1] == user_id
            and user is not None
            and user.is_active
        ):
            return await _issue_pair(con, tokens, user_id, spent[0])
    # not live: a reuse of a spent token revokes its family (committed before raising)
    if await _revoke_family_of(db, settle, jti):
        logger.warning("refresh token reuse or inactive user: family revoked")
    raise Unauthenticated(INVALID_REFRESH)


async def logout(
    db: Database, tokens: TokenService, settle: changes.Settle, token: str
) -> None:
    """Ends the refresh token's session: its family, and the access tokens issued in it."""
    claims = tokens.decode(token, "refresh")
    await _revoke_family_of(db, settle, str(claims["jti"]))


async def _revoke_family_of(db: Database, settle: changes.Settle, jti: str) -> bool:
    """Revoke the family of a known token; False: no such token."""
    async with db.transaction() as con:
        found = await token_store.family_of(con, jti)
        if found is None:
            return False
        family_id, user_id = found
        # waits for a refresh of this user in flight; the revocation below, a new
        # statement, then sees the token that refresh issued
        await user_store.select_for_update(con, user_id)
        if await token_store.revoke_family(con, family_id) == 0:
            return True  # revoked before: its user's entry already says so
        xid, _ = await changes.select_xid(con)  # the revocation is logged
    # committed: the user's entry lists the family from the next request on
    await settle(xid)
    return True


async def change_password(
    db: Database,
    settle: changes.Settle,
    settings: Settings,
    user_id: int,
    current: str,
    new: str,
    client: str | None = None,
) -> Throttled | None:
    """None: changed, and every session of the user has ended (its tokens, this
    caller's included, are refused from the next request on). Throttled: held,
    nothing checked. Raises InvalidInput for a weak new password or a wrong current
    one (a failure for the throttle, as a failed login)."""
    problem = check_strength(new)
    if problem:
        raise InvalidInput(problem, field="newPassword")
    attempt = _Attempt.of(user_id, "", client)
    held = await _charge(db, settings, attempt)
    if held is not None:
        return held
    stored = await user_store.select_password_hash(db, user_id)
    ok, _ = await verify_password(stored, current)
    if not ok:
        raise InvalidInput(WRONG_PASSWORD, field="currentPassword")
    new_hash = await hash_password(new)
    async with db.transaction() as con:
        verified = await token_store.select_login_for_update(con, user_id)
        if verified is None or verified[0] != stored:  # changed meanwhile
            raise InvalidInput(WRONG_PASSWORD, field="currentPassword")
        # taken under the row lock: every token issued before it (a login or a
        # refresh holds the same lock while issuing) is older than this
        not_before = datetime.now(UTC)
        await user_store.update_password(con, user_id, new_hash, not_before)
        await token_store.revoke_user(con, user_id)
        await _settle(con, attempt)
        xid, _ = await changes.select_xid(con)  # the not-before time is logged
    await settle(xid)
    logger.info("password changed user=%d", user_id)
    return None


# -- the throttle ----------------------------------------------------------------


def _address(client: str | None) -> str:
    """The client address as counted: IPv6 by its /64 (one subscriber holds a
    whole /64, so per address would be per guess), IPv4-mapped IPv6 as IPv4."""
    if not client:
        return "unknown"
    try:
        ip = ipaddress.ip_address(client)
    except ValueError:
        return client[:256]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _key(*parts: str) -> bytes:
    # surrogatepass: a lone surrogate in an e-mail is a guess like any other
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class _Attempt:
    """The three counters one password check is charged to."""

    pair: bytes
    address: bytes
    account: bytes
    user_id: int | None

    @classmethod
    def of(cls, user_id: int | None, email: str, client: str | None) -> _Attempt:
        # a known account by id (an e-mail change keeps its counters), an unknown
        # one by its e-mail as looked up: both are counted alike
        account = f"user:{user_id}" if user_id is not None else f"email:{email.lower()}"
        address = _address(client)
        return cls(
            _key("pair", account, address),
            _key("address", address),
            _key("account", account),
            user_id,
        )


def _wait(row: ThrottleRow, free: int, settings: Settings) -> float:
    """Seconds before this counter lets the next attempt through."""
    age = row.failure_age_s
    if age is None or age >= settings.login_throttle_reset_s or row.failures < free:
        return 0.0
    delay = settings.login_throttle_base_s * 2.0 ** min(row.failures - free, 60)
    return max(0.0, min(delay, settings.login_throttle_max_s) - age)


async def _charge(
    db: Database, settings: Settings, attempt: _Attempt
) -> Throttled | None:
    """Charge the attempt to its counters as a failure, before the password is
    checked (a success refunds it), so that concurrent guesses are counted one
    after the other under the counters' row locks; Throttled (nothing charged)
    when a counter holds it."""
    keys = sorted([attempt.pair, attempt.address, attempt.account])
    owners = [None if k == attempt.address else attempt.user_id for k in keys]
    async with db.transaction() as con:
        rows = {r.key: r for r in await token_store.lock_throttle(con, keys, owners)}
        pair = rows[attempt.pair]
        # an address the account logged in from lately is not held by the
        # account-wide counter: strangers elsewhere cannot keep the owner out
        known = (
            pair.success_age_s is not None
            and pair.success_age_s < settings.login_throttle_trust_s
        )
        wait = max(
            _wait(pair, settings.login_throttle_pair_free, settings),
            _wait(
                rows[attempt.address], settings.login_throttle_address_free, settings
            ),
            0.0
            if known
            else _wait(
                rows[attempt.account], settings.login_throttle_account_free, settings
            ),
        )
        if wait > 0:
            logger.info("password check held for %.0f s", wait)
            return Throttled(max(1, math.ceil(wait)))
        await token_store.charge_throttle(con, keys, settings.login_throttle_reset_s)
    if secrets.randbelow(PURGE_ONE_IN) == 0:
        await token_store.purge_throttle(
            db, max(settings.login_throttle_reset_s, settings.login_throttle_trust_s)
        )
    return None


async def _settle(con: asyncpg.Connection, attempt: _Attempt) -> None:
    """The password was right: the pair starts again, the charge is refunded."""
    await token_store.settle_throttle(
        con, attempt.pair, [attempt.address, attempt.account]
    )


__all__ = [
    "INVALID_CREDENTIALS",
    "TOO_MANY_ATTEMPTS",
    "WRONG_PASSWORD",
    "Throttled",
    "TokenPair",
    "change_password",
    "login",
    "logout",
    "refresh",
]
