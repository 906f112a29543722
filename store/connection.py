"""Opening the connection to Redis: a standalone server's pool, or redis-py's cluster client for Redis Cluster."""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import traceback
from typing import Any, TypeAlias
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from store import decode
from store.errors import UnusableRedis
from store.waiting_cluster import WaitingRedisCluster

log = logging.getLogger(__name__)

# Everything in store/ takes either: the commands the bot uses behave the same on both.
RedisClient: TypeAlias = Redis | RedisCluster
# What a Redis that is unreachable or failing raises: redis-py's cluster client raises RedisClusterException, which
# is not a RedisError, when it cannot rebuild its slot map (every node down, the cluster not yet agreed again).
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException)


def lost_mid_write(exc: BaseException) -> bool:
    """Whether `exc` is redis-py's asyncio client meeting a connection closed under a write (a node failing over, a
    peer reset): it leaks the transport's AttributeError or TypeError instead of a ConnectionError (redis-py
    #3546, #4287). The caller treats it as the lost connection it is."""
    if not isinstance(exc, AttributeError | TypeError):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(frame.filename.endswith(_WRITE_PATHS) for frame in frames[-3:])


_WRITE_PATHS = (
    os.path.join("redis", "asyncio", "connection.py"),
    os.path.join("asyncio", "streams.py"),
    os.path.join("asyncio", "selector_events.py"),
)


def _tls_options(url: str, tls_verify: bool) -> dict[str, Any]:
    """A rediss:// server's certificate and host name are checked against the system's CA bundle unless
    `tls_verify` is false: Heroku Redis serves TLS with a self-signed certificate that no CA bundle can verify."""
    if urlsplit(url).scheme == "rediss" and not tls_verify:
        return {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    return {}


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3)


def connect(url: str, *, max_connections: int = 500, client_name: str | None = None, tls_verify: bool = True) -> Redis:
    """A client for a standalone Redis at `url` that retries dropped connections briefly; no I/O until first use."""
    options: dict[str, Any] = {"client_name": client_name} if client_name else {}
    options.update(_tls_options(url, tls_verify))
    # A burst beyond max_connections waits (up to 10 s) for a free connection instead of failing at once.
    pool = BlockingConnectionPool.from_url(
        url,
        timeout=10,
        decode_responses=True,
        max_connections=max_connections,
        socket_connect_timeout=5,
        # Longer than the runner's blocking reads (5 s): at redis-py's default (5 s) they would time out in the
        # client, and an entry Redis hands over just then would wait for the lease to run out.
        socket_timeout=30,
        socket_keepalive=True,
        health_check_interval=30,
        retry=_retry(),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **options,
    )
    return Redis.from_pool(pool)


async def is_cluster(url: str, *, tls_verify: bool = True) -> bool:
    """Whether `url` names a node of a Redis Cluster (INFO cluster says cluster_enabled:1) or a standalone Redis.

    A server that will not answer INFO (some proxies) is taken for standalone: the scripts are loaded next, and a
    server that cannot run them stops the start there.
    """
    probe = connect(url, max_connections=1, tls_verify=tls_verify)
    try:
        info = await probe.info("cluster")
    except RedisConnectionError:
        raise
    except RedisError:
        return False
    finally:
        await probe.aclose()
    return str(info.get("cluster_enabled", "0")) == "1"


async def connect_cluster(
    url: str, *, max_connections: int = 500, client_name: str | None = None, tls_verify: bool = True
) -> RedisCluster:
    """redis-py's cluster client for the cluster that `url` names a node of, with its slot map loaded.

    At most `max_connections` commands are in flight at once (a burst beyond waits, up to 10 s, as on a standalone
    Redis), each node allowed as many connections. UnusableRedis if the cluster cannot serve every slot: the bot's
    keys spread over all of them.
    """
    options: dict[str, Any] = {"client_name": client_name} if client_name else {}
    options.update(_tls_options(url, tls_verify))
    cluster = WaitingRedisCluster.from_url(
        url,
        in_flight=max_connections,
        wait_seconds=10,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_keepalive=True,
        health_check_interval=30,
        # Longer than the runner's blocking reads (5 s): redis-py would time them out and send them again.
        socket_timeout=30,
        retry=_retry(),
        require_full_coverage=True,
        # Follow MOVED slot by slot: a full refresh every few MOVED (the default) drops connections other
        # commands are using, and redis-py sends those again, so a script could run twice during a reshard.
        reinitialize_steps=0,
        **options,
    )
    try:
        await cluster.initialize()
        state = decode.text((await cluster.cluster_info()).get("cluster_state", "fail"))
    except RedisConnectionError as exc:
        await cluster.aclose()
        if certificate_rejected(exc):
            raise  # the caller says what to do about the certificate
        raise UnusableRedis(f"a node of the Redis Cluster at REDIS_URL does not answer: {first_line(exc)}") from None
    except (RedisError, RedisClusterException) as exc:
        await cluster.aclose()
        raise UnusableRedis(f"the Redis Cluster at REDIS_URL cannot be used: {first_line(exc)}") from None
    if state != "ok":
        await cluster.aclose()
        raise UnusableRedis(f"the Redis Cluster at REDIS_URL is not serving every slot (cluster_state:{state})")
    return cluster


def first_line(exc: BaseException) -> str:
    """An error's first line, bounded: what a log line or a start error says of it."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def certificate_rejected(exc: BaseException) -> bool:
    """Whether a failed connection failed because the server's TLS certificate could not be verified."""
    # redis-py raises its own ConnectionError from within the handler of the ssl error, which it keeps as context.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


async def warm_up(redis: RedisClient, connections: int) -> None:
    """Open up to `connections` pooled connections now (as many pings at once).

    A Redis at its connection cap (small managed plans allow a few dozen in all) refuses some: then the pool
    shrinks to what Redis took, since a pool larger than that fails whenever it grows.
    """
    if isinstance(redis, RedisCluster):
        return  # the cluster client opens connections per node as it needs them
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
