"""Opening the Redis connection pool."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


def connect(url: str, *, max_connections: int = 500, client_name: str | None = None) -> Redis:
    """A client for `url` that retries dropped connections briefly; no I/O happens until first use."""
    options: dict[str, Any] = {"client_name": client_name} if client_name else {}
    if urlsplit(url).scheme == "rediss":
        # Heroku Redis serves TLS with a self-signed certificate that no CA bundle can verify.
        options["ssl_cert_reqs"] = "none"
    # A burst beyond max_connections waits (up to 10 s) for a free connection instead of failing at once.
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=10,
        decode_responses=True,
        max_connections=max_connections,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )
    return Redis.from_pool(pool)


async def warm_up(redis: Redis, connections: int) -> int:
    """Open up to `connections` pooled connections now; returns how many of them Redis refused."""
    replies = await asyncio.gather(*(redis.ping() for _ in range(connections)), return_exceptions=True)
    return sum(1 for reply in replies if isinstance(reply, Exception))


async def open_pool(url: str, *, max_connections: int, warm: int, client_name: str | None = None) -> Redis:
    """A client whose first `warm` connections are open already, so a burst of Slack events need not wait.

    A Redis at its connection cap (small managed plans allow a few dozen in all) refuses some: then the pool is
    made again no larger than what Redis took, since a pool larger than that fails whenever it grows.
    """
    redis = connect(url, max_connections=max_connections, client_name=client_name)
    wanted = min(warm, max_connections)
    refused = await warm_up(redis, wanted)
    if not refused:
        return redis
    await redis.aclose()
    taken = max(wanted - refused, 1)
    log.warning(
        "Redis refused %d of %d connections (a connection cap?); this process keeps to %d. "
        "Set REDIS_MAX_CONNECTIONS so that all processes together stay within the cap",
        refused,
        wanted,
        taken,
    )
    redis = connect(url, max_connections=taken, client_name=client_name)
    await warm_up(redis, taken)
    return redis
