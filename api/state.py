"""What the lifespan opens once per process, handed to every request."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from api.auth import TokenService
    from api.cache import PermissionCache
    from api.db import Database
    from api.invalidation import Invalidator
    from api.settings import Settings


class State(TypedDict):
    settings: Settings
    db: Database
    redis: aioredis.Redis
    cache: PermissionCache
    invalidator: Invalidator
    tokens: TokenService


__all__ = ["State"]
