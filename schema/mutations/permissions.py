"""createPermission, deletePermission (permissions:write) and the admin cache
flush: adapters of permadmin/permissions.py."""

from __future__ import annotations

from typing import Annotated

import strawberry

from permadmin import permissions as operations
from schema.context import Info
from schema.mutations.outcome import answers_refusals
from schema.mutations.results import (
    CacheInvalidated,
    ConflictError,
    Deleted,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    PermissionPayload,
)
from schema.pagination import parse_id
from schema.permissions import needs
from schema.types import Permission

CreatePermissionResult = Annotated[
    PermissionPayload | InvalidInputError | ConflictError | NotAllowedError,
    strawberry.union("CreatePermissionResult"),
]
DeletePermissionResult = Annotated[
    Deleted | NotFoundError | NotAllowedError,
    strawberry.union("DeletePermissionResult"),
]
InvalidateResult = Annotated[
    CacheInvalidated | NotFoundError, strawberry.union("InvalidateResult")
]


@strawberry.type
class PermissionMutations:
    @strawberry.mutation(
        extensions=needs("permissions:write"),
        description="Nobody holds a new permission: nothing to invalidate.",
    )
    @answers_refusals
    async def create_permission(
        self, info: Info, code: str, description: str = ""
    ) -> CreatePermissionResult:
        row = await operations.create_permission(
            info.context.actor(), code, description
        )
        return PermissionPayload(permission=Permission.from_row(row))

    @strawberry.mutation(
        extensions=needs("permissions:write"),
        description="Every holder loses it at once. Only a holder deletes a code; permgraph's own codes stay.",
    )
    @answers_refusals
    async def delete_permission(
        self, info: Info, id: strawberry.ID
    ) -> DeletePermissionResult:
        pid = parse_id(id)
        done = await operations.delete_permission(info.context.actor(), pid)
        return Deleted(id=strawberry.ID(str(pid)), affected_users=done.affected_users)

    @strawberry.mutation(
        extensions=needs("permissions:write"),
        description="Drop one user's cached entry, or everyone's when userId is omitted.",
    )
    @answers_refusals
    async def invalidate_permission_cache(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> InvalidateResult:
        uid = None if user_id is None else parse_id(user_id, "userId")
        confirmed = await operations.invalidate_cache(info.context.actor(), uid)
        return CacheInvalidated(
            all_users=uid is None,
            user_id=None if uid is None else strawberry.ID(str(uid)),
            confirmed=confirmed,
        )


__all__ = ["PermissionMutations"]
