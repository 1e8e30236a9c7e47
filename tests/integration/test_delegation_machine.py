"""A stateful search for escalation: delegates holding random subsets of the write
permissions run random sequences of every privilege-changing mutation (including
delete and re-create of codes, renames, e-mail changes), through the real API.

Invariants, checked after every step against PostgreSQL:
- no permission flows to the delegates from outside what they held together at
  the start (codes created during the run and never granted before excepted:
  those are the one documented exception);
- no subject (user or role) holding a permission outside the acting delegate's
  set loses anything to that delegate: not a code, not its activation, not its
  e-mail, not its name;
- no response is an internal error.

Hypothesis' stateful machines are synchronous, so the app runs on an event loop
of its own in a second thread and each step waits for its request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from hypothesis import (
    HealthCheck,
    event,
    settings as hypothesis_settings,
    strategies as st,
)
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from api.main import create_app
from permbase.settings import Settings
from permdev.seed import seed
from tests.conftest import ADMIN_PASSWORD
from tests.factories import APP_TABLES, acquire, token_for

T = TypeVar("T")

WRITES = ["users:write", "roles:write", "permissions:write"]
READS = ["users:read", "roles:read", "permissions:read"]
CODES = [
    *READS,
    *WRITES,
    "audit:read",
    "api_keys:read",
    "res:read",
    "res:write",
    "new:one",
    "new:two",
]
NAMES = ["admin", "viewer", "team-a", "team-b", "fresh", "d0", "d1"]
EMAILS = ["admin@permgraph.local", "x@example.com", "d0@example.com", "v1@example.com"]
INDEX = st.integers(0, 63)


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


class World:
    """The app and a pool, on the machine's loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.manager: LifespanManager | None = None
        self.pool: asyncpg.Pool | None = None
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.manager = LifespanManager(
            create_app(self.settings)
        )  # detects the loop: built on it
        await self.manager.__aenter__()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.manager.app), base_url="http://t"
        )
        self.pool = await asyncpg.create_pool(
            self.settings.database_url, min_size=1, max_size=2
        )

    async def stop(self) -> None:
        assert (
            self.client is not None
            and self.pool is not None
            and self.manager is not None
        )
        await self.client.aclose()
        await self.pool.close()
        await self.manager.__aexit__(None, None, None)

    async def reset(self, delegate_sets: list[set[str]]) -> dict[str, Any]:
        assert self.pool is not None
        async with acquire(self.pool) as con:
            await con.execute(f"truncate {APP_TABLES} restart identity cascade")
            await seed(con, admin_password=ADMIN_PASSWORD)
            await con.execute(
                "insert into permissions (code) values ('res:read'), ('res:write')"
            )
            await con.execute(
                "insert into role_permissions select r.id, p.id from roles r, permissions p"
                " where r.builtin_key = 'admin' and p.code like 'res:%'"
            )

            async def role(name: str, codes: list[str]) -> int:
                rid = int(
                    await con.fetchval(
                        "insert into roles (name) values ($1) returning id", name
                    )
                )
                await con.execute(
                    "insert into role_permissions select $1, id from permissions where code = any($2::text[])",
                    rid,
                    codes,
                )
                return rid

            async def user(email: str, roles: list[int]) -> int:
                uid = int(
                    await con.fetchval(
                        "insert into users (email) values ($1) returning id", email
                    )
                )
                for rid in roles:
                    await con.execute(
                        "insert into user_roles values ($1, $2)", uid, rid
                    )
                return uid

            team_a = await role("team-a", ["res:read", "users:read"])
            team_b = await role("team-b", ["res:write", "roles:read"])
            viewer = int(
                await con.fetchval("select id from roles where builtin_key = 'viewer'")
            )
            await user("v1@example.com", [team_a])
            await user("v2@example.com", [team_b, viewer])
            await user("v3@example.com", [])
            delegates = []
            for i, codes in enumerate(delegate_sets):
                rid = await role(f"d{i}", sorted(codes))
                delegates.append(await user(f"d{i}@example.com", [rid]))
        assert self.client is not None
        await self.client.post(
            "/graphql",
            json={"query": "mutation { invalidatePermissionCache { __typename } }"},
            headers={"Authorization": f"Bearer {token_for(1, self.settings)}"},
        )
        return {
            "delegates": delegates,
            "tokens": [token_for(d, self.settings) for d in delegates],
        }

    async def state(self) -> dict[str, Any]:
        assert self.pool is not None
        async with acquire(self.pool) as con:
            users = await con.fetch(
                "select u.id, u.email, u.is_active, coalesce(array_agg(distinct p.code) filter (where p.code is not null), '{}') codes"
                " from users u left join user_roles ur on ur.user_id = u.id left join role_permissions rp on rp.role_id = ur.role_id"
                " left join permissions p on p.id = rp.permission_id group by u.id"
            )
            roles = await con.fetch(
                "select r.id, r.name, coalesce(array_agg(p.code) filter (where p.code is not null), '{}') codes"
                " from roles r left join role_permissions rp on rp.role_id = r.id left join permissions p on p.id = rp.permission_id group by r.id"
            )
            permissions = await con.fetch(
                "select id, code from permissions order by id"
            )
            granted = await con.fetch("select code from granted_permission_code")
        return {
            "users": {
                r["id"]: (r["email"], r["is_active"], frozenset(r["codes"]))
                for r in users
            },
            "roles": {r["id"]: (r["name"], frozenset(r["codes"])) for r in roles},
            "permissions": [(r["id"], r["code"]) for r in permissions],
            "granted": {r["code"] for r in granted},
        }

    async def call(
        self, token: str, document: str, variables: dict[str, Any]
    ) -> dict[str, Any]:
        assert self.client is not None
        response = await self.client.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        # refusals are coded: FORBIDDEN for a mutation the delegate may not call at
        # all, UNAUTHENTICATED once it deactivated itself; never an internal error
        expected = {"BAD_USER_INPUT", "FORBIDDEN", "UNAUTHENTICATED"}
        errors = [
            e
            for e in body.get("errors", [])
            if e.get("extensions", {}).get("code") not in expected
        ]
        assert not errors, errors
        return body


def _user(state: dict[str, Any], index: int) -> str:
    users = sorted(state["users"])
    return str(users[index % len(users)])


def _role(state: dict[str, Any], index: int) -> str:
    roles = sorted(state["roles"])
    return str(roles[index % len(roles)]) if roles else "1"


def _permission(state: dict[str, Any], index: int) -> str:
    permissions = state["permissions"]
    return str(permissions[index % len(permissions)][0]) if permissions else "1"


class Delegation(RuleBasedStateMachine):
    runner: LoopThread
    world: World

    @initialize(
        sets=st.lists(
            st.sets(st.sampled_from(WRITES), min_size=1), min_size=2, max_size=3
        ),
        reads=st.lists(
            st.sets(st.sampled_from([*READS, "res:read", "api_keys:read"])),
            min_size=3,
            max_size=3,
        ),
    )
    def setup(self, sets: list[set[str]], reads: list[set[str]]) -> None:
        delegate_sets = [s | r for s, r in zip(sets, reads, strict=False)]
        made = self.runner.run(self.world.reset(delegate_sets))
        self.delegates: list[int] = made["delegates"]
        self.tokens: list[str] = made["tokens"]
        start = self.runner.run(self.world.state())
        self.universe = {code for _, code in start["permissions"]}
        self.coalition = frozenset().union(
            *(start["users"][d][2] for d in self.delegates)
        )
        self.fresh: set[str] = (
            set()
        )  # codes created during the run that were never granted

    def _act(
        self,
        actor: int,
        document: str,
        variables: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """Run one mutation as delegate `actor`; `variables` picks its targets
        from the state before it."""
        actor %= len(self.delegates)
        before = self.runner.run(self.world.state())
        body = self.runner.run(
            self.world.call(self.tokens[actor], document, variables(before))
        )
        outcome = next(iter((body.get("data") or {}).values()), None)
        event(
            f"{document.split('(')[1].split()[-1]}: {outcome and outcome['__typename']}"
        )  # --hypothesis-show-statistics
        after = self.runner.run(self.world.state())
        self.fresh |= (
            {code for _, code in after["permissions"]}
            - self.universe
            - before["granted"]
        )
        email, active, mine = before["users"][self.delegates[actor]]
        held = mine if active else frozenset()
        for uid, (email, active, codes) in before["users"].items():
            if codes <= held:
                continue
            now = after["users"][uid]
            assert now[2] >= codes, (
                f"user {uid} lost {codes - now[2]} to delegate {actor} ({sorted(held)})"
            )
            assert now[1] >= active and now[0] == email, (
                f"user {uid} changed by delegate {actor}"
            )
        for rid, (name, codes) in before["roles"].items():
            if codes <= held:
                continue
            assert rid in after["roles"], f"role {rid} deleted by delegate {actor}"
            now_name, now_codes = after["roles"][rid]
            assert now_name == name and now_codes >= codes, (
                f"role {rid} changed by delegate {actor}"
            )

    @rule(actor=INDEX, user=INDEX, role=INDEX, assign=st.booleans())
    def membership(self, actor: int, user: int, role: int, assign: bool) -> None:
        field = "assignRole" if assign else "removeRole"
        self._act(
            actor,
            f"mutation($u: ID!, $r: ID!) {{ {field}(userId: $u, roleId: $r) {{ __typename }} }}",
            lambda now: {"u": _user(now, user), "r": _role(now, role)},
        )

    @rule(actor=INDEX, role=INDEX, code=st.sampled_from(CODES), grant=st.booleans())
    def grant(self, actor: int, role: int, code: str, grant: bool) -> None:
        field = "grantPermission" if grant else "revokePermission"
        self._act(
            actor,
            f"mutation($r: ID!, $c: String!) {{ {field}(roleId: $r, code: $c) {{ __typename }} }}",
            lambda now: {"r": _role(now, role), "c": code},
        )

    @rule(actor=INDEX, role=INDEX, codes=st.sets(st.sampled_from(CODES), max_size=4))
    def set_permissions(self, actor: int, role: int, codes: set[str]) -> None:
        self._act(
            actor,
            "mutation($r: ID!, $c: [String!]!) { setRolePermissions(roleId: $r, codes: $c) { __typename } }",
            lambda now: {"r": _role(now, role), "c": sorted(codes)},
        )

    @rule(actor=INDEX, role=INDEX, name=st.sampled_from(NAMES))
    def rename_role(self, actor: int, role: int, name: str) -> None:
        self._act(
            actor,
            "mutation($r: ID!, $n: String!) { updateRole(id: $r, input: {name: $n}) { __typename } }",
            lambda now: {"r": _role(now, role), "n": name},
        )

    @rule(actor=INDEX, role=INDEX)
    def delete_role(self, actor: int, role: int) -> None:
        self._act(
            actor,
            "mutation($r: ID!) { deleteRole(id: $r) { __typename } }",
            lambda now: {"r": _role(now, role)},
        )

    @rule(
        actor=INDEX,
        name=st.sampled_from(NAMES),
        codes=st.sets(st.sampled_from(CODES), max_size=3),
    )
    def create_role(self, actor: int, name: str, codes: set[str]) -> None:
        self._act(
            actor,
            "mutation($n: String!, $c: [String!]!) { createRole(input: {name: $n, permissionCodes: $c}) { __typename } }",
            lambda _: {"n": name, "c": sorted(codes)},
        )

    @rule(actor=INDEX, code=st.sampled_from(CODES))
    def create_permission(self, actor: int, code: str) -> None:
        self._act(
            actor,
            "mutation($c: String!) { createPermission(code: $c) { __typename } }",
            lambda _: {"c": code},
        )

    @rule(actor=INDEX, permission=INDEX)
    def delete_permission(self, actor: int, permission: int) -> None:
        self._act(
            actor,
            "mutation($p: ID!) { deletePermission(id: $p) { __typename } }",
            lambda now: {"p": _permission(now, permission)},
        )

    @rule(actor=INDEX, user=INDEX, active=st.booleans())
    def activation(self, actor: int, user: int, active: bool) -> None:
        field = "reactivateUser" if active else "deactivateUser"
        self._act(
            actor,
            f"mutation($u: ID!) {{ {field}(id: $u) {{ __typename }} }}",
            lambda now: {"u": _user(now, user)},
        )

    @rule(actor=INDEX, user=INDEX, email=st.sampled_from(EMAILS))
    def change_email(self, actor: int, user: int, email: str) -> None:
        self._act(
            actor,
            "mutation($u: ID!, $e: String!) { updateUser(id: $u, input: {email: $e}) { __typename } }",
            lambda now: {"u": _user(now, user), "e": email},
        )

    @invariant()
    def no_delegate_climbs(self) -> None:
        if not hasattr(self, "delegates"):
            return
        state = self.runner.run(self.world.state())
        allowed = self.coalition | self.fresh
        for uid in self.delegates:
            gained = state["users"][uid][2] - allowed
            assert not gained, f"delegate {uid} holds {sorted(gained)}"


def test_no_sequence_of_mutations_lets_a_delegate_climb(settings: Settings) -> None:
    runner = LoopThread()
    world = World(settings)
    runner.run(world.start())
    Delegation.runner, Delegation.world = runner, world
    try:
        machine = Delegation.TestCase
        machine.settings = hypothesis_settings(
            max_examples=40,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        machine().runTest()
    finally:
        runner.run(world.stop())
        runner.stop()
