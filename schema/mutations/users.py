"""createUser, updateUser, deactivateUser, reactivateUser (users:write):
adapters of permadmin/users.py."""

from __future__ import annotations

from typing import Annotated

import strawberry

from loaders.factory import forget
from permadmin import users as operations
from schema.context import Info
from schema.mutations.outcome import answers_refusals
from schema.mutations.results import (
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    UserPayload,
)
from schema.pagination import parse_id
from schema.permissions import needs

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


@answers_refusals
async def _set_active(
    info: Info, id: strawberry.ID, *, active: bool
) -> SetUserActiveResult:
    uid = parse_id(id)
    ctx = info.context
    row = await operations.set_active(ctx.actor(), uid, active=active)
    forget(ctx.loaders.users_by_id, uid)
    return UserPayload(target=row)


@strawberry.type
class UserMutations:
    @strawberry.mutation(extensions=needs("users:write"))
    @answers_refusals
    async def create_user(self, info: Info, input: CreateUserInput) -> CreateUserResult:
        row = await operations.create_user(
            info.context.actor(),
            input.email,
            input.display_name,
            input.avatar_url,
            input.password,
        )
        return UserPayload(target=row)

    @strawberry.mutation(
        extensions=needs("users:write"),
        description="Profile fields only: no permission change.",
    )
    @answers_refusals
    async def update_user(
        self, info: Info, id: strawberry.ID, input: UpdateUserInput
    ) -> UpdateUserResult:
        uid = parse_id(id)
        ctx = info.context
        row = await operations.update_user(
            ctx.actor(), uid, input.email, input.display_name, input.avatar_url
        )
        forget(ctx.loaders.users_by_id, uid)
        return UserPayload(target=row)

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
