"""Demo data: `python -m api.seed [--users N]`.

Roles admin/editor/viewer with the base permissions, an admin account (password
from ADMIN_PASSWORD, or generated and printed once), and optionally N synthetic
users with 1-3 synthetic team roles each (deterministic; 10,000 in about a second).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from dataclasses import dataclass

import asyncpg

from api.db import read_sql
from api.passwords import hash_password

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
    "editor": ("Manage users and read roles", ["users:read", "users:write", "roles:read", "permissions:read"]),
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


async def seed(con: asyncpg.Connection, *, admin_password: str | None = None, users: int = 0) -> SeedResult:
    generated = None
    async with con.transaction():
        for code, description in PERMISSIONS.items():
            await con.execute(read_sql("seed/upsert_permission"), code, description)
        for name, (description, codes) in ROLES.items():
            await con.execute(read_sql("seed/upsert_role"), name, description)
            await con.execute(read_sql("seed/grant_by_name"), name, codes)
        password = admin_password
        if password is None:
            password = generated = secrets.token_urlsafe(18)
        row = await con.fetchrow(read_sql("seed/upsert_admin"), ADMIN_EMAIL, await hash_password(password))
        assert row is not None  # noqa: S101 - upsert returns a row
        await con.execute(read_sql("seed/assign_by_name"), row["id"], "admin")
        if users:
            await con.execute(read_sql("seed/synthetic_roles"), SYNTHETIC_ROLES, SYNTHETIC_PERMISSIONS)
            await con.execute(read_sql("seed/synthetic_grants"), SYNTHETIC_ROLES, SYNTHETIC_PERMISSIONS)
            await con.execute(read_sql("seed/synthetic_users"), users)
            await con.execute(read_sql("seed/synthetic_memberships"), SYNTHETIC_ROLES)
    created = bool(row["created"])
    return SeedResult(ADMIN_EMAIL, generated if created else None, created)


async def _main(database_url: str, users: int) -> None:
    con = await asyncpg.connect(database_url)
    try:
        result = await seed(con, admin_password=os.environ.get("ADMIN_PASSWORD") or None, users=users)
    finally:
        await con.close()
    if result.admin_password:
        logger.warning("admin account %s created with password %s (shown once)", result.admin_email, result.admin_password)


def main() -> None:
    from api.log_setup import configure_logging
    from api.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=0, help="synthetic users to create")
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings.log_level)
    asyncio.run(_main(settings.database_url, args.users))


if __name__ == "__main__":
    main()

__all__ = ["ADMIN_EMAIL", "PERMISSIONS", "ROLES", "SeedResult", "seed"]
