from __future__ import annotations

import strawberry

from permstore import audit as audit_store
from schema.context import Info
from schema.pagination import check_first, decode_cursor, encode_cursor
from schema.permissions import needs
from schema.types import AuditConnection, AuditEntry


@strawberry.type
class AuditQueries:
    @strawberry.field(
        extensions=needs("audit:read"), description="Changes, newest first."
    )
    async def audit_log(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> AuditConnection:
        ctx = info.context
        size = check_first(first, ctx.settings.max_page_size)
        before_id = decode_cursor("audit", after)
        rows = await audit_store.select_page(ctx.db, before_id, size + 1)
        page = rows[:size]
        return AuditConnection(
            entries=[AuditEntry.from_row(r) for r in page],
            end_cursor=encode_cursor("audit", page[-1].id) if page else None,
            has_next_page=len(rows) > size,
        )


__all__ = ["AuditQueries"]
