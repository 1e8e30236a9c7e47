"""Typed outcomes shared by the mutations: expected failures are union members."""

from __future__ import annotations

import strawberry

from permstore.models import RoleRow, UserRow
from schema.context import Info
from schema.permissions import check
from schema.types import Permission, Role, User


@strawberry.type
class NotFoundError:
    message: str
    entity: str
    id: strawberry.ID


@strawberry.type
class InvalidInputError:
    message: str
    field: str


@strawberry.type
class ConflictError:
    message: str
    field: str


@strawberry.type
class NotAllowedError:
    message: str
    missing_permissions: list[str]


def _user(info: Info, row: UserRow) -> User:
    """A user in a mutation's result shows what the read API would show the
    caller: with users:read, or being that user; otherwise FORBIDDEN (the field
    is null, the mutation's outcome stands)."""
    check(info, "users:read", row.id)
    return User.from_row(row)


def _role(info: Info, row: RoleRow) -> Role:
    check(info, "roles:read")
    return Role.from_row(row)


_USER = "The user as the read API shows it: needs users:read, or being this user."
_ROLE = "The role as the read API shows it: needs roles:read."


# The payloads below name their subject by id always, and show it under the read
# API's permission; RoleAssignment and RoleGrant inherit those fields.


@strawberry.type
class UserPayload:
    target: strawberry.Private[UserRow]

    @strawberry.field
    def user_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.target.id))

    @strawberry.field(description=_USER)
    def user(self, info: Info) -> User | None:
        return _user(info, self.target)


@strawberry.type
class RolePayload:
    role_row: strawberry.Private[RoleRow]

    @strawberry.field
    def role_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.role_row.id))

    @strawberry.field(description=_ROLE)
    def role(self, info: Info) -> Role | None:
        return _role(info, self.role_row)


@strawberry.type
class PermissionPayload:
    permission: Permission


@strawberry.type
class RoleAssignment(UserPayload, RolePayload):
    changed: bool = strawberry.field(
        description="False when the call changed nothing (idempotent)."
    )


@strawberry.type
class RoleGrant(RolePayload):
    permission: Permission
    changed: bool


@strawberry.type
class Deleted:
    id: strawberry.ID
    affected_users: int


@strawberry.type
class CacheInvalidated:
    all_users: bool
    user_id: strawberry.ID | None
    confirmed: bool = strawberry.field(
        description="False: this instance could not confirm it in Redis within CHANGE_WAIT_S; "
        "the change log keeps it for the change stream's next pass, and this instance "
        "reads PostgreSQL until then."
    )


__all__ = [
    "CacheInvalidated",
    "ConflictError",
    "Deleted",
    "InvalidInputError",
    "NotAllowedError",
    "NotFoundError",
    "PermissionPayload",
    "RoleAssignment",
    "RoleGrant",
    "RolePayload",
    "UserPayload",
]
