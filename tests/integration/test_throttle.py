"""Password guessing (issue 11, R6 and R7), written as the attacker's sequence.

No account is ever locked: failures are counted per (account, client address),
per address and per account, with progressive waits; a held attempt checks no
password, and unknown e-mails are held exactly like known ones. The client
address is the ASGI scope's (httpx's ASGITransport `client=`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

import permauth.sessions
from api.main import create_app
from permauth.passwords import hash_password, verify_password
from permbase.settings import Settings
from permdev.seed import ADMIN_EMAIL
from tests.conftest import ADMIN_PASSWORD
from tests.factories import acquire, codes, gql, insert_user

LOGIN = """mutation($e: String!, $p: String!) { login(email: $e, password: $p) {
  __typename ... on AuthPayload { accessToken } ... on AuthError { code retryAfterSeconds } } }"""
CHANGE = """mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) {
  __typename ... on InvalidInputError { field } ... on AuthError { code retryAfterSeconds } } }"""
STRANGER, ADMIN_HOME, ELSEWHERE = "203.0.113.7", "198.51.100.20", "192.0.2.99"
WAIT = (
    600.0  # the first wait: far longer than any test, so no assertion depends on timing
)

Clients = Callable[[str], httpx.AsyncClient]


@asynccontextmanager
async def app_from(settings: Settings, **changes: Any) -> AsyncIterator[Clients]:
    """The app with `changes`, and a client per client address."""
    application = create_app(
        settings.model_copy(update={"login_throttle_base_s": WAIT, **changes})
    )
    async with LifespanManager(application) as manager:
        made: list[httpx.AsyncClient] = []

        def client_at(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=manager.app, client=(address, 4711))
            made.append(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )
            return made[-1]

        try:
            yield client_at
        finally:
            for client in made:
                await client.aclose()


async def login(client: httpx.AsyncClient, email: str, password: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql(client, LOGIN, {"e": email, "p": password}))[
        "data"
    ]["login"]
    return result


def kind(result: dict[str, Any]) -> str:
    return "ok" if result["__typename"] == "AuthPayload" else result["code"]


async def pass_time(pool: asyncpg.Pool, seconds: float) -> None:
    """As if `seconds` had passed since every counted failure."""
    async with acquire(pool) as con:
        await con.execute(
            "update login_throttle set last_failure_at = last_failure_at - make_interval(secs => $1)",
            seconds,
        )


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every password check made (a held attempt must make none)."""
    made: list[str] = []
    real = verify_password

    async def counting(stored: str | None, password: str) -> tuple[bool, bool]:
        made.append(password)
        return await real(stored, password)

    monkeypatch.setattr(permauth.sessions, "verify_password", counting)
    return made


async def test_a_strangers_failures_do_not_keep_the_admin_out(
    settings: Settings,
) -> None:
    async with app_from(
        settings, login_throttle_base_s=1.0
    ) as client_at:  # the defaults
        stranger, admin = client_at(STRANGER), client_at(ADMIN_HOME)
        answers = [
            kind(await login(stranger, ADMIN_EMAIL, f"guess-{i}")) for i in range(20)
        ]
        assert set(answers) <= {"INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS"}
        assert (
            answers[: settings.login_throttle_pair_free]
            == ["INVALID_CREDENTIALS"] * settings.login_throttle_pair_free
        )
        # from another address, the admin logs in at once
        assert kind(await login(admin, ADMIN_EMAIL, ADMIN_PASSWORD)) == "ok"


async def test_the_same_pair_is_held_progressively_and_a_held_attempt_checks_nothing(
    settings: Settings, pool: asyncpg.Pool, checks: list[str]
) -> None:
    free = settings.login_throttle_pair_free
    async with app_from(settings, login_throttle_max_s=1e6) as client_at:
        stranger = client_at(STRANGER)
        for i in range(free):
            assert (
                kind(await login(stranger, ADMIN_EMAIL, f"guess-{i}"))
                == "INVALID_CREDENTIALS"
            )
        waits = []
        for k in range(3):
            checks.clear()
            held = await login(
                stranger, ADMIN_EMAIL, ADMIN_PASSWORD
            )  # even the right password
            assert kind(held) == "TOO_MANY_ATTEMPTS" and checks == []
            waits.append(held["retryAfterSeconds"])
            assert WAIT * 2**k - 10 <= waits[-1] <= WAIT * 2**k
            await pass_time(pool, waits[-1])
            assert (
                kind(await login(stranger, ADMIN_EMAIL, f"guess-again-{k}"))
                == "INVALID_CREDENTIALS"
            )
        assert waits[0] < waits[1] < waits[2]  # base, 2 base, 4 base


async def test_the_wait_is_capped_and_a_success_resets_the_pair(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with app_from(settings, login_throttle_max_s=900.0) as client_at:
        owner = client_at(ADMIN_HOME)
        for i in range(settings.login_throttle_pair_free + 3):
            await pass_time(pool, 1000)
            assert (
                kind(await login(owner, ADMIN_EMAIL, f"typo-{i}"))
                == "INVALID_CREDENTIALS"
            )
        held = await login(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
        assert (
            kind(held) == "TOO_MANY_ATTEMPTS" and held["retryAfterSeconds"] <= 900
        )  # not 600 * 2^3
        await pass_time(pool, 900)
        assert kind(await login(owner, ADMIN_EMAIL, ADMIN_PASSWORD)) == "ok"
        # the pair starts again: the next typos are free
        for i in range(settings.login_throttle_pair_free):
            assert (
                kind(await login(owner, ADMIN_EMAIL, f"typo-again-{i}"))
                == "INVALID_CREDENTIALS"
            )


async def test_unknown_emails_are_held_exactly_like_known_ones(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with app_from(settings) as client_at:
        stranger = client_at(STRANGER)
        seen = {}
        for email in (ADMIN_EMAIL, "nobody@permgraph.local"):
            seen[email] = [
                kind(await login(stranger, email, f"guess-{i}"))
                for i in range(settings.login_throttle_pair_free + 2)
            ]
        assert seen[ADMIN_EMAIL] == seen["nobody@permgraph.local"]
        assert seen[ADMIN_EMAIL][-1] == "TOO_MANY_ATTEMPTS"


async def test_concurrent_guesses_are_counted_one_by_one(
    settings: Settings, checks: list[str]
) -> None:
    async with app_from(settings) as client_at:
        stranger = client_at(STRANGER)
        answers = await asyncio.gather(
            *(login(stranger, ADMIN_EMAIL, f"burst-{i}") for i in range(20))
        )
        assert (
            sorted(kind(a) for a in answers)
            == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"] * 15
        )
        assert len(checks) == settings.login_throttle_pair_free


async def test_spraying_one_password_over_many_accounts_holds_the_address(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with acquire(pool) as con:
        for i in range(12):
            await insert_user(con, f"staff{i}@example.com")
    async with app_from(settings, login_throttle_address_free=10) as client_at:
        sprayer, admin = client_at(STRANGER), client_at(ADMIN_HOME)
        answers = [
            kind(await login(sprayer, f"staff{i}@example.com", "Summer2024!!"))
            for i in range(12)
        ]
        assert answers == ["INVALID_CREDENTIALS"] * 10 + ["TOO_MANY_ATTEMPTS"] * 2
        assert (
            kind(await login(sprayer, ADMIN_EMAIL, ADMIN_PASSWORD))
            == "TOO_MANY_ATTEMPTS"
        )  # any account, from there
        assert kind(await login(admin, ADMIN_EMAIL, ADMIN_PASSWORD)) == "ok"


async def test_guessing_from_many_addresses_holds_the_account_only_where_it_never_logged_in(
    settings: Settings,
) -> None:
    async with app_from(settings, login_throttle_account_free=10) as client_at:
        assert (
            kind(await login(client_at(ADMIN_HOME), ADMIN_EMAIL, ADMIN_PASSWORD))
            == "ok"
        )  # a known address
        for i in range(10):  # a botnet: one guess per address
            assert (
                kind(await login(client_at(f"10.0.{i}.1"), ADMIN_EMAIL, f"guess-{i}"))
                == "INVALID_CREDENTIALS"
            )
        assert (
            kind(await login(client_at("10.0.99.1"), ADMIN_EMAIL, "guess-99"))
            == "TOO_MANY_ATTEMPTS"
        )
        assert (
            kind(await login(client_at(ELSEWHERE), ADMIN_EMAIL, ADMIN_PASSWORD))
            == "TOO_MANY_ATTEMPTS"
        )
        # the owner's own address is not held by the account-wide counter
        assert (
            kind(await login(client_at(ADMIN_HOME), ADMIN_EMAIL, ADMIN_PASSWORD))
            == "ok"
        )


async def test_an_ipv6_attacker_cannot_rotate_through_its_64(
    settings: Settings,
) -> None:
    async with app_from(settings) as client_at:
        answers = [
            kind(
                await login(
                    client_at(f"2001:db8:1:2::{i:x}"), ADMIN_EMAIL, f"guess-{i}"
                )
            )
            for i in range(8)
        ]
        assert answers[-1] == "TOO_MANY_ATTEMPTS"
        assert (
            kind(await login(client_at("2001:db8:1:3::1"), ADMIN_EMAIL, ADMIN_PASSWORD))
            == "ok"
        )  # another /64


async def test_wrong_current_passwords_count_toward_the_same_throttle(
    settings: Settings, pool: asyncpg.Pool, checks: list[str]
) -> None:
    async with acquire(pool) as con:
        uid = await insert_user(con, "holder@example.com", roles=["viewer"])
        await con.execute(
            "update users set password_hash = $2 where id = $1",
            uid,
            await hash_password("the-holders-password"),
        )
    async with app_from(settings) as client_at:
        thief, owner = client_at(STRANGER), client_at(ADMIN_HOME)
        # the thief holds a copied access token and guesses the current password
        token = (await login(owner, "holder@example.com", "the-holders-password"))[
            "accessToken"
        ]
        for i in range(settings.login_throttle_pair_free):
            body = await gql(
                thief,
                CHANGE,
                {"c": f"guess-{i}-guess", "n": "thieves-new-password"},
                token=token,
            )
            assert body["data"]["changePassword"] == {
                "__typename": "InvalidInputError",
                "field": "currentPassword",
            }
        checks.clear()
        body = await gql(
            thief,
            CHANGE,
            {"c": "the-holders-password", "n": "thieves-new-password"},
            token=token,
        )
        assert (
            body["data"]["changePassword"]["code"] == "TOO_MANY_ATTEMPTS"
            and checks == []
        )
        # one throttle: logins of that account from that address are held too
        assert (
            kind(await login(thief, "holder@example.com", "the-holders-password"))
            == "TOO_MANY_ATTEMPTS"
        )
        assert (
            kind(await login(owner, "holder@example.com", "the-holders-password"))
            == "ok"
        )


async def test_thirty_aliased_password_changes_are_refused_at_validation(
    client: httpx.AsyncClient, admin_token: str, checks: list[str]
) -> None:
    aliases = " ".join(
        f'c{i}: changePassword(currentPassword: "guess-{i}", newPassword: "new-password-123") {{ __typename }}'
        for i in range(30)
    )
    for document in (
        f"mutation {{ {aliases} }}",
        'mutation { login(email: "a@x.io", password: "guess-1") { __typename } '
        'changePassword(currentPassword: "guess-2", newPassword: "new-password-123") { __typename } }',
        'mutation { ...A ...B } fragment A on Mutation { a: changePassword(currentPassword: "g1", newPassword: "new-password-123") '
        '{ __typename } } fragment B on Mutation { b: changePassword(currentPassword: "g2", newPassword: "new-password-123") { __typename } }',
    ):
        body = await gql(client, document, token=admin_token, expect_errors=True)
        assert body.get("data") is None and codes(body) == [
            "GRAPHQL_VALIDATION_FAILED"
        ], body
    assert checks == []  # not one password was checked
    # one password check per document is fine
    single = await gql(
        client,
        'mutation { changePassword(currentPassword: "guess", newPassword: "new-password-123") { __typename } }',
        token=admin_token,
    )
    assert (
        single["data"]["changePassword"]["__typename"] == "InvalidInputError"
        and len(checks) == 1
    )
