"""Role membership and role definitions (roles:write).

Invalidation: a user's role change -> that user; a role's permission change,
rename or deletion -> every holder of the role, read in the same transaction
after the role row is locked (the change log, migration 0013).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from permadmin import validate
from permadmin.refusals import Conflict, Invalid
from permadmin.unit import Actor, Work, snapshot, unit_of_work
from permstore import (
    permissions as permission_store,
    roles as role_store,
    users as user_store,
)
from permstore.models import PermissionRow, RoleRow, UserRow


@dataclass(frozen=True)
class Membership:
    user: UserRow
    role: RoleRow
    changed: bool  # False: already held (assign), or not held (remove)


@dataclass(frozen=True)
class Grant:
    role: RoleRow
    permission: PermissionRow
    changed: bool


@dataclass(frozen=True)
class Removal:
    id: int
    affected_users: int  # who lost permissions with it


async def _locked_role(work: Work, role_id: int) -> RoleRow:
    """The role, locked; after the delegation lock, so unknown and forbidden
    look the same to an actor who may not read roles."""
    rules = await work.rules("roles:write")
    role = await role_store.select_for_update(work.con, role_id)
    if role is None:
        raise rules.unknown("role", role_id)
    return role


async def _codes_of_role(work: Work, role_id: int) -> list[str]:
    grants = await permission_store.select_by_role_ids(work.con, [role_id])
    return [p.code for p in grants[role_id]]


async def _resolve_codes(work: Work, codes: Sequence[str], field: str) -> list[int]:
    wanted = sorted(set(codes))
    validate.check(*(validate.permission_code(code, field) for code in wanted))
    found = await permission_store.select_by_codes(work.con, wanted)  # one query
    for code in wanted:
        if code not in found:
            raise Invalid(f"Unknown permission {code!r}.", field)
    return [found[code].id for code in wanted]


async def change_membership(
    actor: Actor, user_id: int, role_id: int, *, assign: bool
) -> Membership:
    """Assign the role to the user, or remove it. Idempotent."""
    async with unit_of_work(actor) as work:
        rules = await work.rules("roles:write")
        user = await user_store.select_for_update(work.con, user_id)
        if user is None:
            raise rules.unknown("user", user_id)
        role = await _locked_role(work, role_id)
        role_codes = await _codes_of_role(work, role_id)
        # the user before, and after: plus the role's codes when assigned
        await rules.change_user(user_id, gaining=role_codes if assign else ())
        if assign:
            changed = await role_store.assign(work.con, user_id, role_id, actor.user_id)
        else:
            changed = await role_store.unassign(work.con, user_id, role_id)
            if changed:
                await rules.guard_holder_remains()
        if changed:
            role_ref = {"role_id": role_id, "role": role.name}
            if assign:
                await work.audit("user.assign_role", "user", user_id, None, role_ref)
            else:
                await work.audit("user.remove_role", "user", user_id, role_ref, None)
    return Membership(user=user, role=role, changed=changed)


async def change_grant(actor: Actor, role_id: int, code: str, *, grant: bool) -> Grant:
    """Grant the permission to the role, or revoke it. Idempotent."""
    validate.check(validate.permission_code(code))
    async with unit_of_work(actor) as work:
        rules = await work.rules("roles:write")
        role = await _locked_role(work, role_id)
        permission = await permission_store.select_by_code(work.con, code)
        if permission is None:
            raise Invalid(f"Unknown permission {code!r}.", "code")
        before = await _codes_of_role(work, role_id)
        after = {*before, code} if grant else set(before) - {code}
        await rules.change_role(role_id, before, after=after, holders_lose=not grant)
        if grant:
            changed = await role_store.grant(work.con, role_id, permission.id)
        else:
            changed = await role_store.revoke(work.con, role_id, permission.id)
            if changed:
                await rules.guard_holder_remains()
        if changed:
            ref = {"permission": code}
            if grant:
                await work.audit("role.grant_permission", "role", role_id, None, ref)
            else:
                await work.audit("role.revoke_permission", "role", role_id, ref, None)
    return Grant(role=role, permission=permission, changed=changed)


async def create_role(
    actor: Actor, name: str, description: str, permission_codes: Sequence[str]
) -> RoleRow:
    validate.check(validate.role_name(name), validate.description(description))
    async with unit_of_work(actor) as work:
        rules = await work.rules("roles:write")
        permission_ids = await _resolve_codes(work, permission_codes, "permissionCodes")
        await rules.grant(permission_codes)
        role = await role_store.insert(work.con, name, description)
        if role is None:
            raise Conflict(f"A role named {name!r} exists.", "name")
        await role_store.replace_grants(work.con, role.id, permission_ids)
        after = {
            **snapshot(role, "name", "description"),
            "permissions": sorted(set(permission_codes)),
        }
        await work.audit("role.create", "role", role.id, None, after)
    return role


async def update_role(
    actor: Actor, role_id: int, name: str | None, description: str | None
) -> RoleRow:
    """A rename refreshes the holders' cached entries."""
    validate.check(
        validate.role_name(name) if name is not None else None,
        validate.description(description),
    )
    async with unit_of_work(actor) as work:
        before = await _locked_role(work, role_id)
        await (await work.rules("roles:write")).change_role(
            role_id, await _codes_of_role(work, role_id)
        )
        try:
            async with work.con.transaction():  # savepoint: a taken name is a refusal
                role = await role_store.update(work.con, role_id, name, description)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"A role named {name!r} exists.", "name") from None
        assert role is not None  # noqa: S101 - row locked above
        await work.audit(
            "role.update",
            "role",
            role_id,
            snapshot(before, "name", "description"),
            snapshot(role, "name", "description"),
        )
    return role


async def delete_role(actor: Actor, role_id: int) -> Removal:
    """Holders lose the role's permissions at once."""
    async with unit_of_work(actor) as work:
        rules = await work.rules("roles:write")
        role = await _locked_role(work, role_id)
        holders = await role_store.holders(work.con, role_id)
        codes = await _codes_of_role(work, role_id)
        await rules.change_role(role_id, codes, after=(), holders_lose=True)
        await role_store.delete(work.con, role_id)
        await rules.guard_holder_remains()
        before = {
            **snapshot(role, "name", "description"),
            "permissions": codes,
            "holders": len(holders),
        }
        await work.audit("role.delete", "role", role_id, before, None)
    return Removal(id=role_id, affected_users=len(holders))


async def set_role_permissions(
    actor: Actor, role_id: int, codes: Sequence[str]
) -> RoleRow:
    """The role's permissions become exactly `codes`."""
    async with unit_of_work(actor) as work:
        rules = await work.rules("roles:write")
        role = await _locked_role(work, role_id)
        before = await _codes_of_role(work, role_id)
        permission_ids = await _resolve_codes(work, codes, "codes")
        after = sorted(set(codes))
        await rules.change_role(
            role_id, before, after=after, holders_lose=not set(before) <= set(after)
        )
        await role_store.replace_grants(work.con, role_id, permission_ids)
        if after != sorted(before):
            await rules.guard_holder_remains()
            await work.audit(
                "role.set_permissions",
                "role",
                role_id,
                {"permissions": sorted(before)},
                {"permissions": after},
            )
    return role


__all__ = [
    "Grant",
    "Membership",
    "Removal",
    "change_grant",
    "change_membership",
    "create_role",
    "delete_role",
    "set_role_permissions",
    "update_role",
]
