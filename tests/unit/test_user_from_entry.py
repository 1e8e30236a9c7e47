"""A user built from its permission entry alone invents no row values: were one
of the row's fields read anyway, it fails to serialize (a field error), it never
passes for an empty email or a date."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, GraphQLObjectType

from permstore.models import UserAccess
from schema.root import build_schema
from schema.types import User


def test_the_row_fields_of_a_user_from_its_entry_do_not_serialize() -> None:
    schema = build_schema(
        max_depth=10, max_aliases=10, max_tokens=1000, introspection=False
    )
    user_type = schema._schema.type_map["User"]
    assert isinstance(user_type, GraphQLObjectType)
    user = User.from_entry(UserAccess(7, True, (1,), ("viewer",), ("users:read",)))
    assert (user.uid, user.id, user.is_active) == (7, "7", True)
    for field, attribute in (
        ("email", "email"),
        ("displayName", "display_name"),
        ("avatarUrl", "avatar_url"),
        ("createdAt", "created_at"),
    ):
        scalar = user_type.fields[field].type
        scalar = getattr(scalar, "of_type", scalar)
        with pytest.raises((GraphQLError, AttributeError, TypeError, ValueError)):
            scalar.serialize(getattr(user, attribute))
