"""Errors a client may see, each with a stable code in GraphQL `extensions.code`.

    AppError                      (code: INTERNAL_SERVER_ERROR)
    ├── InvalidInput              BAD_USER_INPUT       bad argument, cursor, page size
    ├── NotFound                  NOT_FOUND            an id that names nothing
    ├── Unauthenticated           UNAUTHENTICATED      no/invalid/revoked credentials
    ├── Forbidden                 FORBIDDEN            authenticated, missing a permission
    └── ServiceUnavailable        SERVICE_UNAVAILABLE  PostgreSQL unreachable or too slow
        └── ServiceBusy           SERVICE_BUSY         every pool connection in use: retry shortly

Every AppError is "expected": its message goes to the client as written. Anything
else is masked as INTERNAL_SERVER_ERROR (schema/engine/errors.py). Expected outcomes of
mutations (a taken name, a refused login) are typed results, not errors.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    @property
    def extensions(self) -> dict[str, Any]:
        # graphql-core copies `extensions` of the original error onto the GraphQLError
        return {"code": self.code, **self.extra}


class InvalidInput(AppError):
    code = "BAD_USER_INPUT"


class NotFound(AppError):
    code = "NOT_FOUND"


class Unauthenticated(AppError):
    code = "UNAUTHENTICATED"


class Forbidden(AppError):
    code = "FORBIDDEN"


class ServiceUnavailable(AppError):
    code = "SERVICE_UNAVAILABLE"


class ServiceBusy(ServiceUnavailable):
    """The database answers, but no pool connection came free in time."""

    code = "SERVICE_BUSY"


def is_expected(error: BaseException | None) -> bool:
    return isinstance(error, AppError)


__all__ = [
    "AppError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "ServiceBusy",
    "ServiceUnavailable",
    "Unauthenticated",
    "is_expected",
]
