"""What the lifespan opens once per process, handed to every request."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from permauth.tokens import TokenService
    from permbase.settings import Settings
    from permcore.cache import PermissionCache
    from permcore.stream import ChangeStream
    from permstore.db import Database


class State(TypedDict):
    settings: Settings
    db: Database
    redis: aioredis.Redis
    cache: PermissionCache
    stream: ChangeStream
    tokens: TokenService


__all__ = ["State"]
