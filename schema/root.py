"""The schema, composed from per-domain query and mutation classes."""

from __future__ import annotations

from collections.abc import Callable

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.schema.config import StrawberryConfig

from schema.engine.consistency import ConsistencyToken
from schema.engine.errors import PermgraphSchema, ShapeErrors
from schema.engine.execution import (
    PermgraphExecutionContext,
    use_default_resolvers,
    use_plain_resolvers,
)
from schema.engine.limits import LimitedValidation
from schema.engine.prepared import PreparedDocuments, RememberValid
from schema.engine.rules import OneLoginPerDocument
from schema.engine.viewer import LoadViewer
from schema.mutations.auth import AuthMutations
from schema.mutations.permissions import PermissionMutations
from schema.mutations.roles import RoleMutations
from schema.mutations.users import UserMutations
from schema.queries.audit import AuditQueries
from schema.queries.roles import RoleQueries
from schema.queries.users import UserQueries


@strawberry.type
class Query(UserQueries, RoleQueries, AuditQueries):
    pass


@strawberry.type
class Mutation(AuthMutations, UserMutations, RoleMutations, PermissionMutations):
    pass


def build_schema(
    *, max_depth: int, max_aliases: int, max_tokens: int, introspection: bool
) -> PermgraphSchema:
    # The validation-rule extensions are built once and shared: each builds its
    # rule classes in __init__, and ValidationCache keys on those classes, so a
    # fresh instance per request would turn every lookup into a miss. They keep
    # no per-request state. MaskErrors does, so it is made per request.
    prepared = PreparedDocuments()
    shared: list[SchemaExtension] = [
        MaxTokensLimiter(max_token_count=max_tokens),
        AddValidationRules([OneLoginPerDocument]),
        QueryDepthLimiter(max_depth=max_depth),
        MaxAliasesLimiter(max_alias_count=max_aliases),
    ]
    if not introspection:
        shared.append(DisableIntrospection())
    extensions: list[Callable[[], SchemaExtension]] = [
        lambda: ParserCache(maxsize=512),
        *[(lambda ext=ext: ext) for ext in shared],
        # validation, with the shape limits before it and the cost limit after it
        # (schema/engine/limits.py; the limits are settings, read from the context)
        lambda: LimitedValidation(maxsize=512),
        LoadViewer,
        ShapeErrors,
        ConsistencyToken,
        lambda: RememberValid(prepared),
    ]
    schema = PermgraphSchema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(
            auto_camel_case=True, disable_field_suggestions=not introspection
        ),
        execution_context_class=PermgraphExecutionContext,
    )
    schema.prepared = prepared
    use_default_resolvers(schema)
    use_plain_resolvers(schema)  # User.permissions, roles, hasPermission
    return schema


__all__ = ["Mutation", "Query", "build_schema"]
