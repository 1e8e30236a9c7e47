"""login, refreshToken, logout, and the caller's own profile and password."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from loaders.factory import forget
from permadmin import users as user_operations
from permauth import sessions
from permbase.errors import InvalidInput, Unauthenticated
from schema.context import Info
from schema.mutations.outcome import answers_refusals
from schema.mutations.results import InvalidInputError, UserPayload
from schema.permissions import authenticated
from schema.types import User


@strawberry.type
class AuthPayload:
    access_token: str
    access_token_expires_at: datetime
    refresh_token: str
    refresh_token_expires_at: datetime
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    user: User | None = None


@strawberry.type
class AuthError:
    message: str
    code: str
    retry_after_seconds: int | None = strawberry.field(
        default=None,
        description="TOO_MANY_ATTEMPTS: when the next attempt may be counted.",
    )


@strawberry.type
class PasswordChanged:
    ok: bool = True


LoginResult = Annotated[AuthPayload | AuthError, strawberry.union("LoginResult")]
RefreshResult = Annotated[AuthPayload | AuthError, strawberry.union("RefreshResult")]
ChangePasswordResult = Annotated[
    PasswordChanged | InvalidInputError | AuthError,
    strawberry.union("ChangePasswordResult"),
]
UpdateMeResult = Annotated[
    UserPayload | InvalidInputError, strawberry.union("UpdateMeResult")
]


def _held(throttled: sessions.Throttled) -> AuthError:
    return AuthError(
        message=sessions.TOO_MANY_ATTEMPTS,
        code="TOO_MANY_ATTEMPTS",
        retry_after_seconds=throttled.retry_after_s,
    )


async def _payload(info: Info, pair: sessions.TokenPair) -> AuthPayload:
    row = await info.context.loaders.users_by_id.load(pair.user_id)
    return AuthPayload(
        access_token=pair.access.token,
        access_token_expires_at=pair.access.expires_at,
        refresh_token=pair.refresh.token,
        refresh_token_expires_at=pair.refresh.expires_at,
        user=None if row is None else User.from_row(row),
    )


@strawberry.type
class AuthMutations:
    @strawberry.mutation(
        description="Same answer for an unknown email, a wrong password and an inactive account. "
        "TOO_MANY_ATTEMPTS (with retryAfterSeconds, no password checked) after repeated failures "
        "for this account from this address, or from this address."
    )
    async def login(self, info: Info, email: str, password: str) -> LoginResult:
        ctx = info.context
        if len(email) > 254 or len(password) > 1024:
            return AuthError(
                message=sessions.INVALID_CREDENTIALS, code="INVALID_CREDENTIALS"
            )
        pair = await sessions.login(
            ctx.db, ctx.tokens, ctx.settings, email, password, ctx.client
        )
        if pair is None:
            return AuthError(
                message=sessions.INVALID_CREDENTIALS, code="INVALID_CREDENTIALS"
            )
        if isinstance(pair, sessions.Throttled):
            return _held(pair)
        return await _payload(info, pair)

    @strawberry.mutation(
        description="One-time use: returns a new pair; reusing a spent token revokes its family."
    )
    async def refresh_token(self, info: Info, token: str) -> RefreshResult:
        ctx = info.context
        try:
            pair = await sessions.refresh(ctx.db, ctx.tokens, ctx.settle, token)
        except Unauthenticated as exc:
            return AuthError(message=exc.message, code="INVALID_TOKEN")
        return await _payload(info, pair)

    @strawberry.mutation(
        description="Ends the refresh token's session: its family (every token rotated from one login) "
        "and the access tokens issued in it, from the next request on."
    )
    async def logout(self, info: Info, refresh_token: str) -> bool:
        ctx = info.context
        try:
            await sessions.logout(ctx.db, ctx.tokens, ctx.settle, refresh_token)
        except Unauthenticated:
            return False
        return True

    @strawberry.mutation(
        extensions=authenticated(), description="Own profile: no permission change."
    )
    @answers_refusals
    async def update_me(
        self, info: Info, display_name: str | None = None, avatar_url: str | None = None
    ) -> UpdateMeResult:
        ctx = info.context
        ctx.viewer_access()  # an active caller in a live session
        row = await user_operations.update_own_profile(
            ctx.actor(), display_name, avatar_url
        )
        forget(ctx.loaders.users_by_id, row.id)
        return UserPayload(target=row)

    @strawberry.mutation(
        extensions=authenticated(),
        description="Ends every session of the caller (this one too: log in again with the new password). "
        "A wrong current password counts toward the login throttle (TOO_MANY_ATTEMPTS).",
    )
    async def change_password(
        self, info: Info, current_password: str, new_password: str
    ) -> ChangePasswordResult:
        ctx = info.context
        uid = ctx.viewer_access().user_id
        if len(current_password) > 1024:  # as login: not worth hashing
            return InvalidInputError(
                message=sessions.WRONG_PASSWORD, field="currentPassword"
            )
        try:
            held = await sessions.change_password(
                ctx.db,
                ctx.settle,
                ctx.settings,
                uid,
                current_password,
                new_password,
                ctx.client,
            )
        except InvalidInput as exc:
            return InvalidInputError(
                message=exc.message, field=str(exc.extra.get("field", ""))
            )
        if held is not None:
            return _held(held)
        # the caller's session has ended too: later fields of this document see it
        # (the password's transaction settled: the caller's entry is reloaded)
        await user_operations.record_password_change(ctx.actor())
        return PasswordChanged()


__all__ = ["AuthMutations"]
