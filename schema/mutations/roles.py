"""Role membership and role definitions (roles:write).

Invalidation: a user's role change -> that user; a role's permission change,
rename or deletion -> every holder of the role, read in the same transaction
after the role row is locked.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import strawberry

from loaders.factory import forget
from permstore import (
    permissions as permission_store,
    roles as role_store,
    users as user_store,
)
from permstore.models import RoleRow
from schema.context import Info
from schema.mutations import validate
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
from schema.mutations.unit import Rollback, Work, rolls_back, snapshot, unit_of_work
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


async def _locked_role(work: Work, role_id: int) -> RoleRow:
    """The role, locked; after the delegation lock, so unknown and forbidden
    look the same to a caller who may not read roles."""
    rules = await work.rules("roles:write")
    role = await role_store.select_for_update(work.con, role_id)
    if role is None:
        raise rules.unknown("role", role_id)
    return role


async def _codes_of_role(work: Work, role_id: int) -> list[str]:
    grants = await permission_store.select_by_role_ids(work.con, [role_id])
    return [p.code for p in grants[role_id]]


async def _resolve_codes(work: Work, codes: list[str], field: str) -> list[int]:
    wanted = sorted(set(codes))
    for code in wanted:
        problem = validate.permission_code(code, field)
        if problem:
            raise Rollback(problem)
    found = await permission_store.select_by_codes(
        work.con, wanted
    )  # one query for all
    for code in wanted:
        if code not in found:
            raise Rollback(
                InvalidInputError(message=f"Unknown permission {code!r}.", field=field)
            )
    return [found[code].id for code in wanted]


@rolls_back
async def _change_membership(
    info: Info, user_id: strawberry.ID, role_id: strawberry.ID, *, assign: bool
) -> RoleAssignmentResult:
    uid, rid = parse_id(user_id, "userId"), parse_id(role_id, "roleId")
    ctx = info.context
    async with unit_of_work(ctx) as work:
        rules = await work.rules("roles:write")
        user = await user_store.select_for_update(work.con, uid)
        if user is None:
            raise rules.unknown("user", uid)
        role = await _locked_role(work, rid)
        role_codes = await _codes_of_role(work, rid)
        # the user before, and after: plus the role's codes when assigned
        await rules.change_user(uid, gaining=role_codes if assign else ())
        if assign:
            changed = await role_store.assign(work.con, uid, rid, ctx.viewer_id)
        else:
            changed = await role_store.unassign(work.con, uid, rid)
            if changed:
                await rules.guard_holder_remains()
        if changed:
            role_ref = {"role_id": rid, "role": role.name}
            if assign:
                await work.audit("user.assign_role", "user", uid, None, role_ref)
            else:
                await work.audit("user.remove_role", "user", uid, role_ref, None)
    return RoleAssignment(target=user, role_row=role, changed=changed)


@rolls_back
async def _change_grant(
    info: Info, role_id: strawberry.ID, code: str, *, grant: bool
) -> RoleGrantResult:
    rid = parse_id(role_id, "roleId")
    problem = validate.permission_code(code)
    if problem:
        return problem
    ctx = info.context
    async with unit_of_work(ctx) as work:
        rules = await work.rules("roles:write")
        role = await _locked_role(work, rid)
        permission = await permission_store.select_by_code(work.con, code)
        if permission is None:
            raise Rollback(
                InvalidInputError(message=f"Unknown permission {code!r}.", field="code")
            )
        before = await _codes_of_role(work, rid)
        after = {*before, code} if grant else set(before) - {code}
        await rules.change_role(rid, before, after=after, holders_lose=not grant)
        if grant:
            changed = await role_store.grant(work.con, rid, permission.id)
        else:
            changed = await role_store.revoke(work.con, rid, permission.id)
            if changed:
                await rules.guard_holder_remains()
        if changed:
            if grant:
                await work.audit(
                    "role.grant_permission", "role", rid, None, {"permission": code}
                )
            else:
                await work.audit(
                    "role.revoke_permission",
                    "role",
                    rid,
                    {"permission": code},
                    None,
                )
    forget(ctx.loaders.permissions_by_role_id, rid)
    return RoleGrant(
        role_row=role, permission=Permission.from_row(permission), changed=changed
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
    @rolls_back
    async def create_role(self, info: Info, input: CreateRoleInput) -> RoleResult:
        problem = validate.first_error(
            validate.role_name(input.name), validate.description(input.description)
        )
        if problem:
            return problem
        ctx = info.context
        async with unit_of_work(ctx) as work:
            rules = await work.rules("roles:write")
            permission_ids = await _resolve_codes(
                work, input.permission_codes, "permissionCodes"
            )
            await rules.grant(input.permission_codes)
            role = await role_store.insert(work.con, input.name, input.description)
            if role is None:
                raise Rollback(
                    ConflictError(
                        message=f"A role named {input.name!r} exists.", field="name"
                    )
                )
            await role_store.replace_grants(work.con, role.id, permission_ids)
            after = {
                **snapshot(role, "name", "description"),
                "permissions": sorted(set(input.permission_codes)),
            }
            await work.audit("role.create", "role", role.id, None, after)
        return RolePayload(role_row=role)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="A rename refreshes the holders' cached entries.",
    )
    @rolls_back
    async def update_role(
        self, info: Info, id: strawberry.ID, input: UpdateRoleInput
    ) -> RoleResult:
        rid = parse_id(id)
        problem = validate.first_error(
            validate.role_name(input.name) if input.name is not None else None,
            validate.description(input.description),
        )
        if problem:
            return problem
        ctx = info.context
        async with unit_of_work(ctx) as work:
            before = await _locked_role(work, rid)
            await (await work.rules("roles:write")).change_role(
                rid, await _codes_of_role(work, rid)
            )
            try:
                async with (
                    work.con.transaction()
                ):  # savepoint: a taken name is a result
                    role = await role_store.update(
                        work.con, rid, input.name, input.description
                    )
            except asyncpg.UniqueViolationError:
                raise Rollback(
                    ConflictError(
                        message=f"A role named {input.name!r} exists.", field="name"
                    )
                ) from None
            assert role is not None  # noqa: S101 - row locked above
            await work.audit(
                "role.update",
                "role",
                rid,
                snapshot(before, "name", "description"),
                snapshot(role, "name", "description"),
            )
        forget(ctx.loaders.roles_by_id, rid)
        return RolePayload(role_row=role)

    @strawberry.mutation(
        extensions=needs("roles:write"),
        description="Holders lose the role's permissions at once.",
    )
    @rolls_back
    async def delete_role(self, info: Info, id: strawberry.ID) -> DeleteResult:
        rid = parse_id(id)
        ctx = info.context
        async with unit_of_work(ctx) as work:
            rules = await work.rules("roles:write")
            role = await _locked_role(work, rid)
            holders = await role_store.holders(work.con, rid)
            codes = await _codes_of_role(work, rid)
            await rules.change_role(rid, codes, after=(), holders_lose=True)
            await role_store.delete(work.con, rid)
            await rules.guard_holder_remains()
            before = {
                **snapshot(role, "name", "description"),
                "permissions": codes,
                "holders": len(holders),
            }
            await work.audit("role.delete", "role", rid, before, None)
        forget(ctx.loaders.roles_by_id, rid)
        return Deleted(id=strawberry.ID(str(rid)), affected_users=len(holders))

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
    @rolls_back
    async def set_role_permissions(
        self, info: Info, role_id: strawberry.ID, codes: list[str]
    ) -> RoleResult:
        rid = parse_id(role_id, "roleId")
        ctx = info.context
        async with unit_of_work(ctx) as work:
            rules = await work.rules("roles:write")
            role = await _locked_role(work, rid)
            before = await _codes_of_role(work, rid)
            permission_ids = await _resolve_codes(work, codes, "codes")
            after = sorted(set(codes))
            await rules.change_role(
                rid, before, after=after, holders_lose=not set(before) <= set(after)
            )
            await role_store.replace_grants(work.con, rid, permission_ids)
            if after != sorted(before):
                await rules.guard_holder_remains()
                await work.audit(
                    "role.set_permissions",
                    "role",
                    rid,
                    {"permissions": sorted(before)},
                    {"permissions": after},
                )
        forget(ctx.loaders.permissions_by_role_id, rid)
        return RolePayload(role_row=role)


__all__ = ["RoleMutations"]
