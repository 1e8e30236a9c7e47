"""Permission codes (permissions:write) and the admin's cache flush."""

from __future__ import annotations

from permadmin import validate
from permadmin.refusals import Conflict, NotAllowed, NotFound
from permadmin.roles import Removal
from permadmin.unit import Actor, unit_of_work
from permcore.delegation import RESERVED_RESOURCES
from permstore import (
    changes,
    permissions as permission_store,
    roles as role_store,
    users as user_store,
)
from permstore.models import PermissionRow


async def create_permission(actor: Actor, code: str, description: str) -> PermissionRow:
    """Nobody holds a new permission: nothing to invalidate."""
    validate.check(validate.permission_code(code), validate.description(description))
    resource = code.split(":", 1)[0]
    if resource in RESERVED_RESOURCES:
        raise NotAllowed(
            f"Codes of {resource!r} are permgraph's own: only its seed creates them."
        )
    async with unit_of_work(actor) as work:
        row = await permission_store.insert(work.con, code, description)
        if row is None:
            raise Conflict(f"Permission {code!r} exists.", "code")
        await work.audit(
            "permission.create",
            "permission",
            row.id,
            None,
            {"code": code, "description": description},
        )
    return row


async def delete_permission(actor: Actor, permission_id: int) -> Removal:
    """Every holder loses it at once. Only a holder deletes a code; permgraph's
    own codes stay."""
    async with unit_of_work(actor) as work:
        rules = await work.rules("permissions:write")
        found = await permission_store.select_by_ids(work.con, [permission_id])
        if permission_id not in found:
            raise rules.unknown("permission", permission_id)
        await rules.delete_permission(permission_id, found[permission_id].code)
        holders = await role_store.holders_of_permission(work.con, permission_id)
        row = await permission_store.delete(work.con, permission_id)
        assert row is not None  # noqa: S101 - privilege changes are serialised
        await rules.guard_holder_remains()
        await work.audit(
            "permission.delete",
            "permission",
            permission_id,
            {"code": row.code, "holders": len(holders)},
            None,
        )
    return Removal(id=permission_id, affected_users=len(holders))


async def invalidate_cache(actor: Actor, user_id: int | None) -> bool:
    """Drop one user's cached entry, or everyone's (user_id None). True: this
    instance confirmed it in Redis within CHANGE_WAIT_S."""
    # whether an id exists is told only to an actor who may read users
    if (
        user_id is not None
        and "users:read" in actor.permissions
        and (await user_store.select_by_ids(actor.db, [user_id])).get(user_id) is None
    ):
        raise NotFound("user", user_id)
    async with unit_of_work(actor) as work:
        await work.audit(
            "cache.invalidate",
            "user" if user_id else "cache",
            user_id or "all",
            None,
            None,
        )
        await changes.insert(work.con, None if user_id is None else [user_id])
    return work.confirmed


__all__ = ["create_permission", "delete_permission", "invalidate_cache"]
