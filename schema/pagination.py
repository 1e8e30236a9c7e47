"""Relay-style cursors and page-size validation."""

from __future__ import annotations

import base64
import binascii

import strawberry

from api.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


def encode_cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None) -> int:
    """The id after which the page starts (0 for no cursor)."""
    if cursor is None:
        return 0
    try:
        prefix, _, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        key = int(value)
    except (binascii.Error, UnicodeError, ValueError):
        key = -1
        prefix = ""
    if prefix != kind or key < 0:
        raise InvalidInput(f"Malformed cursor: {cursor[:64]!r}.", argument="after")
    return key


def check_first(first: int | None, maximum: int) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if first < 0 or first > maximum:
        raise InvalidInput(
            f"'first' must be between 0 and {maximum}: {first}.", argument="first"
        )
    return first


def parse_id(value: strawberry.ID | str, argument: str = "id") -> int:
    text = str(value)
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"{argument!r} is not a valid id: {text[:32]!r}.", argument=argument)
    return int(text)


__all__ = ["PageInfo", "check_first", "decode_cursor", "encode_cursor", "parse_id"]
