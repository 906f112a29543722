"""Opening Redis for a bot process or a command: REDIS_URL's standalone server or cluster (or an embedded server for
local runs), and this process's consumer name, or one line saying why Redis cannot be used."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from bot.core.errors import RedisUnavailable
from bot.runtime.embedded_redis import EmbeddedRedis
from bot.runtime.settings import Settings
from store.connection import RedisClient, certificate_rejected, connect, connect_cluster, first_line, is_cluster
from store.errors import UnusableRedis
from store.presence import choose_consumer_name, client_name

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def redis_for(settings: Settings, *, tool: str | None = None) -> AsyncIterator[tuple[RedisClient, str]]:
    """Redis (REDIS_URL, or an embedded server started for this process) and this process's consumer name.

    REDIS_URL may name a standalone Redis or any node of a Redis Cluster: INFO says which, and a cluster gets
    redis-py's cluster client. The name is DYNO unless a live process already uses it; the connections carry it
    (CLIENT SETNAME) so that later processes can tell. A Redis that cannot be used stops the start with one line.
    A command that is no bot process (`tool`: its name) names its connections so that it is not taken for one.
    """
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if url is None:
        embedded = EmbeddedRedis(settings.data_dir)
        url = await asyncio.to_thread(embedded.start)
    try:
        redis, consumer = await _open_redis(settings, url, tool)
        try:
            yield redis, consumer
        finally:
            await redis.aclose()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _open_redis(settings: Settings, url: str, tool: str | None) -> tuple[RedisClient, str]:
    tls_verify = settings.redis_tls_verify
    try:
        cluster = await is_cluster(url, tls_verify=tls_verify)
        consumer, name = (tool, tool) if tool else await _worker_name(settings, url, cluster)
        limit = settings.redis_max_connections
        if cluster:
            log.info("REDIS_URL names a node of a Redis Cluster: using the cluster client")
            # Each shard's reader holds a connection while it waits (a read cannot span a cluster's slots): room for
            # them all besides the limit, so that a burst of commands waits for the limit and never for the reads.
            in_flight = limit + settings.queue_shards
            return await connect_cluster(
                url, max_connections=in_flight, client_name=name, tls_verify=tls_verify
            ), consumer
        return connect(url, max_connections=limit, client_name=name, tls_verify=tls_verify), consumer
    except RedisConnectionError as exc:
        hint = ""
        if certificate_rejected(exc):
            hint = " A Redis with a self-signed certificate, like Heroku Redis, needs REDIS_TLS_VERIFY=false."
        raise RedisUnavailable(f"cannot connect to Redis: {first_line(exc)}{hint}") from None
    except UnusableRedis as exc:
        raise RedisUnavailable(str(exc)) from None
    except (RedisError, RedisClusterException) as exc:
        raise RedisUnavailable(f"cannot use the Redis at REDIS_URL: {first_line(exc)}") from None


async def _worker_name(settings: Settings, url: str, cluster: bool) -> tuple[str, str]:
    """This process's consumer name and the client name its connections carry."""
    tls_verify = settings.redis_tls_verify
    probe: RedisClient = (
        await connect_cluster(url, max_connections=2, tls_verify=tls_verify)
        if cluster
        else connect(url, max_connections=1, tls_verify=tls_verify)
    )
    try:
        consumer = await choose_consumer_name(probe, settings.dyno)
    finally:
        await probe.aclose()
    return consumer, client_name(consumer)
