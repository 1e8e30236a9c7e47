"""SQL for the audit log: written in the mutation's transaction, read by admins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from permstore.db import read_sql
from permstore.models import AuditRow

if TYPE_CHECKING:
    import asyncpg

    from permstore.db import Database

INSERT = read_sql("audit_log/insert")
SELECT_PAGE = read_sql("audit_log/select_page")


async def insert(
    con: asyncpg.Connection,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | str,
    before: Any,
    after: Any,
) -> None:
    await con.execute(
        INSERT, actor_id, action, target_type, str(target_id), before, after
    )


async def select_page(db: Database, before_id: int, limit: int) -> list[AuditRow]:
    return [
        AuditRow(
            r["id"],
            r["actor_id"],
            r["action"],
            r["target_type"],
            r["target_id"],
            r["before"],
            r["after"],
            r["created_at"],
        )
        for r in await db.fetch(SELECT_PAGE, before_id, limit)
    ]


__all__ = ["insert", "select_page"]
