"""Typed outcomes shared by the mutations: expected failures are union members."""

from __future__ import annotations

import strawberry

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


@strawberry.type
class UserPayload:
    user: User


@strawberry.type
class RolePayload:
    role: Role


@strawberry.type
class PermissionPayload:
    permission: Permission


@strawberry.type
class RoleAssignment:
    user: User
    role: Role
    changed: bool = strawberry.field(description="False when the call changed nothing (idempotent).")


@strawberry.type
class RoleGrant:
    role: Role
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
    confirmed: bool = strawberry.field(description="False: Redis was unreachable; the outbox replays it.")


def not_found(entity: str, ident: int | str) -> NotFoundError:
    return NotFoundError(message=f"No {entity} with id {ident}.", entity=entity, id=strawberry.ID(str(ident)))


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
    "not_found",
]
