"""Pure pieces: cursors, cache value validation, migration numbering, SQL files."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import orjson
import pytest

import permstore
from permbase.errors import InvalidInput
from permcore.codec import Corrupt, decode_access, encode_access
from permcore.stream import LISTEN_RETRY_S, ChangeStream
from permstore.migrate import MIGRATIONS_DIR, MigrationError, discover
from permstore.models import UserAccess
from schema.pagination import check_first, decode_cursor, encode_cursor, parse_id


def test_cursor_round_trip_and_rejections() -> None:
    assert decode_cursor("user", encode_cursor("user", 42)) == 42
    assert decode_cursor("user", None) == 0
    for bad in ["", "%%%", encode_cursor("audit", 1), "dXNlcjp4", "dXNlcjotMQ=="]:
        with pytest.raises(InvalidInput):
            decode_cursor("user", bad)


def test_page_size_and_ids() -> None:
    assert check_first(None, 100) == 20
    assert check_first(0, 100) == 0
    for bad in (-1, 101):
        with pytest.raises(InvalidInput, match="between 0 and 100"):
            check_first(bad, 100)
    assert parse_id("12") == 12
    for bad_id in ("", "-1", "1e3", "x", "9" * 30):
        with pytest.raises(InvalidInput):
            parse_id(bad_id)


def test_cache_value_round_trip_and_validation() -> None:
    access = UserAccess(5, True, (2, 1), ("editor", "viewer"), ("a:y", "b:x"))
    raw = encode_access(5, access, "E")
    assert orjson.loads(raw)["permissions"] == ["a:y", "b:x"]
    assert decode_access(5, raw) == (access, "E")
    assert decode_access(5, encode_access(5, None, "E")) == (None, "E")
    # another user's value, entry or marker, is never this user's
    with pytest.raises(Corrupt, match="the value of user 5"):
        decode_access(6, raw)
    with pytest.raises(Corrupt, match="the value of user 6"):
        decode_access(5, encode_access(6, None, "E"))
    for bad in [
        b"",
        b"{",
        b"[]",
        b'{"e": 1}',
        b'{"e": "E", "roles": [], "role_ids": [], "permissions": [], "active": "yes"}',
        b'{"e": "E", "roles": ["a"], "role_ids": [], "permissions": [], "active": true}',
        b'{"e": "E", "roles": [], "role_ids": [], "permissions": [1], "active": true}',
    ]:
        with pytest.raises(Corrupt):
            decode_access(5, bad)


def test_deactivated_user_has_no_effective_permissions() -> None:
    access = UserAccess(5, False, (1,), ("admin",), ("roles:write",))
    assert access.effective_codes == ()
    assert "roles:write" in access.permissions  # held, but not effective


def test_migrations_are_numbered_without_gaps(tmp_path: Path) -> None:
    migrations = discover()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.name.endswith(".sql") for m in migrations)
    (tmp_path / "0001_a.sql").write_text("select 1")
    (tmp_path / "0003_c.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="expected 0002"):
        discover(tmp_path)
    (tmp_path / "2_bad.sql").write_text("select 1")
    with pytest.raises(MigrationError, match="NNNN_"):
        discover(tmp_path)
    assert MIGRATIONS_DIR.is_dir()


def test_every_store_module_finds_its_sql() -> None:
    # read_sql runs at import: a missing file fails here, not in production
    names = [m.name for m in pkgutil.iter_modules(permstore.__path__)]
    assert {"users", "roles", "permissions", "tokens", "audit", "changes"} <= set(names)
    for name in names:
        importlib.import_module(f"permstore.{name}")


def test_values_parsed_together_never_shift_between_users() -> None:
    from permcore.codec import parse_many

    good = encode_access(1, UserAccess(1, True, (), (), ("a:b",)), "E")
    assert parse_many([good, good]) == [orjson.loads(good)] * 2
    # a value holding two documents would shift every user after it: refused
    assert parse_many([good, good + b"," + good, good]) is None
    assert parse_many([good, b"not json"]) is None
    assert parse_many([good, b"1],[2"]) is None


async def test_a_listen_connection_that_cannot_be_opened_is_not_retried_at_every_pass() -> (
    None
):
    """The stream keeps polling; it tries LISTEN again only after LISTEN_RETRY_S
    (each attempt may wait out a connect timeout while PostgreSQL is down)."""
    attempts = 0

    async def refused() -> None:
        nonlocal attempts
        attempts += 1

    stream = ChangeStream(None, None, name="unit")  # type: ignore[arg-type]  # no I/O here
    await stream._listening(refused)
    await stream._listening(refused)
    assert attempts == 1
    stream._listen_retry_at -= LISTEN_RETRY_S
    await stream._listening(refused)
    assert attempts == 2
