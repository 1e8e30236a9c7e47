"""Validation rules of our own, run with the GraphQL spec's rules."""

from __future__ import annotations

from typing import Any

from graphql import FieldNode, GraphQLError, ValidationRule


class OneLoginPerDocument(ValidationRule):
    """A document may call `login` once: aliases would otherwise turn one HTTP
    request into many password guesses. Refused before anything runs."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.logins = 0

    def enter_field(self, node: FieldNode, *_args: Any) -> None:
        if node.name.value == "login":
            self.logins += 1
            if self.logins == 2:
                self.report_error(GraphQLError("At most one login per request.", node))


__all__ = ["OneLoginPerDocument"]
