"""What the lifespan opens once per process, handed to every request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from schema.context import Shared

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class State(Shared):
    """What every request's context uses (`Shared`), and the Redis client that
    the health checks ping."""

    redis: aioredis.Redis


__all__ = ["State"]
