"""Demo data: `python -m permdev.seed [--users N]`.

Roles admin/editor/viewer with the base permissions, an admin account (password
from ADMIN_PASSWORD, or generated and printed once), and optionally N synthetic
users with 1-3 synthetic team roles each, every 10th a viewer and every 50th an
editor (deterministic; 10,000 in about a second).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from dataclasses import dataclass

import asyncpg

from permauth.passwords import hash_password
from permstore.db import read_sql

logger = logging.getLogger(__name__)

PERMISSIONS = {
    "users:read": "Read users",
    "users:write": "Create, update, deactivate users",
    "roles:read": "Read roles and memberships",
    "roles:write": "Manage roles and role assignments",
    "permissions:read": "Read permissions",
    "permissions:write": "Manage permissions and the permission cache",
    "api_keys:read": "Read API keys",
    "audit:read": "Read the audit log",
}
ROLES = {
    "admin": ("Everything", list(PERMISSIONS)),
    "editor": (
        "Manage users and read roles",
        ["users:read", "users:write", "roles:read", "permissions:read"],
    ),
    "viewer": ("Read-only", ["users:read", "roles:read", "permissions:read"]),
}
ADMIN_EMAIL = "admin@permgraph.local"
SYNTHETIC_ROLES = 20
SYNTHETIC_PERMISSIONS = 40


@dataclass(frozen=True, slots=True)
class SeedResult:
    admin_email: str
    admin_password: str | None  # only when generated now (printed once)
    admin_created: bool


async def seed(
    con: asyncpg.Connection, *, admin_password: str | None = None, users: int = 0
) -> SeedResult:
    """Idempotent, and steerable by nobody: the built-in roles are found by their
    stable key (`roles.builtin_key`), never by today's name, and what the seed did
    once (`seed_mark`) it never does again, so on a database that has data it
    changes nothing an admin made. Later versions' new built-in permissions are
    added and granted to the built-in admin role, once, when they are created."""
    generated = None
    admin_id: int | None = None
    async with con.transaction():
        await con.execute(read_sql("seed/lock"))
        marks = {
            r["key"]: r["ref"]
            for r in await con.fetch(read_sql("seed_mark/select_all"))
        }
        rows = await con.fetch(
            read_sql("seed/insert_missing_permissions"),
            list(PERMISSIONS),
            list(PERMISSIONS.values()),
        )
        created = {r["code"] for r in rows}
        builtin = {
            r["builtin_key"]: r["id"]
            for r in await con.fetch(read_sql("seed/select_builtin_roles"))
        }
        if "base" not in marks:
            for key, (description, codes) in ROLES.items():
                if key not in builtin:
                    builtin[key] = await con.fetchval(
                        read_sql("seed/insert_builtin_role"), key, key, description
                    )
                    await con.execute(read_sql("seed/grant_codes"), builtin[key], codes)
            await con.execute(read_sql("seed_mark/insert"), "base", None)
        elif created and "admin" in builtin:
            # a built-in permission this version introduces: the built-in admin gets it
            await con.execute(
                read_sql("seed/grant_codes"), builtin["admin"], sorted(created)
            )
        if "first_admin" not in marks:
            password = admin_password
            if password is None:
                password = generated = secrets.token_urlsafe(18)
            admin_id = await con.fetchval(
                read_sql("seed/insert_admin"),
                ADMIN_EMAIL,
                await hash_password(password),
            )
            if admin_id is not None and "admin" in builtin:
                await con.execute(
                    read_sql("seed/assign_role"), admin_id, builtin["admin"]
                )
            await con.execute(read_sql("seed_mark/insert"), "first_admin", admin_id)
        if users > (marks.get("synthetic_users") or 0):
            # only what this run creates gets roles and grants: an account or a
            # role someone else made with a matching e-mail or name is left alone
            codes = [
                r["code"]
                for r in await con.fetch(
                    read_sql("seed/synthetic_permissions"), SYNTHETIC_PERMISSIONS
                )
            ]
            roles = [
                r["id"]
                for r in await con.fetch(
                    read_sql("seed/synthetic_roles"), SYNTHETIC_ROLES
                )
            ]
            await con.execute(
                read_sql("seed/synthetic_grants"),
                SYNTHETIC_ROLES,
                SYNTHETIC_PERMISSIONS,
                roles,
            )
            new_users = [
                r["id"]
                for r in await con.fetch(read_sql("seed/synthetic_users"), users)
            ]
            await con.execute(
                read_sql("seed/synthetic_memberships"), SYNTHETIC_ROLES, new_users
            )
            if {"viewer", "editor"} <= builtin.keys():
                await con.execute(
                    read_sql("seed/synthetic_builtin_memberships"),
                    builtin["viewer"],
                    builtin["editor"],
                    new_users,
                )
            if "admin" in builtin and codes:
                await con.execute(read_sql("seed/grant_codes"), builtin["admin"], codes)
            await con.execute(read_sql("seed_mark/insert"), "synthetic_users", users)
    return SeedResult(
        ADMIN_EMAIL, generated if admin_id is not None else None, admin_id is not None
    )


async def _main(database_url: str, users: int) -> None:
    con = await asyncpg.connect(database_url)
    try:
        result = await seed(
            con, admin_password=os.environ.get("ADMIN_PASSWORD") or None, users=users
        )
    finally:
        await con.close()
    if result.admin_password:
        logger.warning(
            "admin account %s created with password %s (shown once)",
            result.admin_email,
            result.admin_password,
        )


def main() -> None:
    from permbase.log_setup import configure_logging
    from permbase.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--users", type=int, default=0, help="synthetic users to create"
    )
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level)
    asyncio.run(_main(settings.database_url, args.users))


if __name__ == "__main__":
    main()

__all__ = ["ADMIN_EMAIL", "PERMISSIONS", "ROLES", "SeedResult", "seed"]
