"""Batch contract: N keys in -> N values out, in key order (None for an unknown id)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from permstore import permissions as permission_store, roles as store

if TYPE_CHECKING:
    from permstore.db import Database
    from permstore.models import PermissionRow, RoleRow


async def load_roles_by_id(ids: Sequence[int], *, db: Database) -> list[RoleRow | None]:
    rows = await store.select_by_ids(db, ids)
    return [rows.get(i) for i in ids]


async def load_permissions_by_role_id(
    role_ids: Sequence[int], *, db: Database
) -> list[list[PermissionRow]]:
    grants = await permission_store.select_by_role_ids(db, role_ids)
    return [grants[r] for r in role_ids]


__all__ = ["load_permissions_by_role_id", "load_roles_by_id"]
