"""Which worker names are in use: each process names its Redis connections after its consumer name.

A process that dies (even by SIGKILL) has its connections closed by the kernel, so Redis drops them at once;
a live one keeps at least its blocking queue read open. So a name seen in CLIENT LIST belongs to a live process.
"""

from __future__ import annotations

import logging
import secrets

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from store.connection import RedisClient

log = logging.getLogger(__name__)

CLIENT_NAME_PREFIX = "agent-worker:"


def client_name(consumer: str) -> str:
    """The Redis client name of a process whose consumer name is `consumer`."""
    return CLIENT_NAME_PREFIX + consumer


async def consumers_in_use(redis: RedisClient) -> set[str]:
    """Consumer names of the processes connected to Redis right now."""
    try:
        if isinstance(redis, RedisCluster):  # a process's connections may be on any node
            replies = await redis.client_list(target_nodes=RedisCluster.PRIMARIES)
            clients = [client for listed in _per_node(replies) for client in listed]
        else:
            clients = await redis.client_list()
    except ResponseError as exc:  # some managed Redis services forbid CLIENT LIST
        log.warning("cannot list Redis clients (%s); not checking for a duplicate DYNO name", exc)
        return set()
    names = (str(client.get("name", "")) for client in clients)
    return {name.removeprefix(CLIENT_NAME_PREFIX) for name in names if name.startswith(CLIENT_NAME_PREFIX)}


async def choose_consumer_name(redis: RedisClient, wanted: str) -> str:
    """`wanted` (the DYNO name) unless a live process uses it; then a distinct name, with a warning."""
    in_use = await consumers_in_use(redis)
    if wanted not in in_use:
        return wanted
    distinct = f"{wanted}-{secrets.token_hex(3)}"
    log.warning(
        "another live process already works as %r (two processes with the same DYNO?); this one works as %r",
        wanted,
        distinct,
    )
    return distinct


def _per_node(replies: object) -> list[list[dict[str, str]]]:
    """A cluster command's replies, one per node: a dict by node, or one reply if a single node answered."""
    if isinstance(replies, dict):
        return [list(value) for value in replies.values()]
    return [list(replies)] if isinstance(replies, list) else []
