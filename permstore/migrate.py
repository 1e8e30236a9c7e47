"""Forward-only migrations: `python -m permstore.migrate`.

Applies `sql/migrations/NNNN_<slug>.sql` in order, each file in its own transaction,
under a PostgreSQL advisory lock so that two instances starting together do not race.
Each applied file is recorded with its sha256; an applied file that changed since is
refused (write a new migration instead).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from permstore.db import SQL_DIR

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = SQL_DIR / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7065726D  # "perm"


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            msg = f"migration file name must be NNNN_<slug>.sql: {path.name}"
            raise MigrationError(msg)
        migrations.append(
            Migration(int(match[1]), path.name, path.read_text(encoding="utf-8"))
        )
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            msg = f"migrations must be numbered 0001.. without gaps: expected {expected:04d}, found {migration.name}"
            raise MigrationError(msg)
    return migrations


async def apply(
    con: asyncpg.Connection, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply what is missing; return the names applied now."""
    migrations = discover() if migrations is None else migrations
    await con.execute("select pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await con.execute(
            """
            create table if not exists schema_migration (
                version    integer constraint schema_migration_pkey primary key,
                name       text not null,
                checksum   text not null,
                applied_at timestamptz not null default now()
            )
            """
        )
        applied = {
            row["version"]: row
            for row in await con.fetch(
                "select version, name, checksum from schema_migration"
            )
        }
        done = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    msg = (
                        f"applied migration {migration.name} has changed since it was "
                        "applied (checksum mismatch); write a new migration instead"
                    )
                    raise MigrationError(msg)
                continue
            async with con.transaction():
                await con.execute(migration.sql)
                await con.execute(
                    "insert into schema_migration (version, name, checksum) values ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            logger.info("applied migration %s", migration.name)
            done.append(migration.name)
        return done
    finally:
        await con.execute("select pg_advisory_unlock($1)", _LOCK_KEY)


async def migrate(database_url: str) -> list[str]:
    con = await asyncpg.connect(database_url)
    try:
        return await apply(con)
    finally:
        await con.close()


def main() -> None:
    from permbase.log_setup import configure_logging
    from permbase.settings import get_settings

    settings = get_settings()
    configure_logging(settings.log_level)
    asyncio.run(migrate(settings.database_url))


if __name__ == "__main__":
    main()

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "apply",
    "discover",
    "migrate",
]
