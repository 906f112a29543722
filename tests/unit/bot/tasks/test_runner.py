"""The runner's lease keeper against a real Redis: it outlives its own failures."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.asyncio import Redis

from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue, ThreadLease


class FirstLookFails(TaskQueue):
    """A queue whose first look for stale threads raises an unexpected error (a bug, not a Redis error)."""

    looks = 0

    async def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 100) -> list[ThreadLease]:
        """Raise the first time, then behave."""
        self.looks += 1
        if self.looks == 1:
            raise RuntimeError("an unexpected bug")
        return await super().claim_stale(consumer, min_idle_ms, count)


async def test_the_lease_keeper_survives_an_unexpected_error(redis: Redis, caplog: pytest.LogCaptureFixture) -> None:
    """After an error it logs with its traceback, the keeper still takes over a dead worker's thread."""
    queue = FirstLookFails(redis)
    await queue.ensure_group()
    thread = ThreadRef("T1", "C1", "1700000000.000100")
    await queue.submit(Task("Ev1", TaskKind.ANSWER, thread, "hi", "U1", "1700000000.000100", time.time()))
    assert await queue.claim_new("dead.1", 10, None)  # then that worker died
    executed: list[str] = []
    stopping = asyncio.Event()

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            executed.append(task.task_id)
            stopping.set()
            await asyncio.sleep(10)  # left unfinished: the runner stops with no grace

    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0, lease_seconds=0.3, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    with caplog.at_level(logging.ERROR, logger="bot.tasks.runner"):
        await asyncio.wait_for(runner.run(stopping), 10.0)
    assert executed == ["Ev1"] and queue.looks >= 2
    [failure] = [record for record in caplog.records if "lease keeper failed" in record.getMessage()]
    assert failure.exc_info is not None
