"""The cached value's format: encode, parse and validate one user's entry
(`encode_access`, `decode_access`, `validate_access`, `parse_many`). The key
layout and what one read yields (`CacheRead`) are in permcore/cache.py."""

from __future__ import annotations

from typing import Any

import orjson

from permstore.models import UserAccess

# The value format. 2 added "nbf" and "rs" (what ends a session); 3 added "u",
# whose entry it is: a value read for another user (a reply crossed between
# calls, a key copied by hand) is corrupt, never that user's permissions. A
# value of an older format is a miss, never a hit (see validate_access).
FORMAT = 3
# The epoch reported for a value of an older format: no cache epoch ever equals it
# (epochs are hex), so the reader treats the value as a miss and overwrites it.
_OLD_FORMAT_EPOCH = "\x00old-format"


def encode_access(user_id: int, access: UserAccess | None, epoch: str) -> bytes:
    if access is None:  # unknown user: cached as such, so it is not re-queried
        return orjson.dumps({"v": FORMAT, "u": user_id, "missing": True, "e": epoch})
    return orjson.dumps(
        {
            "v": FORMAT,
            "u": user_id,
            "roles": list(access.roles),
            "role_ids": list(access.role_ids),
            "permissions": list(access.codes),
            "active": access.is_active,
            "nbf": access.not_before,
            "rs": list(access.revoked_sessions),
            "e": epoch,
        }
    )


_STR = {str}
_INT = {int}


class Corrupt(ValueError):
    pass


def decode_access(user_id: int, raw: bytes | str) -> tuple[UserAccess | None, str]:
    """Parse and validate one cached value; raise Corrupt for anything odd."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Corrupt(str(exc)) from None
    return validate_access(user_id, data)


def parse_many(values: list[bytes | str]) -> list[Any] | None:
    """Every value in one orjson call (one call instead of one per user). None
    when that cannot be trusted: a value that is not one JSON document breaks the
    array or changes its length, and then each value is parsed on its own."""
    try:
        parsed = orjson.loads(
            b"["
            + b",".join(v if isinstance(v, bytes) else v.encode() for v in values)
            + b"]"
        )
    except orjson.JSONDecodeError:
        return None
    return parsed if type(parsed) is list and len(parsed) == len(values) else None


def _check_owner(user_id: int, data: dict[str, Any]) -> None:
    owner = data.get("u")
    if type(owner) is not int or owner != user_id:
        raise Corrupt(f"the value of user {owner!r}")


def validate_access(user_id: int, data: Any) -> tuple[UserAccess | None, str]:
    """Validate one parsed cached value; raise Corrupt for anything odd."""
    if not isinstance(data, dict) or not isinstance(data.get("e"), str):
        raise Corrupt("not an object with an epoch")
    if data.get("missing") is True:
        if data.get("v") != FORMAT:
            return None, _OLD_FORMAT_EPOCH  # an older marker: a miss
        _check_owner(user_id, data)
        return None, data["e"]
    roles, role_ids, perms, active = (
        data.get("roles"),
        data.get("role_ids"),
        data.get("permissions"),
        data.get("active"),
    )
    if not (
        type(roles) is list
        and type(role_ids) is list
        and type(perms) is list
        and type(active) is bool
        and len(roles) == len(role_ids)
        and set(map(type, roles)) <= _STR
        and set(map(type, role_ids)) <= _INT
        and set(map(type, perms)) <= _STR
    ):
        raise Corrupt("fields missing or of the wrong type")
    if data.get("v") != FORMAT:
        # written by an older version, without what ends a session: a miss
        # (overwritten by the next fill), never a hit, and not corrupt
        return None, _OLD_FORMAT_EPOCH
    _check_owner(user_id, data)
    not_before, revoked = data.get("nbf", False), data.get("rs")
    if not (
        (not_before is None or type(not_before) is float)
        and type(revoked) is list
        and set(map(type, revoked)) <= _STR
    ):
        raise Corrupt("session fields missing or of the wrong type")
    # encode_access writes them sorted and unique; order is only presentation
    # (checks use the set), so it is not re-verified on this hot path
    access = UserAccess(
        user_id,
        active,
        tuple(role_ids),
        tuple(roles),
        tuple(perms),
        not_before,
        tuple(revoked),
    )
    return access, data["e"]


__all__ = [
    "Corrupt",
    "decode_access",
    "encode_access",
    "parse_many",
    "validate_access",
]
