"""The runner and uninstalled workspaces: their tasks are refused at start, their data swept after the grace."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from bot.tasks.priority import IntakeFirst
from bot.tasks.runner import RunnerSettings, TaskRunner
from store import keys
from store.journal import TaskJournal
from store.leaving import Departures
from store.models import ThreadRef
from store.tasks import TaskQueue
from tests.fakes import wait_until
from tests.unit.bot.tasks.test_runner import SPACE, JournalingExecutor, ask, run_until

LEFT = ThreadRef("T1", "C1", "1700000000.000100")
STAYED = ThreadRef("T2", "C1", "1700000000.000100")
GRACE = 7 * keys.DAY


def runner_with(queue: TaskQueue, executor: JournalingExecutor, departures: Departures) -> TaskRunner:
    """A runner that claims quickly, checks the departures, and whose lease keeper looks every 0.1 s."""
    settings = RunnerSettings(consumer="web.1", block_ms=20, retry_delay=0.05, grace_seconds=0, lease_seconds=0.3)
    return TaskRunner(queue, executor, settings, IntakeFirst(), departures=departures)  # type: ignore[arg-type]


async def test_a_task_of_a_workspace_that_left_is_refused_at_start(redis: Redis) -> None:
    """A task queued for a team marked as left is never run and ends cancelled; another team's task runs."""
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    departures = Departures(redis, SPACE, grace_seconds=GRACE)
    executor = JournalingExecutor(journal, set(), asyncio.Event())
    runner = runner_with(queue, executor, departures)
    await runner.prepare()
    await departures.mark_left("T1")
    await queue.submit(ask("Ev1", LEFT))
    await queue.submit(ask("Ev2", STAYED))

    async def both_handled() -> bool:  # the two threads run side by side: either may be handled first
        return bool(executor.finished) and await redis.hget(SPACE.task(LEFT, "Ev1"), "status") == "cancelled"

    await run_until(runner, both_handled)

    assert executor.started == ["Ev2"]
    assert await redis.hget(SPACE.task(LEFT, "Ev1"), "status") == "cancelled"
    assert await queue.head(LEFT) is None
    assert await queue.threads_with_work("T1") == 0


async def test_the_lease_keeper_sweeps_the_workspaces_whose_grace_is_over(redis: Redis) -> None:
    """Soon after a worker starts, the data of a team that left over the grace period ago is deleted."""
    queue, journal = TaskQueue(redis, SPACE), TaskJournal(redis, SPACE)
    departures = Departures(redis, SPACE, grace_seconds=GRACE)
    executor = JournalingExecutor(journal, set(), asyncio.Event())
    runner = runner_with(queue, executor, departures)
    await runner.prepare()
    await queue.submit(ask("Ev1", LEFT))
    await departures.mark_left("T1", at=time.time() - GRACE - 1)
    await departures.cancel_team_work("T1")

    async def swept() -> bool:
        return not await redis.keys("agent:T1:*")

    stopping = asyncio.Event()
    running = asyncio.create_task(runner.run(stopping))
    try:
        await wait_until(swept, timeout=10)
    finally:
        stopping.set()
        await asyncio.wait_for(running, 10)
    assert await redis.zscore(keys.LEAVING, "T1") is None
