"""GraphQL object types. IDs are ints inside, `ID` at the boundary (converted here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from api.context import Info
from api.errors import NotFound
from api.models import AuditRow, PermissionRow, RoleRow, UserAccess, UserRow
from api.store import users as user_store
from schema.pagination import PageInfo, check_first, decode_cursor, encode_cursor
from schema.permissions import needs


async def _access(info: Info, user_id: int) -> UserAccess:
    access = await info.context.loaders.access_by_user_id.load(user_id)
    if access is None:  # deleted after this user was read
        raise NotFound(f"User {user_id} no longer exists.")
    return access


@strawberry.type
class Permission:
    uid: strawberry.Private[int]
    id: strawberry.ID
    code: str
    description: str

    @classmethod
    def from_row(cls, row: PermissionRow) -> Permission:
        return cls(uid=row.id, id=strawberry.ID(str(row.id)), code=row.code, description=row.description)


@strawberry.type
class User:
    uid: strawberry.Private[int]
    id: strawberry.ID
    email: str
    display_name: str
    avatar_url: str | None
    is_active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            uid=row.id,
            id=strawberry.ID(str(row.id)),
            email=row.email,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
            is_active=row.is_active,
            created_at=row.created_at,
        )

    @strawberry.field(
        extensions=needs("roles:read", allow_self=True),
        description="Roles held, by name (served from the cached permission entry).",
    )
    async def roles(self, info: Info) -> list[Role]:
        access = await _access(info, self.uid)
        rows = await info.context.loaders.roles_by_id.load_many(list(access.role_ids))
        return [Role.from_row(r) for r in rows if r is not None]

    @strawberry.field(
        extensions=needs("permissions:read", allow_self=True),
        description="Effective permission codes, deduplicated and sorted; empty for a deactivated user.",
    )
    async def permissions(self, info: Info) -> list[str]:
        access = await _access(info, self.uid)
        return sorted(access.effective_permissions)

    @strawberry.field(extensions=needs("permissions:read", allow_self=True))
    async def has_permission(self, info: Info, code: str) -> bool:
        access = await _access(info, self.uid)
        return code in access.effective_permissions


@strawberry.type
class UserEdge:
    cursor: str
    node: User


@strawberry.type
class UserConnection:
    edges: list[UserEdge]
    page_info: PageInfo
    count_fn: strawberry.Private[Any]

    @strawberry.field(description="Users matching the filter, over all pages.")
    async def total_count(self) -> int:
        return int(await self.count_fn())

    @classmethod
    def build(cls, rows: list[UserRow], first: int, after_id: int, count_fn: Any) -> UserConnection:
        page = rows[:first]
        edges = [UserEdge(cursor=encode_cursor("user", r.id), node=User.from_row(r)) for r in page]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=len(rows) > first,
                has_previous_page=after_id > 0,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            count_fn=count_fn,
        )


@strawberry.type
class Role:
    uid: strawberry.Private[int]
    id: strawberry.ID
    name: str
    description: str

    @classmethod
    def from_row(cls, row: RoleRow) -> Role:
        return cls(uid=row.id, id=strawberry.ID(str(row.id)), name=row.name, description=row.description)

    @strawberry.field(extensions=needs("permissions:read"))
    async def permissions(self, info: Info) -> list[Permission]:
        rows = await info.context.loaders.permissions_by_role_id.load(self.uid)
        return [Permission.from_row(r) for r in rows]

    @strawberry.field(extensions=needs("users:read"), description="Holders of the role, by id.")
    async def members(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> UserConnection:
        ctx = info.context
        size = check_first(first, ctx.settings.max_page_size)
        after_id = decode_cursor("user", after)
        rows = await ctx.loaders.members_by_role.load((self.uid, after_id, size + 1))
        loader = ctx.loaders.member_counts_by_role
        return UserConnection.build(rows, size, after_id, lambda: loader.load(self.uid))


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    actor_id: strawberry.ID | None
    action: str
    target_type: str
    target_id: str
    before: JSON | None
    after: JSON | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEntry:
        return cls(
            id=strawberry.ID(str(row.id)),
            actor_id=None if row.actor_id is None else strawberry.ID(str(row.actor_id)),
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            before=row.before,
            after=row.after,
            created_at=row.created_at,
        )


@strawberry.type
class AuditConnection:
    entries: list[AuditEntry]
    end_cursor: str | None
    has_next_page: bool


def count_users(info: Info, flt: user_store.UserFilter) -> Any:
    db = info.context.db
    return lambda: user_store.count_filtered(db, flt)


__all__ = [
    "AuditConnection",
    "AuditEntry",
    "Permission",
    "Role",
    "User",
    "UserConnection",
    "UserEdge",
    "count_users",
]
