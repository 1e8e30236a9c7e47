"""The Redis client: one connection pool per process (`create_redis`), a connection
that counts round trips (`CountingConnection`), and how redis-py says its pool is
exhausted (`pool_exhausted`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.maint_notifications import MaintNotificationsConfig

from permbase.metrics import REDIS_ROUND_TRIPS

if TYPE_CHECKING:
    from permbase.settings import Settings


def pool_exhausted(exc: BaseException) -> bool:
    """redis-py's answer when its pool has no free connection: a ConnectionError
    (MaxConnectionsError in recent versions) raised before anything is sent."""
    return isinstance(exc, RedisConnectionError) and str(exc) == "Too many connections"


class CountingConnection(aioredis.Connection):
    """Counts packets sent to Redis: one per command, one per pipeline."""

    round_trips = 0

    async def send_packed_command(
        self, command: Any, check_health: bool = True
    ) -> None:
        CountingConnection.round_trips += 1
        REDIS_ROUND_TRIPS.inc()
        await super().send_packed_command(command, check_health)


def create_redis(settings: Settings) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(
        settings.redis_url,
        connection_class=CountingConnection,
        max_connections=settings.redis_max_connections,
        # no socket timeout of the client's own: with one, redis-py wraps every
        # send in asyncio.wait_for (a task and a timer per command) and every read
        # in a timeout. Every call of ours is bounded as a whole instead
        # (PermissionCache._call's budget, readyz's ping); when a bound expires
        # mid-call, redis-py drops that connection.
        socket_timeout=None,
        socket_connect_timeout=settings.redis_connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        # no CLIENT SETINFO round trips on every new connection
        driver_info=None,
        # no maintenance notifications (a managed-cluster feature): with them on,
        # the pool skips its check that a connection handed out has no unread
        # data left on it, a second guard against reading another call's reply
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    return aioredis.Redis(connection_pool=pool)


__all__ = ["CountingConnection", "create_redis", "pool_exhausted"]
