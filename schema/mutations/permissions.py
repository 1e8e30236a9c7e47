"""createPermission, deletePermission (permissions:write) and the admin cache flush."""

from __future__ import annotations

from typing import Annotated

import strawberry

from permcore.delegation import RESERVED_RESOURCES
from permstore import (
    changes,
    permissions as permission_store,
    roles as role_store,
    users as user_store,
)
from schema.context import Info
from schema.mutations import validate
from schema.mutations.results import (
    CacheInvalidated,
    ConflictError,
    Deleted,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    PermissionPayload,
    not_found,
)
from schema.mutations.unit import Rollback, rolls_back, unit_of_work
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
    @rolls_back
    async def create_permission(
        self, info: Info, code: str, description: str = ""
    ) -> CreatePermissionResult:
        problem = validate.first_error(
            validate.permission_code(code), validate.description(description)
        )
        if problem:
            return problem
        if code.split(":", 1)[0] in RESERVED_RESOURCES:
            return NotAllowedError(
                message=f"Codes of {code.split(':', 1)[0]!r} are permgraph's own: only its seed creates them.",
                missing_permissions=[],
            )
        async with unit_of_work(info.context) as work:
            row = await permission_store.insert(work.con, code, description)
            if row is None:
                raise Rollback(
                    ConflictError(message=f"Permission {code!r} exists.", field="code")
                )
            await work.audit(
                "permission.create",
                "permission",
                row.id,
                None,
                {"code": code, "description": description},
            )
        return PermissionPayload(permission=Permission.from_row(row))

    @strawberry.mutation(
        extensions=needs("permissions:write"),
        description="Every holder loses it at once. Only a holder deletes a code; permgraph's own codes stay.",
    )
    @rolls_back
    async def delete_permission(
        self, info: Info, id: strawberry.ID
    ) -> DeletePermissionResult:
        pid = parse_id(id)
        async with unit_of_work(info.context) as work:
            rules = await work.rules("permissions:write")
            found = await permission_store.select_by_ids(work.con, [pid])
            if pid not in found:
                raise rules.unknown("permission", pid)
            await rules.delete_permission(pid, found[pid].code)
            holders = await role_store.holders_of_permission(work.con, pid)
            row = await permission_store.delete(work.con, pid)
            assert row is not None  # noqa: S101 - privilege changes are serialised
            await rules.guard_holder_remains()
            await work.audit(
                "permission.delete",
                "permission",
                pid,
                {"code": row.code, "holders": len(holders)},
                None,
            )
        return Deleted(id=strawberry.ID(str(pid)), affected_users=len(holders))

    @strawberry.mutation(
        extensions=needs("permissions:write"),
        description="Drop one user's cached entry, or everyone's when userId is omitted.",
    )
    async def invalidate_permission_cache(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> InvalidateResult:
        ctx = info.context
        uid = None if user_id is None else parse_id(user_id, "userId")
        # whether an id exists is told only to a caller who may read users
        may_read = "users:read" in ctx.viewer_access().permissions
        if (
            uid is not None
            and may_read
            and (await user_store.select_by_ids(ctx.db, [uid])).get(uid) is None
        ):
            return not_found("user", uid)
        async with unit_of_work(ctx) as work:
            await work.audit(
                "cache.invalidate", "user" if uid else "cache", uid or "all", None, None
            )
            await changes.insert(work.con, None if uid is None else [uid])
        return CacheInvalidated(
            all_users=uid is None,
            user_id=None if uid is None else strawberry.ID(str(uid)),
            confirmed=work.confirmed,
        )


__all__ = ["PermissionMutations"]
