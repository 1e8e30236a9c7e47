"""Relay-style cursors, ids and page-size validation.

Ids and cursors are client text: only ASCII digits make a number (`str.isdigit`
and `int` also take superscript, Arabic-Indic or fullwidth digits), and a cursor
is valid only in the exact form `encode_cursor` gives it. Anything else is
BAD_USER_INPUT.
"""

from __future__ import annotations

import base64
import binascii
import re

import strawberry

from permbase.errors import InvalidInput

DEFAULT_PAGE_SIZE = 20
# an id: 1 to 18 ASCII digits (always within bigint); `re.ASCII` keeps \d to 0-9
_ID = re.compile(r"\d{1,18}", re.ASCII)
_MAX_CURSOR = 64  # far above any cursor encode_cursor makes


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
    key = -1
    if len(cursor) <= _MAX_CURSOR:
        try:
            prefix, _, value = (
                base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
            )
        except (binascii.Error, UnicodeError, ValueError):
            prefix = value = ""
        if prefix == kind and _ID.fullmatch(value):
            key = int(value)
    # only the cursor encode_cursor makes: no padding variants, signs, zeros
    if key < 0 or encode_cursor(kind, key) != cursor:
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
    """An id argument as an int: 1 to 18 ASCII digits, nothing else."""
    text = str(value)
    if not _ID.fullmatch(text):
        raise InvalidInput(
            f"{argument!r} is not a valid id: {text[:32]!r}.", argument=argument
        )
    return int(text)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "PageInfo",
    "check_first",
    "decode_cursor",
    "encode_cursor",
    "parse_id",
]
