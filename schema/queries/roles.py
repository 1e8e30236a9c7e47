from __future__ import annotations

import strawberry

from permbase.errors import NotFound
from permstore import permissions as permission_store, roles as role_store
from schema.context import Info
from schema.pagination import parse_id
from schema.permissions import needs
from schema.types import Permission, Role


@strawberry.type
class RoleQueries:
    @strawberry.field(extensions=needs("roles:read"))
    async def roles(self, info: Info) -> list[Role]:
        return [Role.from_row(r) for r in await role_store.select_all(info.context.db)]

    @strawberry.field(extensions=needs("roles:read"))
    async def role(self, info: Info, id: strawberry.ID) -> Role | None:
        rid = parse_id(id)
        row = await info.context.loaders.roles_by_id.load(rid)
        if row is None:
            raise NotFound(f"No role with id {rid}.", id=str(rid))
        return Role.from_row(row)

    @strawberry.field(extensions=needs("permissions:read"))
    async def permissions(self, info: Info) -> list[Permission]:
        return [
            Permission.from_row(r)
            for r in await permission_store.select_all(info.context.db)
        ]


__all__ = ["RoleQueries"]
