"""Opening the Redis connection pool."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


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


async def warm_up(redis: Redis, connections: int) -> None:
    """Open `connections` pooled connections now, so a burst of Slack events does not wait for them one by one."""
    await asyncio.gather(*(redis.ping() for _ in range(connections)))
