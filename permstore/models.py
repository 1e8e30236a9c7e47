"""Frozen rows returned by `api/store`: asyncpg Records stop at that boundary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    email: str
    display_name: str
    avatar_url: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RoleRow:
    id: int
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class PermissionRow:
    id: int
    code: str
    description: str


@dataclass(eq=True)
class UserAccess:
    """What one user may do: the value behind `permissions:user:{id}`."""

    user_id: int
    is_active: bool
    role_ids: tuple[int, ...]
    roles: tuple[str, ...]
    codes: tuple[str, ...]  # sorted, deduplicated: what the API lists
    # What ends the user's sessions (SECURITY.md, "What ends a session, and how
    # fast"): access tokens issued before `not_before` (seconds since the epoch;
    # set by a password change) no longer count, nor those of a revoked session
    # (refresh-token family) that may still have live access tokens.
    not_before: float | None = None
    revoked_sessions: tuple[str, ...] = ()

    def session_ended(self, session_id: str, issued_at: float) -> bool:
        """Is an access token of this user, issued at `issued_at` in session
        `session_id`, no longer good?"""
        if self.not_before is not None and issued_at < self.not_before:
            return True
        return session_id in self.revoked_sessions

    @cached_property
    def permissions(self) -> frozenset[str]:
        """For membership tests (held by the user's roles, active or not)."""
        return frozenset(self.codes)

    @property
    def effective_codes(self) -> tuple[str, ...]:
        # a deactivated user may do nothing, whatever roles it still holds
        return self.codes if self.is_active else ()


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    before: Any
    after: Any
    created_at: datetime


__all__ = [
    "AuditRow",
    "PermissionRow",
    "RoleRow",
    "UserAccess",
    "UserRow",
]
