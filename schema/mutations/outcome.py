"""The one wrapper of every mutation: its body calls an operation of permadmin/
(with `info.context.actor()`) and returns the payload; a refusal of the
operation's (`permadmin.refusals`) becomes the result type that says why, a
member of the field's result union."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

import strawberry

from permadmin.refusals import Conflict, Invalid, NotAllowed, NotFound, Refused
from schema.mutations.results import (
    ConflictError,
    InvalidInputError,
    NotAllowedError,
    NotFoundError,
)

Refusal = NotFoundError | InvalidInputError | ConflictError | NotAllowedError
"""What a mutation returns instead of its payload when its operation refused."""

P = ParamSpec("P")
R = TypeVar("R")


def as_result(refused: Refused) -> Refusal:
    if isinstance(refused, Invalid):
        return InvalidInputError(message=refused.message, field=refused.field)
    if isinstance(refused, Conflict):
        return ConflictError(message=refused.message, field=refused.field)
    if isinstance(refused, NotFound):
        return NotFoundError(
            message=refused.message,
            entity=refused.entity,
            id=strawberry.ID(str(refused.ident)),
        )
    if isinstance(refused, NotAllowed):
        return NotAllowedError(
            message=refused.message, missing_permissions=refused.missing
        )
    msg = f"no result type for {type(refused).__name__}"
    raise TypeError(msg)


def answers_refusals(
    resolver: Callable[P, Awaitable[R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Put it under `@strawberry.mutation`: the signature Strawberry reads is the
    resolver's. The cast to `R` is the contract, checked nowhere else: a body's
    operations refuse only with what its field's result union lists."""

    @functools.wraps(resolver)
    async def resolve(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await resolver(*args, **kwargs)
        except Refused as refused:
            return cast("R", as_result(refused))

    return resolve


__all__ = ["Refusal", "answers_refusals", "as_result"]
