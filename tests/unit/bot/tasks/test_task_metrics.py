"""What the task layer counts: each task's outcome once, and threads taken over from a dead worker."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from bot.tasks.metered_journal import MeteredJournal
from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store.models import Task, TaskKind, TaskStatus, ThreadRef
from store.tasks import TaskQueue, ThreadLease
from tests.unit.metric_values import sample
from tests.unit.store.conftest import claim_all, make_groups

THREAD = ThreadRef("T1", "C1", "1700000000.000100")


def ask(task_id: str, kind: TaskKind = TaskKind.ANSWER) -> Task:
    return Task(task_id, kind, THREAD, "hi", "U1", "1700000000.000100", time.time())


async def test_a_finished_task_is_counted_once_by_kind_and_outcome(redis: Redis) -> None:
    """Finishing a task counts its kind and outcome; a second finish of the same task (a rerun) counts nothing."""
    queue = TaskQueue(redis)
    await make_groups(queue)
    journal = MeteredJournal(redis, queue.space)
    await queue.submit(ask("Ev1", TaskKind.STATUS))
    await queue.submit(ask("Ev2"))  # waits behind it: the thread stays held after the first finish
    [lease] = await claim_all(queue)
    task = await queue.head(THREAD)
    assert task is not None
    before = sample("slack_agent_tasks_total", kind="status", outcome="failed")
    await journal.start(lease, task)
    assert await journal.finish(lease, task, TaskStatus.FAILED, error="boom")
    assert sample("slack_agent_tasks_total", kind="status", outcome="failed") - before == 1
    assert not await journal.finish(lease, task, TaskStatus.FAILED, error="boom")
    assert sample("slack_agent_tasks_total", kind="status", outcome="failed") - before == 1


async def test_a_dead_workers_thread_taken_over_is_counted(redis: Redis) -> None:
    """The lease keeper's takeover of a thread whose worker stopped renewing its lease counts one takeover."""
    queue = TaskQueue(redis)
    await make_groups(queue)
    await queue.submit(ask("Ev1"))
    assert await claim_all(queue, "dead.1")  # then that worker died
    before = sample("slack_agent_lease_takeovers_total")
    stopping = asyncio.Event()

    class Executor:
        async def execute(self, lease: ThreadLease, task: Task) -> None:
            assert lease.taken_over
            stopping.set()
            await asyncio.sleep(10)  # left unfinished: the runner stops with no grace

    settings = RunnerSettings(consumer="web.1", block_ms=20, grace_seconds=0, lease_seconds=0.3, retry_delay=0.05)
    runner = TaskRunner(queue, Executor(), settings, IntakeFirst())  # type: ignore[arg-type]  # a stand-in executor
    await runner.prepare()
    await asyncio.wait_for(runner.run(stopping), 10.0)
    assert sample("slack_agent_lease_takeovers_total") - before == 1
