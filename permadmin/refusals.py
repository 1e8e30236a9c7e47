"""An operation's expected refusals. Raised inside `unit_of_work`, they roll its
transaction back; each carries what a caller needs to say why."""

from __future__ import annotations

from collections.abc import Iterable


class Refused(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(Refused):
    """An input that cannot be stored as given; `field` names it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class Conflict(Refused):
    """The input collides with what exists (a taken name or email)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotAllowed(Refused):
    """The delegation rule refuses; `missing` names what the actor lacks (empty
    when the actor may not see it)."""

    def __init__(self, message: str, missing: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.missing = sorted(missing)


class NotFound(Refused):
    """The subject does not exist, told to an actor who may read that kind."""

    def __init__(self, entity: str, ident: int | str) -> None:
        super().__init__(f"No {entity} with id {ident}.")
        self.entity = entity
        self.ident = ident


__all__ = ["Conflict", "Invalid", "NotAllowed", "NotFound", "Refused"]
