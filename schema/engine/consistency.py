"""The consistency token a write hands back: `extensions.consistencyToken` of a
response whose request committed a write (the transaction's id, recorded by
`Context.settle`). A client sends it back as the `X-Consistency-Token` header,
and that request reads no cached entry older than the write (permcore/stream.py
`Consistent`), on whichever instance it lands."""

from __future__ import annotations

from typing import Any

from strawberry.extensions import SchemaExtension


class ConsistencyToken(SchemaExtension):
    def get_results(self) -> dict[str, Any]:
        written = getattr(self.execution_context.context, "written", None)
        return {} if written is None else {"consistencyToken": str(written)}


__all__ = ["ConsistencyToken"]
