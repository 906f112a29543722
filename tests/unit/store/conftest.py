"""Fixtures and builders for the store's tests."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from store.journal import TaskJournal
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue, ThreadLease

THREAD = ThreadRef("T1", "C1", "1700000000.000100")
OTHER = ThreadRef("T1", "C1", "1700000099.000100")


def make_task(task_id: str, kind: TaskKind = TaskKind.ANSWER, thread: ThreadRef = THREAD, text: str = "hi") -> Task:
    """A task as intake would record it."""
    return Task(task_id, kind, thread, text, "U1", "1700000001.000100", time.time())


async def lease_on(queue: TaskQueue, thread: ThreadRef = THREAD, consumer: str = "web.1") -> ThreadLease:
    """Claim new entries as `consumer` and return the lease on `thread`."""
    leases = await queue.claim_new(consumer, count=100, block_ms=10)
    [lease] = [lease for lease in leases if lease.thread == thread]
    return lease


@pytest.fixture
async def queue(redis: Redis) -> TaskQueue:
    """A queue whose consumer group exists."""
    queue = TaskQueue(redis)
    await queue.ensure_group()
    return queue


@pytest.fixture
def journal(redis: Redis) -> TaskJournal:
    """The fenced writer of running tasks."""
    return TaskJournal(redis)
