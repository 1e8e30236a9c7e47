"""The delegation rule: who may change whom. Stated once, here, below GraphQL.

    A caller may change a subject only if the caller holds every permission that
    the subject holds before and after the change.

Subjects are users (their roles, e-mail, profile, password, activation) and
roles (their permissions, name, deletion). A change that takes permissions away
from a role's or a permission's holders makes each holder a subject too: a
delegate never strips anyone who holds something the delegate does not. The
table of mutations and what each needs is in SECURITY.md.

Two more rules close the ways around it:
- Codes cannot be laundered. Only a holder deletes a permission code, and the
  codes permgraph checks itself (`SERVICE_CODES`) are never deleted. The one
  exception to "hold what you hand out" (or a new permission could never be
  granted): a holder of `permissions:write` may grant a code that was never
  granted to any role, ever (`granted_permission_code`, kept by a trigger, so a
  deleted and re-created code stays "seen"); and a caller who holds every other
  code that exists may grant or delete a code that nobody holds (nobody can be
  above them on it).
- Nobody removes the last active holder of `roles:write` (the permission that
  repairs every other mistake).

Every check runs inside the mutation's transaction, after an advisory lock that
serialises all privilege changes, against the caller's permissions as committed
(not the cached entry): two delegates racing cannot both pass on a state that
only one of them would leave.

Unknown and forbidden subjects look the same to a caller who may not read that
kind of subject: both are `Denied` without detail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from permstore import holdings, roles as role_store

if TYPE_CHECKING:
    import asyncpg

GUARDED_PERMISSION = "roles:write"
PERMISSION_ADMIN = "permissions:write"
# the codes permgraph itself checks: they cannot be deleted (tests/unit checks
# this against every code the schema names)
SERVICE_CODES = frozenset(
    {
        "users:read",
        "users:write",
        "roles:read",
        "roles:write",
        "permissions:read",
        "permissions:write",
        "audit:read",
    }
)
# resources whose codes only permgraph defines (its seed): nobody creates
# `audit:write` today to hold it when a later version starts checking it
RESERVED_RESOURCES = frozenset({"users", "roles", "permissions", "audit", "api_keys"})
# what a caller must hold to learn that a subject of this kind exists
_READ = {"user": "users:read", "role": "roles:read", "permission": "permissions:read"}


class Denied(Exception):
    """The rule refuses the change; `missing` names what the caller lacks (empty
    when the caller may not see it)."""

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.missing = sorted(missing)


class Unknown(Exception):
    """The subject does not exist, told to a caller who may read that kind."""

    def __init__(self, entity: str, ident: int) -> None:
        super().__init__(f"No {entity} with id {ident}.")
        self.entity = entity
        self.ident = ident


@dataclass(frozen=True, slots=True)
class Delegation:
    """One privilege change's view of the caller, read after the lock."""

    con: asyncpg.Connection
    caller_id: int
    held: frozenset[str]

    def may_read(self, entity: str) -> bool:
        return _READ[entity] in self.held

    def unknown(self, entity: str, ident: int) -> Exception:
        """What to raise for a subject that does not exist."""
        if self.may_read(entity):
            return Unknown(entity, ident)
        return Denied(f"You may not change {entity} {ident}.")

    def require(self, codes: Iterable[str], entity: str, ident: int | str) -> None:
        """Refuse unless the caller holds every one of `codes` (held by the subject)."""
        missing = set(codes) - self.held
        if not missing:
            return
        if (
            self.may_read(entity) and "permissions:read" in self.held
        ):  # it may see what the subject holds
            raise Denied(
                f"You may not change {entity} {ident}: it holds permissions you do not hold: "
                + ", ".join(sorted(missing))
                + ".",
                missing,
            )
        raise Denied(f"You may not change {entity} {ident}.")

    async def change_user(self, user_id: int, *, gaining: Iterable[str] = ()) -> None:
        """A user whose roles, profile, password or activation change; `gaining`:
        the codes the user holds after the change that it may not hold before."""
        held = await holdings.codes_held_by_users(self.con, [user_id])
        self.require(held | set(gaining), "user", user_id)

    async def change_role(
        self,
        role_id: int,
        before: Iterable[str],
        *,
        after: Iterable[str] | None = None,
        holders_lose: bool = False,
    ) -> None:
        """A role whose permissions (`before` -> `after`), name or existence
        change. `holders_lose`: the change may take permissions away from the
        role's holders, who are then subjects too."""
        before_set = frozenset(before)
        after_set = before_set if after is None else frozenset(after)
        added = after_set - before_set
        await self.grant(added)  # first: the codes the caller named itself
        # codes the role keeps or loses: the caller must hold them all
        self.require(before_set, "role", role_id)
        if holders_lose:
            self.require(
                await holdings.codes_held_by_role_holders(self.con, role_id),
                "role",
                role_id,
            )

    async def grant(self, codes: Iterable[str]) -> None:
        """Codes about to be granted to a role: held by the caller, or new."""
        missing = set(codes) - self.held
        if missing:
            missing -= await self._unclaimed(missing)
        if missing:
            raise Denied(
                "You cannot grant permissions you do not hold: "
                + ", ".join(sorted(missing))
                + ".",
                missing,
            )

    async def _unclaimed(self, codes: set[str]) -> set[str]:
        """Those of `codes` (which the caller lacks) that nobody can be above the
        caller on: never granted to any role, for a holder of permissions:write;
        or held by nobody, for a caller who holds every other code."""
        unclaimed: set[str] = set()
        if PERMISSION_ADMIN in self.held:
            unclaimed = codes - await holdings.ever_granted(self.con, codes)
        rest = codes - unclaimed
        if rest and (await holdings.all_codes(self.con)) - rest <= self.held:
            unclaimed |= rest - await holdings.held_codes(self.con, rest)
        return unclaimed

    async def delete_permission(self, permission_id: int, code: str) -> None:
        """Only a holder deletes a code (or, for a code nobody holds, a caller
        who holds every other code); the service's own codes stay; every role
        and every user holding the code loses it, so each is a subject."""
        if code in SERVICE_CODES:
            raise Denied(
                f"{code!r} is checked by permgraph itself and cannot be deleted."
            )
        rules = self
        if code not in self.held and await self._unclaimed({code}):
            rules = Delegation(self.con, self.caller_id, self.held | {code})
        rules.require([code], "permission", permission_id)
        # every role that holds the code loses it (with holders or not), and so
        # does every holder: each is a subject
        roles = await holdings.codes_of_roles_holding_permission(
            self.con, permission_id
        )
        holders = await holdings.codes_held_by_permission_holders(
            self.con, permission_id
        )
        rules.require(roles | holders, "permission", permission_id)

    async def guard_holder_remains(self) -> None:
        """After a change that may take privileges away: someone active must still
        hold roles:write."""
        if await role_store.count_active_holders(self.con, GUARDED_PERMISSION) == 0:
            raise Denied(f"This would leave nobody holding {GUARDED_PERMISSION!r}.")


async def begin(
    con: asyncpg.Connection, caller_id: int | None, needs: str
) -> Delegation:
    """Serialise privilege changes (the advisory lock, held to commit), then read
    the caller's permissions as committed and check again the permission the
    mutation needs (the field's check read the cached entry, before the lock: a
    revocation may have committed since)."""
    await role_store.lock_guard(con)
    if caller_id is None:
        raise Denied("Authentication required.")
    if not await holdings.is_active(con, caller_id):
        raise Denied("The account is deactivated or does not exist.")
    held = await holdings.codes_held_by_users(con, [caller_id])
    if needs not in held:
        raise Denied(f"Missing permission {needs!r}.", [needs])
    return Delegation(con, caller_id, held)


__all__ = [
    "GUARDED_PERMISSION",
    "PERMISSION_ADMIN",
    "RESERVED_RESOURCES",
    "SERVICE_CODES",
    "Delegation",
    "Denied",
    "Unknown",
    "begin",
]
