"""Password hashing: argon2id through argon2-cffi, always off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile
# Verified against when the email is unknown, so that every failure costs the same.
_DUMMY_HASH = _hasher.hash("permgraph-timing-equaliser")

MIN_LENGTH = 12
MAX_LENGTH = 256


def check_strength(password: str) -> str | None:
    """A reason the password is unacceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"password must be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"password must be at most {MAX_LENGTH} characters"
    return None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(stored: str | None, password: str) -> tuple[bool, bool]:
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False, False
    return ok and stored is not None, stored is not None and _hasher.check_needs_rehash(
        stored
    )


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). With no stored hash, a dummy is verified and False returned."""
    return await asyncio.to_thread(_verify, stored, password)


__all__ = [
    "MAX_LENGTH",
    "MIN_LENGTH",
    "check_strength",
    "hash_password",
    "verify_password",
]
