"""user_email_suffixes (migration 0017) holds every suffix of every email after
any sequence of writes to users, by any writer: the text filter finds a rare
text's users through it, so a suffix missing there is a user missing from a page."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from hypothesis import (
    HealthCheck,
    given,
    settings as hypothesis_settings,
    strategies as st,
)

from permbase.settings import Settings
from permstore import users as user_store
from permstore.db import Database
from tests.factories import acquire

_LOCAL = st.text(alphabet="aB9._%\\", min_size=1, max_size=5)
_EMAIL = _LOCAL.map(lambda local: f"{local}@x.io")
_PICK = st.integers(min_value=0, max_value=7)

# (operation, arguments): plain SQL, as psql or another service would write
_WRITES = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), st.lists(_EMAIL, min_size=1, max_size=3)),
        st.tuples(st.just("set email"), _PICK, _EMAIL),
        st.tuples(st.just("prefix emails"), _PICK, _PICK),
        st.tuples(st.just("set name"), _PICK),
        st.tuples(st.just("move id"), _PICK),
        st.tuples(st.just("delete"), _PICK),
    ),
    max_size=10,
)


async def _write(con: asyncpg.Connection, op: str, args: tuple[Any, ...]) -> None:
    ids = [r["id"] for r in await con.fetch("select id from users order by id")]
    if not ids and op != "insert":
        return

    def pick(n: int) -> int:
        return int(ids[n % len(ids)])

    if op == "insert":
        await con.execute(
            "insert into users (email, display_name)"
            " select e, 'x' from unnest($1::text[]) e",
            args[0],
        )
    elif op == "set email":
        await con.execute(
            "update users set email = $2 where id = $1", pick(args[0]), args[1]
        )
    elif op == "prefix emails":  # several rows in one statement
        await con.execute(
            "update users set email = 'z' || email where id = any($1::bigint[])",
            [pick(args[0]), pick(args[1])],
        )
    elif op == "set name":  # what a login or a profile update does
        await con.execute(
            "update users set display_name = display_name || '.' where id = $1",
            pick(args[0]),
        )
    elif op == "move id":
        await con.execute(
            "update users set id = default where id = $1",
            pick(args[0]),
        )
    elif op == "delete":
        await con.execute("delete from users where id = $1", pick(args[0]))


async def _differences(con: asyncpg.Connection) -> list[asyncpg.Record]:
    return list(
        await con.fetch(
            """
            (select s.suffix, s.user_id from user_email_suffixes s
             except select x, u.id from users u, user_email_suffixes_of(u.email) x)
            union all
            (select x, u.id from users u, user_email_suffixes_of(u.email) x
             except select s.suffix, s.user_id from user_email_suffixes s)
            """
        )
    )


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(writes=_WRITES)
async def test_the_suffixes_follow_every_write(
    pool: asyncpg.Pool, writes: list[tuple[Any, ...]]
) -> None:
    async with acquire(pool) as con:
        await con.execute("delete from users where email like '%@x.io'")
        for op, *args in writes:
            try:
                async with con.transaction():
                    await _write(con, op, tuple(args))
            except asyncpg.IntegrityConstraintViolationError:
                pass  # an email taken twice, a user others point at: refused
            assert await _differences(con) == [], (op, args)


async def test_a_truncate_empties_them(pool: asyncpg.Pool) -> None:
    async with acquire(pool) as con:
        assert await con.fetchval("select count(*) from user_email_suffixes") > 0
        await con.execute("truncate users cascade")
        assert await con.fetchval("select count(*) from user_email_suffixes") == 0


async def test_a_user_written_with_psql_is_found_by_a_rare_text(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """The page of a rare text is read from the suffixes only: a user inserted
    or renamed behind the app's back is there at once, the old email gone."""
    db = Database(pool, settings)

    async def page(text: str) -> list[str]:
        flt = user_store.UserFilter(email_contains=text)
        return [u.email for u in await user_store.select_page(db, 0, flt, 20)]

    async with acquire(pool) as con:
        user_id = await con.fetchval(
            "insert into users (email, display_name) values ('Quokka7@zoo.example', 'q')"
            " returning id"
        )
        assert await page("kKa7@Z") == ["Quokka7@zoo.example"]
        await con.execute(
            "update users set email = 'wombat7@zoo.example' where id = $1", user_id
        )
        assert await page("kka7@") == []
        assert await page("bat7@zoo") == ["wombat7@zoo.example"]


@pytest.mark.parametrize("role", [None, "admin"])
@pytest.mark.parametrize("text", ["M1", "@BOUND1"])
async def test_a_rare_and_a_common_text_give_the_same_answers_on_either_side(
    settings: Settings, pool: asyncpg.Pool, role: str | None, text: str
) -> None:
    """The bound between a rare text (read from its suffixes) and a common one (a
    walk in id order: of the emails holding its first four characters, or for a
    shorter text of users or the role's members) changes the plan, never the
    answer."""
    db = Database(pool, settings)
    async with acquire(pool) as con:
        await con.execute(
            "insert into users (email, display_name)"
            " select 'm' || n || '@bound' || n % 2 || '.example', 'm'"
            " from generate_series(1, 30) n"
        )
        if role:
            await con.execute(
                "insert into user_roles (user_id, role_id)"
                " select u.id, r.id from users u, roles r"
                " where r.name = $1 and u.email like 'm1%'",
                role,
            )
        rows = await con.fetch(
            "select u.id, u.email, exists (select 1 from user_roles ur join roles r"
            " on r.id = ur.role_id where ur.user_id = u.id and r.name = $1) as member"
            " from users u order by u.id",
            role,
        )
    m_ids = [r["id"] for r in rows if r["email"].startswith("m")]
    for after in (0, m_ids[9]):
        expected = [
            r["email"]
            for r in rows
            if text.lower() in r["email"].lower()
            and r["id"] > after
            and (r["member"] or not role)
        ][:4]
        assert len(expected) == 4
        for rare in (0, 1, 5, 11, 12, 1000):
            user_store.RARE_SUFFIXES, saved = rare, user_store.RARE_SUFFIXES
            try:
                flt = user_store.UserFilter(email_contains=text, role=role)
                page = await user_store.select_page(db, after, flt, 4)
            finally:
                user_store.RARE_SUFFIXES = saved
            assert [u.email for u in page] == expected, (text, after, rare)
