"""Users (users:write) and a user's own profile."""

from __future__ import annotations

import asyncpg

from permadmin import validate
from permadmin.refusals import Conflict, Invalid
from permadmin.unit import Actor, Work, snapshot, unit_of_work
from permauth.emails import normalize_email
from permauth.passwords import check_strength, hash_password
from permstore import users as user_store
from permstore.models import UserRow

PROFILE = ("email", "display_name", "avatar_url", "is_active")
OWN_PROFILE = ("display_name", "avatar_url")
TAKEN = "That email is already in use."


async def _update_profile(
    work: Work, user_id: int, display_name: str | None, avatar_url: str | None
) -> UserRow | None:
    """None leaves a field as it is; an empty avatar_url removes the avatar."""
    return await user_store.update_profile(
        work.con,
        user_id,
        display_name,
        avatar_url or None,
        clear_avatar=avatar_url == "",
    )


async def create_user(
    actor: Actor,
    email: str,
    display_name: str,
    avatar_url: str | None,
    password: str | None,
) -> UserRow:
    """password None: the user cannot log in until one is set."""
    validate.check(
        validate.email(email),
        validate.display_name(display_name),
        validate.avatar_url(avatar_url),
    )
    password_hash = None
    if password is not None:
        weak = check_strength(password)
        if weak:
            raise Invalid(weak, "password")
        password_hash = await hash_password(password)
    async with unit_of_work(actor) as work:
        row = await user_store.insert(
            work.con,
            normalize_email(email),
            display_name,
            avatar_url or None,
            password_hash,
        )
        if row is None:
            raise Conflict(TAKEN, "email")
        await work.audit("user.create", "user", row.id, None, snapshot(row, *PROFILE))
    return row


async def update_user(
    actor: Actor,
    user_id: int,
    email: str | None,
    display_name: str | None,
    avatar_url: str | None,
) -> UserRow:
    """Profile fields only: no permission change. None leaves a field as it is;
    an empty avatar_url removes the avatar."""
    validate.check(
        validate.email(email) if email is not None else None,
        validate.display_name(display_name),
        validate.avatar_url(avatar_url),
    )
    async with unit_of_work(actor) as work:
        rules = await work.rules("users:write")
        before = await user_store.select_for_update(work.con, user_id)
        if before is None:
            raise rules.unknown("user", user_id)
        await rules.change_user(user_id)
        after = await _update_profile(work, user_id, display_name, avatar_url)
        if email is not None and normalize_email(email) != before.email.lower():
            try:
                async with work.con.transaction():
                    after = await user_store.update_email(
                        work.con, user_id, normalize_email(email)
                    )
            except asyncpg.UniqueViolationError:
                raise Conflict(TAKEN, "email") from None
        assert after is not None  # noqa: S101 - row locked above
        await work.audit(
            "user.update",
            "user",
            user_id,
            snapshot(before, *PROFILE),
            snapshot(after, *PROFILE),
        )
    return after


async def set_active(actor: Actor, user_id: int, *, active: bool) -> UserRow:
    """Deactivated, the user's tokens stop working at once."""
    async with unit_of_work(actor) as work:
        rules = await work.rules("users:write")
        before = await user_store.select_for_update(work.con, user_id)
        if before is None:
            raise rules.unknown("user", user_id)
        await rules.change_user(user_id)
        if before.is_active == active:
            return before
        after = await user_store.set_active(work.con, user_id, active=active)
        assert after is not None  # noqa: S101 - row locked above
        if not active:
            await rules.guard_holder_remains()
        await work.audit(
            "user.reactivate" if active else "user.deactivate",
            "user",
            user_id,
            snapshot(before, "is_active"),
            snapshot(after, "is_active"),
        )
    return after


async def update_own_profile(
    actor: Actor, display_name: str | None, avatar_url: str | None
) -> UserRow:
    """The actor's own profile: no permission change."""
    validate.check(validate.display_name(display_name), validate.avatar_url(avatar_url))
    user_id = actor.user_id
    assert user_id is not None  # noqa: S101 - a signed-in actor only
    async with unit_of_work(actor) as work:
        before = await user_store.select_for_update(work.con, user_id)
        after = await _update_profile(work, user_id, display_name, avatar_url)
        assert before is not None  # noqa: S101 - the actor is active
        assert after is not None  # noqa: S101
        await work.audit(
            "user.update_self",
            "user",
            user_id,
            snapshot(before, *OWN_PROFILE),
            snapshot(after, *OWN_PROFILE),
        )
    return after


async def record_password_change(actor: Actor) -> None:
    """The audit row of a password change (permauth/sessions.py made it)."""
    assert actor.user_id is not None  # noqa: S101 - a signed-in actor only
    async with unit_of_work(actor) as work:
        await work.audit("user.change_password", "user", actor.user_id, None, None)


__all__ = [
    "create_user",
    "record_password_change",
    "set_active",
    "update_own_profile",
    "update_user",
]
