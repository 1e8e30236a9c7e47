"""The schema, composed from per-domain query and mutation classes."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from graphql import GraphQLError

from api.errors import is_expected
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


def _should_mask(error: GraphQLError) -> bool:
    # validation/parse errors have no original error; AppErrors are written for clients
    return error.original_error is not None and not is_expected(error.original_error)


def build_schema(
    *, max_depth: int, max_aliases: int, max_tokens: int, introspection: bool
) -> strawberry.Schema:
    extensions: list = [
        MaxTokensLimiter(max_token_count=max_tokens),
        ParserCache(maxsize=256),
        QueryDepthLimiter(max_depth=max_depth),
        MaxAliasesLimiter(max_alias_count=max_aliases),
        ValidationCache(maxsize=256),
        MaskErrors(should_mask_error=_should_mask, error_message="Internal server error."),
    ]
    if not introspection:
        from strawberry.extensions import DisableIntrospection  # noqa: PLC0415

        extensions.append(DisableIntrospection())
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )


__all__ = ["Mutation", "Query", "build_schema"]
