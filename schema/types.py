"""GraphQL object types. IDs are ints inside, `ID` at the boundary (converted here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField

from permbase.errors import NotFound
from permstore import users as user_store
from permstore.models import AuditRow, PermissionRow, RoleRow, UserAccess, UserRow
from schema.context import Info
from schema.engine.plans import PLAIN
from schema.pagination import PageInfo, check_first, decode_cursor, encode_cursor
from schema.permissions import check, needs

T = TypeVar("T")


ACCESS_FIELDS = frozenset({"permissions", "hasPermission", "roles"})
_UNSET: Any = object()


class _NotRead:
    """What a user built from its entry holds in place of the row's fields. The
    selection was cleared not to read them (`entry_answers`); were one read
    anyway, it would fail to serialize (a field error), never pass for a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not read: a user built from its permission entry>"

    def __str__(self) -> str:  # graphql-core serializes a custom object as its str
        raise TypeError(repr(self))


_NOT_READ: Any = _NotRead()


def _mentions(selections: Any, names: frozenset[str]) -> bool:
    for selection in selections:
        if getattr(selection, "name", None) in names:
            return True
        if _mentions(getattr(selection, "selections", ()), names):
            return True
    return False


# User fields the permission entry answers on its own (id and isActive included)
ENTRY_FIELDS = ACCESS_FIELDS | {"id", "isActive", "__typename"}


def entry_answers(info: Info) -> bool:
    """Does the selection on this (single-user) field ask only for what the user's
    permission entry holds? Fragments count by their fields; directives are
    ignored (a field under @skip still counts), so this errs towards the row."""
    return all(_only(field.selections, ENTRY_FIELDS) for field in info.selected_fields)


def _only(selections: Any, names: frozenset[str]) -> bool:
    for selection in selections:
        if isinstance(selection, SelectedField):
            if selection.name not in names:
                return False
        elif not _only(
            selection.selections, names
        ):  # inline fragment or fragment spread
            return False
    return True


def wants_access(info: Info) -> bool:
    """Does the selection below this field read users' permission entries?"""
    return _mentions(info.selected_fields, ACCESS_FIELDS)


async def _load_access(info: Info, user_id: int) -> UserAccess:
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
        return cls(
            uid=row.id,
            id=strawberry.ID(str(row.id)),
            code=row.code,
            description=row.description,
        )


def _entry_field(root: User, info: Info, fn: Callable[[UserAccess], T]) -> T:
    """`fn` of the user's entry: the value when the entry is loaded (a page
    prefetches them), else an awaitable of it, which graphql-core awaits. Typed
    as the value: the resolvers' annotations name it, for the schema."""
    return cast("T", root._with_access(info, fn))


def _sorted_permissions(access: UserAccess) -> tuple[str, ...]:
    return access.effective_codes


def resolve_permissions(root: User, info: Info) -> list[str]:
    """User.permissions. Plain (`PLAIN`): graphql-core calls it directly, with
    its own resolve info (which carries `.context` as Strawberry's does),
    skipping Strawberry's per-field argument and extension handling (+18 % of a
    100-user page's CPU for a field that takes no argument)."""
    check(info, "permissions:read", root.uid)
    # the entry's tuple, served as the list without a copy
    return cast("list[str]", _entry_field(root, info, _sorted_permissions))


def resolve_roles(root: User, info: Info) -> list[Role]:
    """User.roles; plain as `resolve_permissions`."""
    check(info, "roles:read", root.uid)
    return _entry_field(root, info, _roles_of)


def resolve_has_permission(root: User, info: Info, code: str) -> bool:
    """User.hasPermission(code); plain too (its one argument is a String:
    graphql-core passes it as Strawberry would)."""
    check(info, "permissions:read", root.uid)
    return _entry_field(
        root, info, lambda access: access.is_active and code in access.permissions
    )


def _roles_of(access: UserAccess) -> list[Role]:
    return [
        Role(uid=rid, id=strawberry.ID(str(rid)), name=name)
        for rid, name in zip(access.role_ids, access.roles, strict=True)
    ]


@strawberry.type
class User:
    """A user. `roles`, `permissions` and `hasPermission` read the user's cached
    permission entry; list resolvers prefetch the entries of a whole page in one
    loader call, so these fields then resolve synchronously (no per-item await:
    completing thousands of awaitables is where a GraphQL server's CPU goes)."""

    uid: strawberry.Private[int]
    id: strawberry.ID
    email: str
    display_name: str
    avatar_url: str | None
    is_active: bool
    created_at: datetime
    access: strawberry.Private[Any] = _UNSET

    @classmethod
    def from_row(cls, row: UserRow, access: UserAccess | None = _UNSET) -> User:
        return cls(
            uid=row.id,
            id=strawberry.ID(str(row.id)),
            email=row.email,
            display_name=row.display_name,
            avatar_url=row.avatar_url,
            is_active=row.is_active,
            created_at=row.created_at,
            access=access,
        )

    @classmethod
    def from_entry(cls, access: UserAccess) -> User:
        """A user known only by its permission entry, for a selection that
        `entry_answers` cleared: the row's other fields are never read."""
        return cls(
            uid=access.user_id,
            id=strawberry.ID(str(access.user_id)),
            email=_NOT_READ,
            display_name=_NOT_READ,
            avatar_url=_NOT_READ,
            is_active=access.is_active,
            created_at=_NOT_READ,
            access=access,
        )

    def _with_access(
        self, info: Info, fn: Callable[[UserAccess], T]
    ) -> T | Awaitable[T]:
        access = self.access
        if access is _UNSET:
            return self._later(info, fn)
        if access is None:
            raise NotFound(f"User {self.uid} no longer exists.")
        return fn(access)

    async def _later(self, info: Info, fn: Callable[[UserAccess], T]) -> T:
        self.access = await _load_access(info, self.uid)
        return fn(self.access)

    roles: list[Role] = strawberry.field(
        description="Roles held (from the cached permission entry). Needs roles:read, or being this user.",
        resolver=resolve_roles,
        metadata=PLAIN,
    )
    permissions: list[str] = strawberry.field(  # a tuple, written as a list
        description="Effective permission codes, deduplicated and sorted; empty for a deactivated user. "
        "Needs permissions:read, or being this user.",
        resolver=resolve_permissions,
        metadata=PLAIN,
    )
    has_permission: bool = strawberry.field(
        description="Needs permissions:read, or being this user.",
        resolver=resolve_has_permission,
        metadata=PLAIN,
    )


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
    def build(
        cls,
        rows: list[UserRow],
        first: int,
        after_id: int,
        count_fn: Any,
        accesses: list[UserAccess | None] | None = None,
    ) -> UserConnection:
        page = rows[:first]
        if accesses is None:
            edges = [
                UserEdge(cursor=encode_cursor("user", r.id), node=User.from_row(r))
                for r in page
            ]
        else:
            edges = [
                UserEdge(cursor=encode_cursor("user", r.id), node=User.from_row(r, a))
                for r, a in zip(page, accesses, strict=True)
            ]
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
    known_description: strawberry.Private[str | None] = None

    @classmethod
    def from_row(cls, row: RoleRow) -> Role:
        return cls(
            uid=row.id,
            id=strawberry.ID(str(row.id)),
            name=row.name,
            known_description=row.description,
        )

    @strawberry.field
    def description(self, info: Info) -> str:
        if self.known_description is not None:
            return self.known_description
        return self._load_description(info)  # type: ignore[return-value]  # an awaitable of it; the annotation gives the schema type

    async def _load_description(self, info: Info) -> str:
        row = await info.context.loaders.roles_by_id.load(self.uid)
        return "" if row is None else row.description

    @strawberry.field(extensions=needs("permissions:read"))
    async def permissions(self, info: Info) -> list[Permission]:
        rows = await info.context.loaders.permissions_by_role_id.load(self.uid)
        return [Permission.from_row(r) for r in rows]

    @strawberry.field(
        extensions=needs("users:read"), description="Holders of the role, by id."
    )
    async def members(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> UserConnection:
        ctx = info.context
        size = check_first(first, ctx.settings.max_page_size)
        after_id = decode_cursor("user", after)
        rows = await ctx.loaders.members_by_role.load((self.uid, after_id, size + 1))
        loader = ctx.loaders.member_counts_by_role
        accesses = await prefetch_access(info, rows[:size])
        return UserConnection.build(
            rows, size, after_id, lambda: loader.load(self.uid), accesses
        )


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


async def prefetch_access(
    info: Info, rows: list[UserRow]
) -> list[UserAccess | None] | None:
    """The permission entries of a page of users, in one loader call, when the
    selection reads them; None otherwise (no Redis round trip for nothing)."""
    if not rows or not wants_access(info):
        return None
    # straight to the batch function: one MGET (+ one query for misses) for the
    # page, without a future per key; the User objects carry the entries
    return await info.context.load_access_page([r.id for r in rows])


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
    "entry_answers",
    "prefetch_access",
    "wants_access",
]
