"""The per-request GraphQL context: who is calling, the request's share of the
pools, its loaders and the caller's entry. The edge builds one per request
(api/lane.py, api/router.py) from what the process shares and the request's
headers."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias, TypedDict

from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from loaders.factory import create_loaders
from permadmin.unit import Actor
from permauth.tokens import principal_from_header
from permbase.errors import Forbidden, Unauthenticated
from permcore.stream import Consistent, parse_token

if TYPE_CHECKING:
    from loaders.factory import Loaders
    from permauth.tokens import TokenService
    from permbase.settings import Settings
    from permcore.cache import PermissionCache
    from permcore.stream import ChangeStream
    from permstore.db import Database
    from permstore.models import UserAccess


class Shared(TypedDict):
    """What the process opens once and every request's context uses (the
    lifespan's state, api/state.py)."""

    settings: Settings
    db: Database
    cache: PermissionCache
    stream: ChangeStream
    tokens: TokenService


class Context(BaseContext):
    def __init__(
        self,
        shared: Shared,
        authorization: str | None,
        request_id: str | None,
        *,
        client: str | None = None,
        consistency: str | None = None,
    ) -> None:
        """A request's context from what the process shares and the request's
        headers: `Authorization` (its bearer token verified here: raises
        Unauthenticated for credentials that do not verify), `X-Request-Id`,
        the client's address (the ASGI scope's; behind a proxy, the server's
        --proxy-headers set it) and `X-Consistency-Token` (raises InvalidInput
        for one that is not a token: permcore/stream.py)."""
        super().__init__()
        tokens = self.tokens = shared["tokens"]
        self.principal = principal_from_header(authorization, tokens)
        # a request that sent a consistency token reads no entry older than it
        self.consistency = None if consistency is None else parse_token(consistency)
        self.settings = settings = shared["settings"]
        self.cache = cache = shared["cache"]
        self.stream = stream = shared["stream"]
        # the request's share of each pool: a bounded number of its statements and
        # of its Redis calls in flight at once (permstore/db.py, loaders/factory.py)
        self.db = shared["db"].for_request()
        # the client's X-Request-Id (at most 64 characters), or made when asked
        self._request_id = request_id[:64] if request_id else None
        self.client = client  # the client's address (the login throttle counts by it)
        self.loaders: Loaders = create_loaders(
            self.db,
            cache
            if self.consistency is None
            else Consistent(cache, stream, self.consistency),
            settings.loader_max_batch_size,
            per_user=settings.permissions_loader == "per_user",
            redis_slots=max(
                1, int(settings.redis_max_connections * settings.request_pool_share)
            ),
        )
        self.viewer: UserAccess | None = (
            None  # loaded by `load_viewer` before execution
        )
        self.written: int | None = None  # the request's last write (`settle`)

    @property
    def request_id(self) -> str:
        """The request's id in logs and masked errors: the client's, or a random
        one, made only for a request that has something to log."""
        if self._request_id is None:
            self._request_id = os.urandom(8).hex()
        return self._request_id

    async def settle(self, xid: int, *, logged: bool = True) -> bool:
        """After the write transaction `xid` committed: return once this instance
        has applied its changes to the cache (permcore/stream.py; False: not
        confirmed, the cache is distrusted meanwhile). The response then carries
        the write as its consistency token, and the request's memoized entries
        are dropped, the caller's own reloaded. A write that `logged` nothing in
        the change log changed no entry: nothing to wait for."""
        self.written = xid if self.written is None else max(self.written, xid)
        if not logged:
            return True
        confirmed = await self.stream.settle(xid)
        self.loaders.access_by_user_id.clear_all()
        self.loaders.access.entries.clear()
        await self.load_viewer()
        return confirmed

    async def load_viewer(self) -> None:
        """Load the caller's current access through the permission loader (one
        MGET), before execution (schema/engine/viewer.py), so that every permission check
        after it is a synchronous set lookup. Called again after a mutation that
        changed it."""
        if self.principal is not None:
            self.viewer = await self.loaders.access_by_user_id.load(
                self.principal.user_id
            )

    async def load_viewer_with(self, user_ids: list[int]) -> list[UserAccess | None]:
        """The caller's entry and a page's entries in one batch (one MGET): for
        root fields that read their rows first and authorize before returning
        them (see schema/engine/viewer.py). Returns the page's entries."""
        if self.principal is None:
            return await self.load_access_page(user_ids) if user_ids else []
        entries = await self.load_access_page(
            [self.principal.user_id, *user_ids], extra=1
        )
        self.viewer = entries[0]
        return entries[1:]

    def require_principal(self) -> None:
        """Anonymous callers are refused before any I/O."""
        if self.principal is None:
            raise Unauthenticated(
                "Authentication required: send 'Authorization: Bearer <token>'."
            )

    async def load_access_page(
        self, user_ids: list[int], *, extra: int = 0
    ) -> list[UserAccess | None]:
        """Permission entries of a whole page, through the request's memo (one MGET
        and one query for the misses, of the entries not read before), in chunks
        of the batch size (+ `extra`: the caller's own entry does not split a full
        page in two)."""
        size = self.settings.loader_max_batch_size + extra
        out: list[UserAccess | None] = []
        for start in range(0, len(user_ids), size):
            out += await self.loaders.access(user_ids[start : start + size])
        return out

    def viewer_access(self) -> UserAccess:
        """The caller's access. Raises Unauthenticated without a token, for a
        deactivated or deleted account, or for a token whose session has ended
        (logout, refresh-token reuse, password change): all of them stop working
        at once, since the entry that says so is the one every request loads."""
        principal = self.principal
        if principal is None:
            raise Unauthenticated(
                "Authentication required: send 'Authorization: Bearer <token>'."
            )
        access = self.viewer
        if access is None or not access.is_active:
            raise Unauthenticated("The account is deactivated or does not exist.")
        if access.session_ended(principal.session_id, principal.issued_at):
            raise Unauthenticated("The session has ended; log in again.")
        return access

    def require(self, code: str) -> UserAccess:
        access = self.viewer_access()
        if code not in access.permissions:
            raise Forbidden(f"Missing permission {code!r}.", missingPermission=code)
        return access

    @property
    def viewer_id(self) -> int | None:
        return None if self.principal is None else self.principal.user_id

    def actor(self) -> Actor:
        """The caller, as the operations of permadmin/ take them."""
        access = self.viewer
        held = frozenset() if access is None else access.permissions
        return Actor(self.db, self.viewer_id, self.settle, held)


Info: TypeAlias = StrawberryInfo[Context, None]

__all__ = ["Context", "Info", "Shared"]
