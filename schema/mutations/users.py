"""createUser, updateUser, deactivateUser, reactivateUser (users:write)."""

from __future__ import annotations

from typing import Annotated

import asyncpg
import strawberry

from loaders.factory import forget
from permauth.emails import normalize_email
from permauth.passwords import check_strength, hash_password
from permstore import users as user_store
from schema.context import Info
from schema.mutations import validate
from schema.mutations.results import (
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    UserPayload,
)
from schema.mutations.unit import Rollback, rolls_back, snapshot, unit_of_work
from schema.pagination import parse_id
from schema.permissions import needs

PROFILE = ("email", "display_name", "avatar_url", "is_active")

CreateUserResult = Annotated[
    UserPayload | InvalidInputError | ConflictError,
    strawberry.union("CreateUserResult"),
]
UpdateUserResult = Annotated[
    UserPayload | NotFoundError | InvalidInputError | ConflictError | NotAllowedError,
    strawberry.union("UpdateUserResult"),
]
SetUserActiveResult = Annotated[
    UserPayload | NotFoundError | NotAllowedError,
    strawberry.union("SetUserActiveResult"),
]


@strawberry.input
class CreateUserInput:
    email: str
    display_name: str = ""
    avatar_url: str | None = None
    password: str | None = strawberry.field(
        default=None, description="None: the user cannot log in until one is set."
    )


@strawberry.input
class UpdateUserInput:
    email: str | None = None
    display_name: str | None = None
    avatar_url: str | None = strawberry.field(
        default=None, description="An empty string removes the avatar."
    )


@rolls_back
async def _set_active(
    info: Info, id: strawberry.ID, *, active: bool
) -> SetUserActiveResult:
    uid = parse_id(id)
    async with unit_of_work(info.context) as work:
        rules = await work.rules("users:write")
        before = await user_store.select_for_update(work.con, uid)
        if before is None:
            raise rules.unknown("user", uid)
        await rules.change_user(uid)
        if before.is_active == active:
            return UserPayload(target=before)
        after = await user_store.set_active(work.con, uid, active=active)
        assert after is not None  # noqa: S101 - row locked above
        if not active:
            await rules.guard_holder_remains()
        await work.audit(
            "user.reactivate" if active else "user.deactivate",
            "user",
            uid,
            snapshot(before, "is_active"),
            snapshot(after, "is_active"),
        )
    forget(info.context.loaders.users_by_id, uid)
    return UserPayload(target=after)


@strawberry.type
class UserMutations:
    @strawberry.mutation(extensions=needs("users:write"))
    @rolls_back
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserResult:
        problem = validate.first_error(
            validate.email(input.email),
            validate.display_name(input.display_name),
            validate.avatar_url(input.avatar_url),
        )
        if problem:
            return problem
        password_hash = None
        if input.password is not None:
            weak = check_strength(input.password)
            if weak:
                return InvalidInputError(message=weak, field="password")
            password_hash = await hash_password(input.password)
        async with unit_of_work(info.context) as work:
            row = await user_store.insert(
                work.con,
                normalize_email(input.email),
                input.display_name,
                input.avatar_url or None,
                password_hash,
            )
            if row is None:
                raise Rollback(
                    ConflictError(
                        message="That email is already in use.", field="email"
                    )
                )
            await work.audit(
                "user.create", "user", row.id, None, snapshot(row, *PROFILE)
            )
        return UserPayload(target=row)

    @strawberry.mutation(
        extensions=needs("users:write"),
        description="Profile fields only: no permission change.",
    )
    @rolls_back
    async def update_user(
        self, info: Info, id: strawberry.ID, input: UpdateUserInput
    ) -> UpdateUserResult:
        uid = parse_id(id)
        problem = validate.first_error(
            validate.email(input.email) if input.email is not None else None,
            validate.display_name(input.display_name),
            validate.avatar_url(input.avatar_url),
        )
        if problem:
            return problem
        async with unit_of_work(info.context) as work:
            rules = await work.rules("users:write")
            before = await user_store.select_for_update(work.con, uid)
            if before is None:
                raise rules.unknown("user", uid)
            await rules.change_user(uid)
            after = await user_store.update_profile(
                work.con,
                uid,
                input.display_name,
                input.avatar_url or None,
                clear_avatar=input.avatar_url == "",
            )
            if (
                input.email is not None
                and normalize_email(input.email) != before.email.lower()
            ):
                try:
                    async with work.con.transaction():
                        after = await user_store.update_email(
                            work.con, uid, normalize_email(input.email)
                        )
                except asyncpg.UniqueViolationError:
                    raise Rollback(
                        ConflictError(
                            message="That email is already in use.", field="email"
                        )
                    ) from None
            assert after is not None  # noqa: S101 - row locked above
            await work.audit(
                "user.update",
                "user",
                uid,
                snapshot(before, *PROFILE),
                snapshot(after, *PROFILE),
            )
        forget(info.context.loaders.users_by_id, uid)
        return UserPayload(target=after)

    @strawberry.mutation(
        extensions=needs("users:write"),
        description="The user's tokens stop working at once.",
    )
    async def deactivate_user(
        self, info: Info, id: strawberry.ID
    ) -> SetUserActiveResult:
        return await _set_active(info, id, active=False)

    @strawberry.mutation(extensions=needs("users:write"))
    async def reactivate_user(
        self, info: Info, id: strawberry.ID
    ) -> SetUserActiveResult:
        return await _set_active(info, id, active=True)


__all__ = ["UserMutations"]
