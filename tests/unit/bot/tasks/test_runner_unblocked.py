"""The runner when Redis ends a blocked read because its stream left the node: moved (a reshard) or deleted."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import Task, TaskKind, TaskStatus, ThreadRef
from store.tasks import TaskQueue, ThreadLease, queue_lost, read_unblocked, stream_left_node
from tests.fakes import wait_until

SPACE = KeySpace(4)
THREAD = ThreadRef("T1", "C1", "1700000000.000100")
# What Redis 7 answers a blocked XREADGROUP whose stream key is deleted, or MIGRATEd to another cluster node.
UNBLOCKED = "UNBLOCKED the stream key no longer exists"
# What it answers every read blocked on a master that a failover turns into a replica.
FAILED_OVER = "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"
HEALED = "the task queue is gone from Redis"


def ask(task_id: str) -> Task:
    """A mention as intake records it."""
    return Task(task_id, TaskKind.ANSWER, THREAD, "hi", "U1", "1700000001.000100", time.time())


class FinishingExecutor:
    """Finishes each task at once, as the real executor does when the model answers; records which ran."""

    def __init__(self, redis: Redis) -> None:
        self.journal = TaskJournal(redis, SPACE)
        self.executed: list[str] = []

    async def execute(self, lease: ThreadLease, task: Task) -> None:
        """Start and finish the task (fenced writes, as the real executor's)."""
        await self.journal.start(lease, task)
        await self.journal.finish(lease, task, TaskStatus.DONE)
        self.executed.append(task.task_id)

    def released(self, lease: ThreadLease) -> bool:
        """Whether finishing gave the thread back."""
        return self.journal.released(lease)


class MovedUnderTheFirstRead(TaskQueue):
    """A queue whose first read of new work ends with UNBLOCKED, as when a Redis Cluster reshard MIGRATEs the shard's
    stream to another node while the read waits (the stream, its group and its pending entries live on there; here
    it stays where it was, which is what the cluster client finds when it follows the slot). Counts the makings."""

    unblocked = 0
    made = 0

    async def claim_new(self, consumer: str, shards: list[int], count: int, block_ms: int | None) -> list[ThreadLease]:
        """Fail the first read as Redis does when the stream leaves the node, then read as usual."""
        if not self.unblocked:
            self.unblocked += 1
            raise ResponseError(UNBLOCKED)
        return await super().claim_new(consumer, shards, count, block_ms)

    async def ensure_group(self, shard: int) -> bool:
        """Count the making of a shard's group."""
        self.made += 1
        return await super().ensure_group(shard)


def test_unblocked_is_not_a_lost_queue_and_nogroup_is() -> None:
    """UNBLOCKED (a stream that left the node, or a node that became a replica) asks for another read, NOGROUP (a
    stream or group gone) for a heal."""
    moved = ResponseError(UNBLOCKED)
    assert read_unblocked(moved) and stream_left_node(moved) and not queue_lost(moved)
    failover = ResponseError(FAILED_OVER)
    assert read_unblocked(failover) and not stream_left_node(failover) and not queue_lost(failover)
    nogroup = ResponseError("NOGROUP No such key 'agent:{0-0}:queue' or consumer group 'workers'")
    assert queue_lost(nogroup) and not read_unblocked(nogroup)


async def test_a_read_unblocked_by_a_moving_stream_is_read_again_at_once_without_a_heal(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader's stream leaves its node under a blocked read: the runner reads again at once (no pause, though
    its retry delay is long), makes no group, requeues nothing and says nothing of a lost queue."""
    queue = MovedUnderTheFirstRead(redis, SPACE)
    executor = FinishingExecutor(redis)
    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0, retry_delay=30.0)
    runner = TaskRunner(queue, executor, settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    made_at_start = queue.made
    await queue.submit(ask("Ev1"))
    stopping = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="bot.tasks.runner"):
        running = asyncio.create_task(runner.run(stopping))
        try:
            await wait_until(lambda: executor.executed, timeout=5)
        finally:
            stopping.set()
            await asyncio.wait_for(running, 10)
    assert executor.executed == ["Ev1"] and queue.unblocked == 1
    assert queue.made == made_at_start
    assert HEALED not in caplog.text and "ended by Redis" in caplog.text


async def test_a_read_unblocked_by_a_deleted_stream_heals_the_queue(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Every stream deleted under the reader's blocked read: reading again meets NOGROUP, so the runner makes the
    queue again, once, and a mention submitted after the loss is worked."""
    queue = TaskQueue(redis, SPACE)
    executor = FinishingExecutor(redis)
    settings = RunnerSettings(consumer="web.1", block_ms=5000, grace_seconds=0, retry_delay=30.0)
    runner = TaskRunner(queue, executor, settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    stopping = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="bot.tasks.runner"):
        running = asyncio.create_task(runner.run(stopping))
        try:
            await wait_until(blocked_reads(redis), timeout=5)
            assert await redis.delete(*SPACE.queues()) == SPACE.shards
            await wait_until(lambda: HEALED in caplog.text, timeout=5)
            await queue.submit(ask("Ev1"))
            await wait_until(lambda: executor.executed, timeout=5)
        finally:
            stopping.set()
            await asyncio.wait_for(running, 10)
    assert executor.executed == ["Ev1"] and caplog.text.count(HEALED) == 1
    assert "ended by Redis" in caplog.text  # the blocked read was UNBLOCKED first, then read again
    for queue_key in SPACE.queues():
        assert await redis.xinfo_groups(queue_key)


def blocked_reads(redis: Redis) -> Callable[[], Awaitable[bool]]:
    """A predicate: whether some client is blocked in a read (the runner's reader, waiting for new work)."""

    async def any_blocked() -> bool:
        return int((await redis.info("clients"))["blocked_clients"]) > 0

    return any_blocked
