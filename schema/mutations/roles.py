"""Role membership and role definitions (roles:write): adapters of
permadmin/roles.py."""

from __future__ import annotations

from typing import Annotated

import strawberry

from loaders.factory import forget
from permadmin import roles as operations
from schema.context import Info
from schema.mutations.outcome import answers_refusals
from schema.mutations.results import (
    ConflictError,
    Deleted,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
    RoleAssignment,
    RoleGrant,
    RolePayload,
)
from schema.pagination import parse_id
from schema.permissions import needs
from schema.types import Permission

RoleAssignmentResult = Annotated[
    RoleAssignment | NotFoundError | NotAllowedError,
    strawberry.union("RoleAssignmentResult"),
]
RoleResult = Annotated[
    RolePayload | NotFoundError | InvalidInputError | ConflictError | NotAllowedError,
    strawberry.union("RoleResult"),
]
RoleGrantResult = Annotated[
    RoleGrant | NotFoundError | InvalidInputError | NotAllowedError,
    strawberry.union("RoleGrantResult"),
]
DeleteResult = Annotated[
    Deleted | NotFoundError | NotAllowedError, strawberry.union("DeleteResult")
]


@strawberry.input
class CreateRoleInput:
    name: str
    description: str = ""
    permission_codes: list[str] = strawberry.field(default_factory=list)


@strawberry.input
class UpdateRoleInput:
    name: str | None = None
    description: str | None = None


@answers_refusals
async def _change_membership(
    info: Info, user_id: strawberry.ID, role_id: strawberry.ID, *, assign: bool
) -> RoleAssignmentResult:
    uid, rid = parse_id(user_id, "userId"), parse_id(role_id, "roleId")
    done = await operations.change_membership(
        info.context.actor(), uid, rid, assign=assign
    )
    return RoleAssignment(target=done.user, role_row=done.role, changed=done.changed)


@answers_refusals
async def _change_grant(
    info: Info, role_id: strawberry.ID, code: str, *, grant: bool
) -> RoleGrantResult:
    rid = parse_id(role_id, "roleId")
    ctx = info.context
    done = await operations.change_grant(ctx.actor(), rid, code, grant=grant)
    forget(ctx.loaders.permissions_by_role_id, rid)
    return RoleGrant(
        role_row=done.role,
        permission=Permission.from_row(done.permission),
        changed=done.changed,
    )


@strawberry.type
class RoleMutations:
    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="Idempotent: changed=false when already held.",
    )
    async def assign_role(
        self, info: Info, user_id: strawberry.ID, role_id: strawberry.ID
    ) -> RoleAssignmentResult:
        return await _change_membership(info, user_id, role_id, assign=True)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="Idempotent: changed=false when not held.",
    )
    async def remove_role(
        self, info: Info, user_id: strawberry.ID, role_id: strawberry.ID
    ) -> RoleAssignmentResult:
        return await _change_membership(info, user_id, role_id, assign=False)

    @strawberry.mutation(extensions=needs("roles:write"))
    @answers_refusals
    async def create_role(self, info: Info, input: CreateRoleInput) -> RoleResult:
        role = await operations.create_role(
            info.context.actor(), input.name, input.description, input.permission_codes
        )
        return RolePayload(role_row=role)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="A rename refreshes the holders' cached entries.",
    )
    @answers_refusals
    async def update_role(
        self, info: Info, id: strawberry.ID, input: UpdateRoleInput
    ) -> RoleResult:
        rid = parse_id(id)
        ctx = info.context
        role = await operations.update_role(
            ctx.actor(), rid, input.name, input.description
        )
        forget(ctx.loaders.roles_by_id, rid)
        return RolePayload(role_row=role)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="Holders lose the role's permissions at once.",
    )
    @answers_refusals
    async def delete_role(self, info: Info, id: strawberry.ID) -> DeleteResult:
        rid = parse_id(id)
        ctx = info.context
        done = await operations.delete_role(ctx.actor(), rid)
        forget(ctx.loaders.roles_by_id, rid)
        return Deleted(id=strawberry.ID(str(rid)), affected_users=done.affected_users)

    @strawberry.mutation(extensions=needs("roles:write"))
    async def grant_permission(
        self, info: Info, role_id: strawberry.ID, code: str
    ) -> RoleGrantResult:
        return await _change_grant(info, role_id, code, grant=True)

    @strawberry.mutation(extensions=needs("roles:write"))
    async def revoke_permission(
        self, info: Info, role_id: strawberry.ID, code: str
    ) -> RoleGrantResult:
        return await _change_grant(info, role_id, code, grant=False)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="The role's permissions become exactly `codes`.",
    )
    @answers_refusals
    async def set_role_permissions(
        self, info: Info, role_id: strawberry.ID, codes: list[str]
    ) -> RoleResult:
        rid = parse_id(role_id, "roleId")
        ctx = info.context
        role = await operations.set_role_permissions(ctx.actor(), rid, codes)
        forget(ctx.loaders.permissions_by_role_id, rid)
        return RolePayload(role_row=role)


__all__ = ["RoleMutations"]
