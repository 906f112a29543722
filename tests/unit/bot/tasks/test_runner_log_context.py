"""The runner names the thread and the task it works on in every record logged meanwhile (LOG_FORMAT=json's ids)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from redis.asyncio import Redis

from bot.runtime.logs import ContextFilter
from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.journal import TaskJournal
from store.keys import KeySpace
from store.models import Task, TaskKind, TaskStatus, ThreadRef
from store.tasks import TaskQueue, ThreadLease
from tests.fakes import wait_until

SPACE = KeySpace(4)
A = ThreadRef("T1", "C1", "1700000000.000100")
B = ThreadRef("T2", "C2", "1700000099.000100")
log = logging.getLogger("bot.tasks.test_executor")


def ask(task_id: str, thread: ThreadRef) -> Task:
    """A mention as intake records it."""
    return Task(task_id, TaskKind.ANSWER, thread, "hi", "U1", "1700000001.000100", time.time())


class LoggingExecutor:
    """Runs each task as the real executor does (a fenced start and finish), logging once inside; the first attempt
    of `failing` raises, as a bug would."""

    def __init__(self, journal: TaskJournal, failing: str) -> None:
        self.journal, self.failing = journal, failing
        self.finished: list[str] = []

    async def execute(self, lease: ThreadLease, task: Task) -> None:
        """Log, let the other thread's worker run, maybe fail, then finish."""
        attempt = await self.journal.start(lease, task)
        log.info("working on %s", task.task_id)
        await asyncio.sleep(0.01)
        if task.task_id == self.failing and attempt == 1:
            raise RuntimeError("a bug")
        await self.journal.finish(lease, task, TaskStatus.DONE)
        self.finished.append(task.task_id)

    def released(self, lease: ThreadLease) -> bool:
        """Whether the task just executed gave the lease's thread back."""
        return self.journal.released(lease)


def ids(record: logging.LogRecord) -> tuple[str | None, ...]:
    """The ids ContextFilter attached to a record."""
    return tuple(getattr(record, name) for name in ("team_id", "channel_id", "thread_ts", "task_id"))


async def test_records_made_while_a_task_runs_carry_its_thread_and_task(
    redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Two threads worked at once, one with two tasks: each task's records, and the runner's own record of a task
    that failed, carry that task's thread and id, never the other thread's or the previous task's."""
    caplog.handler.addFilter(ContextFilter("web.1"))
    queue = TaskQueue(redis, SPACE)
    executor = LoggingExecutor(TaskJournal(redis, SPACE), failing="EvA1")
    settings = RunnerSettings(consumer="web.1", block_ms=20, retry_delay=0.05, grace_seconds=0)
    runner = TaskRunner(queue, executor, settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    for task_id, thread in (("EvA1", A), ("EvA2", A), ("EvB1", B)):
        await queue.submit(ask(task_id, thread))
    stopping = asyncio.Event()
    with caplog.at_level(logging.INFO):
        running = asyncio.create_task(runner.run(stopping))
        await wait_until(lambda: len(executor.finished) == 3, timeout=10)
        stopping.set()
        await asyncio.wait_for(running, 10)
    working = {record.getMessage(): ids(record) for record in caplog.records if record.name == log.name}
    assert working == {
        "working on EvA1": ("T1", "C1", A.thread_ts, "EvA1"),
        "working on EvA2": ("T1", "C1", A.thread_ts, "EvA2"),
        "working on EvB1": ("T2", "C2", B.thread_ts, "EvB1"),
    }
    [failed] = [record for record in caplog.records if "task step failed" in record.getMessage()]
    assert ids(failed) == ("T1", "C1", A.thread_ts, "EvA1") and failed.dyno == "web.1"  # type: ignore[attr-defined]
