"""Reads shaped like a page are planned on their indexes and read O(page) rows.

Asserted on the plans PostgreSQL really picks (EXPLAIN ANALYZE on a seeded,
ANALYZEd database; no planner switches turned off beyond those the app sets
for text filters, plan_text_filter.sql), and on the rows each plan
node read, never on time (bench/scale.py times them at 10k to 1M users). Both
the plan for the values of a call and the generic plan are checked: after 5
executions PostgreSQL may reuse one generic plan for a prepared statement.
"""

from __future__ import annotations

import itertools
import json
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
from permdev.seed import seed
from permstore import audit as audit_store, users as user_store
from permstore.db import Database, create_database
from tests.conftest import ADMIN_PASSWORD
from tests.factories import APP_TABLES, acquire, insert_user

USERS = 10_000  # below ~10k users a scan of the whole table is honestly cheaper
PAGE = 6
INACTIVE = 30  # the last users


@pytest.fixture(scope="module")
async def role_ids(pool: asyncpg.Pool) -> list[int]:
    """Once for the module: the seed's synthetic users (1-3 of 20 team roles
    each), the last few deactivated, analyzed; the role ids."""
    async with acquire(pool) as con:
        await con.execute(f"truncate {APP_TABLES} restart identity cascade")
        await seed(con, admin_password=ADMIN_PASSWORD, users=USERS)
        await con.execute(
            "update users set is_active = false where id in (select id from users order by id desc limit $1)",
            INACTIVE,
        )
        await con.execute("analyze users, user_roles, roles, user_email_suffixes")
        return [r["id"] for r in await con.fetch("select id from roles order by id")]


@pytest.fixture
def clean(role_ids: list[int]) -> None:
    """Replaces the per-test reset: the tests here read the module's users."""


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "array[%s]::bigint[]" % ",".join(str(int(v)) for v in value)
    return "'" + str(value).replace("'", "''") + "'"


def _first_plan(explained: str) -> dict[str, Any]:
    plan: dict[str, Any] = json.loads(explained)[0]["Plan"]
    return plan


async def _plan(
    con: asyncpg.Connection, sql: str, *args: Any, generic: bool = False
) -> dict[str, Any]:
    """EXPLAIN ANALYZE of `sql` for these values: the plan made for them, or
    (generic) the one plan PostgreSQL would reuse for any values."""
    options = "explain (analyze, buffers, format json) "
    if not generic:
        return _first_plan(await con.fetchval(options + sql, *args))
    await con.execute("prepare scale_plan as " + sql)
    try:
        await con.execute("set plan_cache_mode = force_generic_plan")
        values = ", ".join(_literal(a) for a in args)
        return _first_plan(
            await con.fetchval(f"{options} execute scale_plan({values})")
        )
    finally:
        await con.execute("reset plan_cache_mode; deallocate scale_plan")


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += _nodes(child)
    return out


def _scans(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    return [n for n in _nodes(plan) if n.get("Relation Name") == relation]


def _rows_read(node: dict[str, Any]) -> int:
    """Rows a scan node produced plus those it read and threw away, over all loops."""
    per_loop = (
        node["Actual Rows"]
        + node.get("Rows Removed by Filter", 0)
        + node.get("Rows Removed by Index Recheck", 0)
    )
    return int(per_loop * node["Actual Loops"])


async def test_members_pages_read_one_index_range_per_role(
    pool: asyncpg.Pool, role_ids: list[int]
) -> None:
    async with acquire(pool) as con:
        for generic, after in itertools.product((False, True), (0, USERS // 2)):
            plan = await _plan(
                con,
                user_store.SELECT_MEMBERS_BY_ROLE_IDS,
                role_ids,
                after,
                PAGE + 1,
                generic=generic,
            )
            assert not any(n["Node Type"] == "WindowAgg" for n in _nodes(plan))
            (memberships,) = _scans(plan, "user_roles")
            assert memberships["Index Name"] == "user_roles_role_id_user_id_idx"
            assert memberships["Actual Loops"] == len(role_ids)  # one range per role
            assert _rows_read(memberships) <= len(role_ids) * (PAGE + 1)
            (users,) = _scans(plan, "users")
            assert users["Index Name"] == "users_pkey"
            assert _rows_read(users) <= len(role_ids) * (PAGE + 1)


def _executed(plan: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    return [n for n in _scans(plan, relation) if n["Actual Loops"]]


async def _email_plan(
    con: asyncpg.Connection,
    text: str,
    role_id: int | None = None,
    rare: int = user_store.RARE_SUFFIXES,
    active: bool | None = None,
) -> dict[str, Any]:
    prefix = user_store.prefix_pattern(text)
    args: tuple[Any, ...]
    if role_id is None:
        sql, args = user_store.SELECT_PAGE_BY_EMAIL, (text, prefix, active, 21, rare)
    else:
        sql = user_store.SELECT_PAGE_BY_EMAIL_AND_ROLE
        args = (text, prefix, role_id, active, 21, rare)
    async with con.transaction():  # as the app plans it
        await con.execute(user_store.PLAN_TEXT_FILTER)
        return await _plan(con, sql, 0, *args)


async def test_email_filter_reads_a_rare_texts_matches_and_a_common_texts_page(
    pool: asyncpg.Pool,
) -> None:
    async with acquire(pool) as con:
        # a rare text, every trigram of which every email holds ("use", "ser"):
        # its suffixes, then its one user by id; no trigram index, no walk
        rare = f"user{USERS}@"
        plan = await _email_plan(con, rare)
        (suffixes,) = _executed(plan, "user_email_suffixes")
        assert suffixes["Index Name"] == "user_email_suffixes_pkey"
        assert _rows_read(suffixes) == 1
        (heap,) = _executed(plan, "users")
        assert heap["Index Name"] == "users_pkey"
        assert _rows_read(heap) == 1
        assert not any(
            n.get("Index Name") == "users_email_trgm_idx" and n["Actual Loops"]
            for n in _nodes(plan)
        )
        # its count: the trigram index, O(matches)
        count_plan = await _plan(
            con, user_store.COUNT_BY_EMAIL, user_store.contains_pattern(rare), None
        )
        assert any(
            n.get("Index Name") == "users_email_trgm_idx" for n in _nodes(count_plan)
        )
        # a text every email holds: at most RARE_SUFFIXES + 1 suffixes, then
        # the emails holding its first four characters in id order, each looked
        # up by id, until the page is full
        plan = await _email_plan(con, "@example.com")
        scans = _by_index(plan, "user_email_suffixes")
        assert _rows_read(scans["user_email_suffixes_pkey"]) == (
            user_store.RARE_SUFFIXES + 1
        )
        assert _rows_read(scans["user_email_suffixes_head_idx"]) <= 21
        (scan,) = _executed(plan, "users")
        assert scan["Index Name"] == "users_pkey"
        assert _rows_read(scan) <= 21
        # a common text shorter than four characters: a walk of users_pkey
        plan = await _email_plan(con, "@ex")
        (scan,) = _executed(plan, "users")
        assert scan["Index Name"] == "users_pkey"
        assert _rows_read(scan) <= 21 + 1  # the admin, first, is not @example.com
        # with a role too: the rare text's matches, each checked for the role
        role = {
            r["name"]: r["id"] for r in await con.fetch("select name, id from roles")
        }
        plan = await _email_plan(con, rare, role["team-03"])
        (suffixes,) = _executed(plan, "user_email_suffixes")
        assert _rows_read(suffixes) == 1
        assert sum(_rows_read(n) for n in _executed(plan, "users")) <= 1
        assert sum(_rows_read(n) for n in _executed(plan, "user_roles")) <= 1
        # a common text and a small role: the merge ends with the role's range
        # (admin has one member)
        for text in ("@example.com", "@ex"):
            plan = await _email_plan(con, text, role["admin"])
            (memberships,) = _executed(plan, "user_roles")
            assert memberships["Index Name"] == "user_roles_role_id_user_id_idx"
            assert _rows_read(memberships) <= 1
            assert sum(_rows_read(n) for n in _executed(plan, "users")) <= 1
            head = _by_index(plan, "user_email_suffixes").get(
                "user_email_suffixes_head_idx"
            )
            assert head is None or _rows_read(head) <= 1
        # a text and a role that each hold many users but rarely together
        # (`er50`, taken as common here): the emails holding it and the role's
        # members merged in id order, up to the last match; never a walk of
        # every user, nor a lookup of every member
        holders = await con.fetch(
            "select u.id, exists (select 1 from user_roles ur where ur.user_id = u.id"
            " and ur.role_id = $1) as member from users u"
            " where strpos(u.email, 'er50') > 0 order by u.id",
            role["team-03"],
        )
        both = [h["id"] for h in holders if h["member"]]
        assert 0 < len(both) < 21 < len(holders) < USERS // 20
        plan = await _email_plan(con, "er50", role["team-03"], rare=20)
        head = _by_index(plan, "user_email_suffixes")["user_email_suffixes_head_idx"]
        assert _rows_read(head) <= len(holders)
        (memberships,) = _executed(plan, "user_roles")
        assert memberships["Index Name"] == "user_roles_role_id_user_id_idx"
        members_up_to_last = await con.fetchval(
            "select count(*) from user_roles where role_id = $1 and user_id <= $2",
            role["team-03"],
            holders[-1]["id"],
        )
        assert _rows_read(memberships) <= members_up_to_last + 1
        assert sum(_rows_read(n) for n in _executed(plan, "users")) == len(both)


async def test_a_common_text_among_deactivated_users_reads_only_them(
    pool: asyncpg.Pool,
) -> None:
    """isActive: false (usually few): the deactivated users, one range of
    users_is_active_idx, each tested; never the text's holders or every user."""
    async with acquire(pool) as con:
        team = await con.fetchval("select id from roles where name = 'team-03'")
        for text, role_id in itertools.product(("@example.com", "@ex"), (None, team)):
            plan = await _email_plan(con, text, role_id, active=False)
            (scan,) = _executed(plan, "users")
            assert scan["Index Name"] == "users_is_active_idx"
            assert _rows_read(scan) <= INACTIVE
            assert "user_email_suffixes_head_idx" not in _by_index(
                plan, "user_email_suffixes"
            )


def _by_index(plan: dict[str, Any], relation: str) -> dict[str, dict[str, Any]]:
    """The executed scans of `relation` by index name (one scan per index)."""
    scans = {n["Index Name"]: n for n in _executed(plan, relation)}
    assert len(scans) == len(_executed(plan, relation))
    return scans


async def test_the_audit_log_page_is_one_index_range_in_every_plan(
    pool: asyncpg.Pool,
) -> None:
    async with acquire(pool) as con:
        await con.execute(
            "insert into audit_log (action, target_type, target_id)"
            " select 'user.update', 'user', n::text from generate_series(1, 5000) n"
        )
        await con.execute("analyze audit_log")
        last = await con.fetchval("select max(id) from audit_log")
        try:
            for generic, before in itertools.product((False, True), (0, last - 4000)):
                plan = await _plan(
                    con, audit_store.SELECT_PAGE, before, 21, generic=generic
                )
                (scan,) = _scans(plan, "audit_log")
                assert scan["Index Name"] == "audit_log_pkey"
                assert _rows_read(scan) == 21
        finally:
            await con.execute("delete from audit_log")


async def test_role_and_active_filters_read_the_page_from_their_index(
    pool: asyncpg.Pool,
) -> None:
    async with acquire(pool) as con:
        for generic, after in itertools.product((False, True), (0, USERS // 2)):
            plan = await _plan(
                con,
                user_store.SELECT_PAGE_BY_ROLE,
                after,
                "team-03",
                None,
                21,
                generic=generic,
            )
            (memberships,) = _scans(plan, "user_roles")
            assert memberships["Index Name"] == "user_roles_role_id_user_id_idx"
            assert _rows_read(memberships) <= 21
            (users,) = _scans(plan, "users")
            assert users["Index Name"] == "users_pkey"
            assert _rows_read(users) <= 21
            # the inactive users are the last ones: the index starts at them
            plan = await _plan(
                con, user_store.SELECT_PAGE_BY_ACTIVE, after, False, 21, generic=generic
            )
            (scan,) = _scans(plan, "users")
            assert scan["Index Name"] == "users_is_active_idx"
            assert _rows_read(scan) <= 21


async def test_the_email_filter_is_planned_for_each_text(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    """Through the store, as the app runs it: never the generic plan, which walks
    every user for a text few emails hold (PostgreSQL switches a prepared
    statement to it after 5 executions when it looks cheaper on average)."""
    db = await create_database(
        settings.model_copy(update={"db_pool_min_size": 1, "db_pool_max_size": 1})
    )
    try:
        for n in range(12):
            text = "@example.com" if n % 2 else f"user{USERS - n}@"
            rows = await user_store.select_page(
                db, 0, user_store.UserFilter(email_contains=text), 21
            )
            assert len(rows) == (21 if n % 2 else 1)
        counts = await db.fetchrow(
            "select sum(generic_plans) as generic, sum(custom_plans) as custom "
            "from pg_prepared_statements where statement = $1",
            user_store.SELECT_PAGE_BY_EMAIL,
        )
    finally:
        await db.close()
    assert counts is not None
    assert (counts["generic"], counts["custom"]) == (0, 12)


_TEXT = st.text(alphabet="abAB%_\\ .@", min_size=1, max_size=6)


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(needle=_TEXT)
async def test_email_contains_takes_every_character_literally(
    settings: Settings, pool: asyncpg.Pool, needle: str
) -> None:
    """The text taken literally and case-insensitively, on every branch: rare
    and common, four characters or more (an email may hold the same four
    twice) or fewer, with a role, among active or deactivated users."""
    emails = [
        "a%b@x.io",
        "a_b@x.io",
        "a\\b@x.io",
        "ab@x.io",
        "A.B@x.io",
        "b a@x.io",
        "%_@x.io",
        "abababab@x.io",
        "AbAbA.b@x.io",
        "ba@ab.ab@x.io",
    ]
    async with acquire(pool) as con:
        await con.execute("delete from users where email like '%@x.io'")
        for n, email in enumerate(emails):
            await insert_user(
                con, email, roles=["team-03"] if n % 2 else [], active=n % 3 > 0
            )
        users = await con.fetch(
            "select u.email, u.is_active, exists (select 1 from user_roles ur"
            " join roles r on r.id = ur.role_id where ur.user_id = u.id"
            " and r.name = 'team-03') as member from users u order by u.id"
        )
    db = Database(pool, settings)
    saved = user_store.RARE_SUFFIXES
    for rare, active, role in itertools.product(
        (saved, 0), (None, True, False), (None, "team-03")
    ):  # read from its suffixes, then as a common text
        user_store.RARE_SUFFIXES = rare
        try:
            flt = user_store.UserFilter(
                email_contains=needle, is_active=active, role=role
            )
            expected = [
                u["email"]
                for u in users
                if needle.lower() in u["email"].lower()
                and (active is None or u["is_active"] == active)
                and (role is None or u["member"])
            ]
            page = await user_store.select_page(db, 0, flt, 100)
            assert [r.email for r in page] == expected[:100], (rare, active, role)
            assert await user_store.count_filtered(db, flt) == len(expected)
        finally:
            user_store.RARE_SUFFIXES = saved
