"""Fixtures and builders for the store's tests."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from store import keys
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue, ThreadLease

# The key names of the default deployment (16 queue shards), which the queue and journal fixtures use.
SPACE = KeySpace()
THREAD = ThreadRef("T1", "C1", "1700000000.000100")
OTHER = ThreadRef("T1", "C1", "1700000099.000100")  # the same shard as THREAD
ELSEWHERE = ThreadRef("T1", "C1", "1700000000.000102")  # the same channel, another shard


def make_task(task_id: str, kind: TaskKind = TaskKind.ANSWER, thread: ThreadRef = THREAD, text: str = "hi") -> Task:
    """A task as intake would record it."""
    return Task(task_id, kind, thread, text, "U1", "1700000001.000100", time.time())


async def claim_all(queue: TaskQueue, consumer: str = "web.1") -> list[ThreadLease]:
    """Claim new entries of every shard as `consumer`, in one read as a standalone worker does."""
    return await queue.claim_new(consumer, list(range(queue.shards)), count=100, block_ms=10)


async def lease_on(queue: TaskQueue, thread: ThreadRef = THREAD, consumer: str = "web.1") -> ThreadLease:
    """Claim new entries as `consumer` and return the lease on `thread`."""
    [lease] = [lease for lease in await claim_all(queue, consumer) if lease.thread == thread]
    return lease


async def make_groups(queue: TaskQueue) -> None:
    """Create every shard's stream and consumer group, as a worker does when it starts."""
    for shard in range(queue.shards):
        await queue.ensure_group(shard)


async def queue_empty(redis: Redis, space: KeySpace = SPACE) -> bool:
    """Whether no thread has an entry in any shard's stream, held or not (every thread was given back)."""
    for stream in space.queues():
        if await redis.xlen(stream):
            return False
        if await redis.exists(stream) and (await redis.xpending(stream, keys.WORKER_GROUP))["pending"]:
            return False
    return True


@pytest.fixture
async def queue(redis: Redis) -> TaskQueue:
    """A queue of the default shard count whose consumer groups exist."""
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    return queue


@pytest.fixture
def journal(redis: Redis) -> TaskJournal:
    """The fenced writer of running tasks."""
    return TaskJournal(redis, SPACE)
