"""The cluster client waits for a free connection in a burst, as the standalone pool does."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest
from redis.exceptions import MaxConnectionsError

from store.connection import connect_cluster
from store.waiting_cluster import WaitingRedisCluster
from tests.integration.redis_cluster import LocalCluster

INCREMENT = "return redis.call('INCR', KEYS[1])"


async def test_a_burst_larger_than_the_pool_waits_instead_of_failing(redis_cluster: LocalCluster) -> None:
    """Far more commands, scripts and pipelines at once than the client may have in flight, all on one key's node,
    are all served (redis-py's own cluster client fails those that find the node's connections in use)."""
    client = await connect_cluster(redis_cluster.url, max_connections=3)
    increment = client.register_script(INCREMENT)

    async def pipelined() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.incr("{burst}:n")
        pipe.incr("{burst}:other")
        await pipe.execute()

    try:
        burst: list[Awaitable[object]] = [client.incr("{burst}:n") for _ in range(100)]
        burst += [increment(keys=["{burst}:n"]) for _ in range(100)]
        burst += [pipelined() for _ in range(50)]
        await asyncio.gather(*burst)
        assert await client.get("{burst}:n") == "250"
    finally:
        await client.aclose()


async def test_a_wait_that_runs_out_says_so(redis_cluster: LocalCluster) -> None:
    """When every permit stays taken past the wait, the command fails with MaxConnectionsError naming the wait; the
    holder's own commands meanwhile go through without a second permit."""
    client = WaitingRedisCluster(
        host="127.0.0.1", port=redis_cluster.masters()[0].port, decode_responses=True, in_flight=1, wait_seconds=0.2
    )
    taken, done = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with client.permit():
            await client.set("{held}:k", "1")  # within the permit: no second one needed
            taken.set()
            await done.wait()

    holder = asyncio.create_task(hold())
    try:
        await taken.wait()
        with pytest.raises(MaxConnectionsError, match=r"no Redis connection free within 0\.2 s"):
            await client.get("{held}:k")
        done.set()
        await holder
        assert await client.get("{held}:k") == "1"
    finally:
        done.set()
        await holder
        await client.aclose()
