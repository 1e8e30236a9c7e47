"""Validation rules of our own, run with the GraphQL spec's rules."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule

# Mutations that check a password: each is one guess, and each counts toward the
# login throttle (permauth/sessions.py). Keep in step with schema/mutations/auth.py.
PASSWORD_CHECKING_FIELDS = frozenset({"login", "changePassword"})


class OnePasswordCheckPerDocument(ValidationRule):
    """A document may call at most one password-checking mutation (`login`,
    `changePassword`), once: aliases would otherwise turn one HTTP request into
    many password guesses. Counted over the whole document (every operation and
    fragment), refused before anything runs."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.seen: list[str] = []

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        name = node.name.value
        if name not in PASSWORD_CHECKING_FIELDS:
            return
        parent = self.context.get_parent_type()
        if parent is not None and parent is not self.context.schema.mutation_type:
            return  # a field of that name on another type checks no password
        self.seen.append(name)
        if len(self.seen) == 2:
            what = (
                "login"
                if set(self.seen) == {"login"}
                else "password check (login or changePassword)"
            )
            self.report_error(GraphQLError(f"At most one {what} per request.", node))


# the name schema/root.py registers
OneLoginPerDocument = OnePasswordCheckPerDocument

__all__ = [
    "PASSWORD_CHECKING_FIELDS",
    "OneLoginPerDocument",
    "OnePasswordCheckPerDocument",
]
