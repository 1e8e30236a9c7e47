"""Permission classes: every field states what it needs. The caller's access is
loaded once per request through the permission loader (one MGET, before
execution: schema/context.py), so every check is a synchronous set lookup."""

from __future__ import annotations

from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from schema.context import Info


class IsAuthenticated(BasePermission):
    """A valid access token of an active account."""

    message = "Authentication required."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        info.context.viewer_access()  # raises UNAUTHENTICATED
        return True


class HasPermission(BasePermission):
    """The caller holds `code`; with `allow_self`, reading one's own user is enough.

    Failures raise coded errors: UNAUTHENTICATED without a (valid, active) caller,
    FORBIDDEN with `extensions.missingPermission` otherwise.
    """

    def __init__(self, code: str, *, allow_self: bool = False) -> None:
        self.code = code
        self.allow_self = allow_self
        self.message = f"Missing permission {code!r}."

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        check(
            info, self.code, getattr(source, "uid", None) if self.allow_self else None
        )
        return True


def check(info: Info, code: str, owner: int | None = None) -> None:
    """The caller holds `code`, or is `owner`; raises UNAUTHENTICATED or FORBIDDEN
    (with the missing code) otherwise. Called directly by the per-item fields of
    a user (roles, permissions, hasPermission): on a page of 100 users the
    extension chain around each item cost more than the check itself."""
    ctx = info.context
    access = ctx.viewer_access()
    if code in access.permissions or (owner is not None and owner == access.user_id):
        return
    ctx.require(code)


def needs(code: str, *, allow_self: bool = False) -> list[FieldExtension]:
    """`extensions=needs("users:read")` on a strawberry field."""
    return [
        PermissionExtension(
            permissions=[HasPermission(code, allow_self=allow_self)],
            use_directives=False,
        )
    ]


def authenticated() -> list[FieldExtension]:
    return [PermissionExtension(permissions=[IsAuthenticated()], use_directives=False)]


__all__ = ["HasPermission", "IsAuthenticated", "authenticated", "check", "needs"]
