"""Input checks: each returns the `Invalid` refusal of a value, or None (the
database re-checks)."""

from __future__ import annotations

import re

from permadmin.refusals import Invalid
from permauth.emails import BadEmail, normalize_email

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
PERMISSION_CODE = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def email(value: str) -> Invalid | None:
    """See permauth/emails.py: the address is stored as `normalize_email` spells it."""
    try:
        normalize_email(value)
    except BadEmail as exc:
        return Invalid(
            message=f"Not a valid email address ({exc}): {value[:64]!r}.", field="email"
        )
    return None


def display_name(value: str | None) -> Invalid | None:
    if value is not None and len(value) > 100:
        return Invalid(
            message="displayName must be at most 100 characters.", field="displayName"
        )
    return None


def avatar_url(value: str | None) -> Invalid | None:
    if (
        value is not None
        and value != ""
        and (len(value) > 2048 or not value.startswith(("https://", "http://")))
    ):
        return Invalid(
            message="avatarUrl must be an http(s) URL of at most 2048 characters.",
            field="avatarUrl",
        )
    return None


def role_name(value: str) -> Invalid | None:
    if not ROLE_NAME.match(value):
        return Invalid(
            message=f"Role names are lowercase letters, digits, '-' and '_', starting with a letter: {value[:64]!r}.",
            field="name",
        )
    return None


def permission_code(value: str, field: str = "code") -> Invalid | None:
    if len(value) > 100 or not PERMISSION_CODE.match(value):
        return Invalid(
            message=f"Permission codes have the form resource:action (lowercase): {value[:64]!r}.",
            field=field,
        )
    return None


def description(value: str | None) -> Invalid | None:
    if value is not None and len(value) > 1000:
        return Invalid(
            message="description must be at most 1000 characters.", field="description"
        )
    return None


def check(*problems: Invalid | None) -> None:
    """Raise the first problem found."""
    for problem in problems:
        if problem is not None:
            raise problem


__all__ = [
    "avatar_url",
    "description",
    "display_name",
    "email",
    "check",
    "permission_code",
    "role_name",
]
