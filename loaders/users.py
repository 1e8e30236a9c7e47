"""Batch contract: N keys in -> N values out, in key order (None for an unknown id)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from permstore import users as store

if TYPE_CHECKING:
    from permstore.db import Database
    from permstore.models import UserRow

# (role_id, after_user_id, limit): one page of a role's members
MembersKey = tuple[int, int, int]


async def load_users_by_id(ids: Sequence[int], *, db: Database) -> list[UserRow | None]:
    rows = await store.select_by_ids(db, ids)
    return [rows.get(i) for i in ids]


async def load_members_by_role(
    keys: Sequence[MembersKey], *, db: Database
) -> list[list[UserRow]]:
    """Pages of members; keys sharing (after, limit) cost one statement together."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for role_id, after, limit in keys:
        groups[(after, limit)].append(role_id)
    pages: dict[MembersKey, list[UserRow]] = {}
    for (after, limit), role_ids in groups.items():
        found = await store.select_members_by_role_ids(db, role_ids, after, limit)
        for role_id in role_ids:
            pages[(role_id, after, limit)] = found[role_id]
    return [pages[k] for k in keys]


async def load_member_counts_by_role(
    role_ids: Sequence[int], *, db: Database
) -> list[int]:
    counts = await store.count_members_by_role_ids(db, role_ids)
    return [counts[r] for r in role_ids]


__all__ = [
    "MembersKey",
    "load_member_counts_by_role",
    "load_members_by_role",
    "load_users_by_id",
]
