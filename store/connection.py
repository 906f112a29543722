"""Opening the Redis connection pool."""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)


def connect(url: str, *, max_connections: int = 500, client_name: str | None = None, tls_verify: bool = True) -> Redis:
    """A client for `url` that retries dropped connections briefly; no I/O happens until first use.

    A rediss:// server's certificate and host name are checked against the system's CA bundle unless
    `tls_verify` is false: Heroku Redis serves TLS with a self-signed certificate that no CA bundle can verify.
    """
    options: dict[str, Any] = {"client_name": client_name} if client_name else {}
    if urlsplit(url).scheme == "rediss" and not tls_verify:
        options["ssl_cert_reqs"] = "none"
        options["ssl_check_hostname"] = False
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


def certificate_rejected(exc: BaseException) -> bool:
    """Whether a failed connection failed because the server's TLS certificate could not be verified."""
    # redis-py raises its own ConnectionError from within the handler of the ssl error, which it keeps as context.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def warm_up(redis: Redis, connections: int) -> None:
    """Open up to `connections` pooled connections now (as many pings at once).

    A Redis at its connection cap (small managed plans allow a few dozen in all) refuses some: then the pool
    shrinks to what Redis took, since a pool larger than that fails whenever it grows.
    """
    pool = redis.connection_pool
    wanted = min(connections, pool.max_connections)
    replies = await asyncio.gather(*(redis.ping() for _ in range(wanted)), return_exceptions=True)
    refused = sum(1 for reply in replies if isinstance(reply, Exception))
    if not refused:
        return
    taken = max(wanted - refused, 1)
    log.warning(
        "Redis refused %d of %d connections (a connection cap?); this process keeps to %d. "
        "Set REDIS_MAX_CONNECTIONS so that all processes together stay within the cap",
        refused,
        wanted,
        taken,
    )
    pool.max_connections = taken
    # Idle connections close; they reopen on demand, never more at once than the new limit.
    await pool.disconnect(inuse_connections=False)
