"""Opening the Redis connection pool."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
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
    return Redis.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )
