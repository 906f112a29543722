"""The queue's statistics for /metrics: waiting and held threads, and how long the oldest has waited."""

from __future__ import annotations

import time

from redis.asyncio import Redis, RedisCluster

from store.models import ThreadRef
from store.queue_stats import queue_stats
from store.tasks import TaskQueue
from tests.integration.redis_cluster import LocalCluster
from tests.unit.store.conftest import ELSEWHERE, OTHER, SPACE, THREAD, claim_all, make_groups, make_task


async def test_an_empty_queue_has_nothing_waiting(queue: TaskQueue, redis: Redis) -> None:
    """With every group made and no work, nothing waits, nothing is held and the oldest wait is 0."""
    stats = await queue_stats(redis, SPACE)
    assert (stats.waiting, stats.running, stats.oldest_wait_seconds) == (0, 0, 0.0)


async def test_a_queue_never_made_counts_as_empty(redis: Redis) -> None:
    """Before any worker made the streams and groups, the statistics read as an empty queue, not an error."""
    stats = await queue_stats(redis, SPACE)
    assert (stats.waiting, stats.running) == (0, 0)


async def test_threads_waiting_then_held(queue: TaskQueue, redis: Redis) -> None:
    """Threads submitted wait (across shards) until a worker claims them; then they count as held."""
    for index, thread in enumerate((THREAD, OTHER, ELSEWHERE)):
        await queue.submit(make_task(f"Ev{index}", thread=thread))
    await queue.submit(make_task("Ev9", thread=THREAD))  # a second task of a thread waiting already: same entry
    stats = await queue_stats(redis, SPACE, now=time.time() + 30)
    assert (stats.waiting, stats.running) == (3, 0)
    assert 29 <= stats.oldest_wait_seconds <= 32
    await claim_all(queue)
    stats = await queue_stats(redis, SPACE)
    assert (stats.waiting, stats.running, stats.oldest_wait_seconds) == (0, 3, 0.0)


async def test_waiting_threads_are_counted_after_a_reset_deleted_an_entry(queue: TaskQueue, redis: Redis) -> None:
    """A reset deletes its thread's entry and queues a new one (the task that tells the thread), which can leave
    Redis unable to tell the group's lag: the waiting entries are then counted one by one."""
    await queue.submit(make_task("Ev1", thread=THREAD))
    await queue.submit(make_task("Ev2", thread=ThreadRef("T1", "C1", "1700000005.000100")))
    await queue.reset(make_task("Ev3", thread=THREAD))
    stats = await queue_stats(redis, SPACE)
    assert stats.waiting == 2


async def test_on_a_cluster_every_shards_node_is_read(redis_cluster: LocalCluster) -> None:
    """On a three-master Redis Cluster each shard's stream is read on its own node, and the figures add up."""
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        queue = TaskQueue(client, SPACE)
        await make_groups(queue)
        for index, thread in enumerate((THREAD, OTHER, ELSEWHERE)):
            await queue.submit(make_task(f"Ev{index}", thread=thread))
        stats = await queue_stats(client, SPACE)
        assert (stats.waiting, stats.running) == (3, 0)
    finally:
        await client.aclose()
