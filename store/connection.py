"""Opening the Redis connection pool."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
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


async def warm_up(redis: Redis, connections: int, batch: int = 10) -> None:
    """Open up to `connections` pooled connections, a batch at a time so that other work keeps its turn.

    A Redis at its connection cap (small managed plans allow a few dozen in all) refuses some: then the pool
    shrinks to what Redis took, since a pool larger than that fails whenever it grows.
    """
    pool = redis.connection_pool
    wanted = min(connections, pool.max_connections)
    held: list[AbstractConnection] = []  # held until the end, so that each batch opens new connections
    refused = 0
    try:
        while len(held) < wanted and not refused:
            opening = [_open(pool) for _ in range(min(batch, wanted - len(held)))]
            for outcome in await asyncio.gather(*opening, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    refused += 1
                else:
                    held.append(outcome)
    finally:
        for connection in held:
            await pool.release(connection)
    if refused:
        _shrink(pool, taken=max(len(held), 1), refused=refused)
        # Idle connections close; they reopen on demand, never more at once than the new limit.
        await pool.disconnect(inuse_connections=False)


async def _open(pool: ConnectionPool) -> AbstractConnection:
    connection: AbstractConnection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        # A Redis at its cap may accept the socket and refuse the first command.
        await connection.send_command("PING")
        await connection.read_response()
    except BaseException:
        await pool.release(connection)
        raise
    return connection


def _shrink(pool: ConnectionPool, *, taken: int, refused: int) -> None:
    log.warning(
        "Redis refused %d of %d connections (a connection cap?); this process keeps to %d. "
        "Set REDIS_MAX_CONNECTIONS so that all processes together stay within the cap",
        refused,
        taken + refused,
        taken,
    )
    pool.max_connections = taken
