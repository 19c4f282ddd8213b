"""Redis adapter: one way to connect, with bounded timeouts, TLS/ACL settings and Redis Cluster."""
from __future__ import annotations

from typing import Any

from neutrowatch.platform.settings import Settings


def connect_redis(settings: Settings):
    """redis.asyncio client (or cluster client) with bounded socket timeouts."""
    kwargs: dict[str, Any] = dict(settings.redis_client_kwargs(), socket_timeout=3.0,
                                  socket_connect_timeout=2.0, health_check_interval=5)
    if settings.redis_cluster:
        from redis.asyncio.cluster import RedisCluster
        return RedisCluster.from_url(settings.redis_url, **kwargs)
    from redis.asyncio import Redis
    return Redis.from_url(settings.redis_url, **kwargs)
