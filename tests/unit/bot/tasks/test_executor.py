"""The executor as a table from task kind to handler, against a real Redis: dispatch, attempts, giving up."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from bot.tasks.executor import ExecutorSettings, TaskExecutor, TaskHandler
from handlers.gateway import WebApiGateway
from store.journal import TaskJournal
from store.models import Task, TaskKind, ThreadRef
from store.tasks import TaskQueue, ThreadLease
from store.threads import ThreadStore
from tests.fakes import FakeSlack
from tests.unit.store.conftest import SPACE, lease_on, make_groups

THREAD = ThreadRef("T1", "C1", "1700000000.000100")


class Recorder:
    """A handler that notes each call: the task's id and the attempt it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, lease: ThreadLease, task: Task, *, attempt: int) -> None:
        """Note the call; finish nothing, like a task interrupted by a crash."""
        self.calls.append((task.task_id, attempt))


def executor(redis: Redis, gateway: WebApiGateway, handlers: dict[TaskKind, TaskHandler]) -> TaskExecutor:
    """An executor over `handlers` that gives up after two attempts."""
    return TaskExecutor(
        journal=TaskJournal(redis, SPACE), slack=gateway, handlers=handlers, settings=ExecutorSettings(max_attempts=2)
    )


async def leased_task(
    redis: Redis, kind: TaskKind, thread: ThreadRef = THREAD, task_id: str = "Ev1"
) -> tuple[ThreadLease, Task]:
    """A task of `kind`, recorded and claimed by a worker."""
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    await queue.submit(Task(task_id, kind, thread, "hi", "U1", "1700000001.000100", time.time()))
    return await lease_on(queue, thread), await as_read(redis, thread)


async def as_read(redis: Redis, thread: ThreadRef) -> Task:
    """The thread's head task as the runner reads it before each run (with its attempts so far)."""
    task = await TaskQueue(redis, SPACE).head(thread)
    assert task is not None
    return task


async def test_an_executor_without_a_handler_for_every_kind_is_refused(redis: Redis, gateway: WebApiGateway) -> None:
    """A table missing a task kind fails when the process is built, naming the kind, not when such a task comes."""
    handlers: dict[TaskKind, TaskHandler] = {kind: Recorder() for kind in TaskKind if kind is not TaskKind.RESET}
    with pytest.raises(ValueError, match="reset"):
        executor(redis, gateway, handlers)


async def test_a_task_goes_to_the_handler_of_its_kind_with_its_attempt(redis: Redis, gateway: WebApiGateway) -> None:
    """Each run of a task calls its kind's handler alone, with the attempt counted in Redis (1, then 2)."""
    recorders = {kind: Recorder() for kind in TaskKind}
    run = executor(redis, gateway, dict(recorders))
    greet = await leased_task(redis, TaskKind.GREET, task_id="Ev1")
    status = await leased_task(redis, TaskKind.STATUS, ThreadRef("T1", "C1", "1700000099.000100"), task_id="Ev2")
    for lease, _ in (greet, status, greet):  # the greeting runs again, as after a crash
        await run.execute(lease, await as_read(redis, lease.thread))
    assert {kind: recorder.calls for kind, recorder in recorders.items() if recorder.calls} == {
        TaskKind.GREET: [("Ev1", 1), ("Ev1", 2)],
        TaskKind.STATUS: [("Ev2", 1)],
    }


async def test_a_task_past_its_attempts_is_failed_instead_of_run(
    redis: Redis, gateway: WebApiGateway, slack: FakeSlack
) -> None:
    """The run after the last allowed attempt calls no handler, fails the task and says so in its thread."""
    parent = slack.add_message("C1", "a question for the bot")
    thread = ThreadRef(slack.team_id, "C1", parent)
    recorders = {kind: Recorder() for kind in TaskKind}
    run = executor(redis, gateway, dict(recorders))
    lease, _ = await leased_task(redis, TaskKind.ANSWER, thread)
    for _ in range(3):
        await run.execute(lease, await as_read(redis, thread))
    assert recorders[TaskKind.ANSWER].calls == [("Ev1", 1), ("Ev1", 2)]
    [failure] = slack.bot_replies("C1", parent)
    assert failure["text"] == (
        ":warning: Sorry, I could not finish this request. It failed 2 times. Mention me again to retry."
    )
    assert await redis.hget(SPACE.task(thread, "Ev1"), "status") == "failed"
    assert run.released(lease)  # the thread's only task: it is given back
    # The agent of a first mention appears when its task finishes, failed or not, so /agent status counts it failing.
    state = await ThreadStore(redis, SPACE).state(thread)
    assert state is not None and state.tasks_failed == 1 and state.last_error == "it failed 2 times"
