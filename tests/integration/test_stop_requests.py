"""Stop requests in the store, on a real standalone Redis and on a three-master cluster."""

from __future__ import annotations

import asyncio
import time

import pytest

from store import keys
from store.connection import RedisClient
from store.errors import TaskStopped
from store.journal import TaskJournal
from store.models import Task, TaskKind, TaskStatus, Turn
from store.stops import StopNotice, StopRequests, StopResult
from store.tasks import TaskQueue, ThreadLease
from tests.unit.store.conftest import SPACE, THREAD, make_groups, make_task

pytestmark = [pytest.mark.integration, pytest.mark.both_redis]


async def lease_on(queue: TaskQueue, consumer: str) -> ThreadLease:
    """Claim THREAD's entry as `consumer` (its shard alone: a cluster cannot read streams of several slots at once)."""
    [lease] = await queue.claim_new(consumer, [SPACE.shard_of(THREAD)], count=10, block_ms=10)
    return lease


async def running(redis: RedisClient, *kinds: TaskKind, consumer: str = "worker.1") -> tuple[ThreadLease, Task]:
    """A thread whose first task (of the first kind; the others wait behind it) has been started by `consumer`."""
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    for number, kind in enumerate(kinds or (TaskKind.ANSWER,)):
        await queue.submit(make_task(f"Ev{number}", kind))
    lease = await lease_on(queue, consumer)
    task = await queue.head(THREAD)
    assert task is not None
    await TaskJournal(redis, SPACE).start(lease, task)
    return lease, task


async def test_a_thread_with_nothing_running_is_left_as_it_was(redis: RedisClient) -> None:
    """No inbox, or a queued answer not started yet: "nothing running", and no mark set."""
    stops = StopRequests(redis, SPACE)
    assert (await stops.request(THREAD, "U0BOB")).result is StopResult.NOTHING_RUNNING
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    await queue.submit(make_task("EvQueued"))
    assert (await stops.request(THREAD, "U0BOB")).result is StopResult.NOTHING_RUNNING
    assert await redis.hget(SPACE.task(THREAD, "EvQueued"), "stop_by") is None


async def test_only_answers_are_stopped(redis: RedisClient) -> None:
    """A running status request is no answer to stop: "nothing running", and no mark set."""
    stops = StopRequests(redis, SPACE)
    _, status = await running(redis, TaskKind.STATUS)
    assert (await stops.request(THREAD, "U0BOB")).result is StopResult.NOTHING_RUNNING
    assert await redis.hget(SPACE.task(THREAD, status.task_id), "stop_by") is None


async def test_a_running_answer_is_marked_and_its_worker_told(redis: RedisClient) -> None:
    """The running answer gets stop_by and stop_at; the worker holding its thread finds a notice on its own list."""
    _, task = await running(redis)
    stops = StopRequests(redis, SPACE)
    before = time.time()
    outcome = await stops.request(THREAD, "U0BOB")
    assert (outcome.result, outcome.task_id, outcome.worker, outcome.by) == (
        StopResult.STOPPING,
        task.task_id,
        "worker.1",
        "U0BOB",
    )
    fields = await redis.hgetall(SPACE.task(THREAD, task.task_id))
    assert fields["stop_by"] == "U0BOB"
    assert before <= float(fields["stop_at"]) <= time.time()
    assert 0 < await redis.ttl(keys.stop_notices("worker.1")) <= keys.STOP_NOTICE_TTL
    notice = await stops.next_notice("worker.1", timeout=1)
    assert notice == StopNotice(THREAD.encode(), task.task_id, "U0BOB")
    assert await stops.next_notice("worker.2", timeout=0.1) is None  # another worker's list is its own


async def test_the_worker_named_in_the_flag_after_a_takeover_is_told(redis: RedisClient) -> None:
    """A thread taken over from a stalled worker: the notice goes to the one that holds it now."""
    queue = TaskQueue(redis, SPACE)
    await make_groups(queue)
    await queue.submit(make_task("EvA"))
    await lease_on(queue, "worker.1")
    await asyncio.sleep(0.02)
    [taken] = await queue.claim_stale("worker.2", SPACE.shard_of(THREAD), min_idle_ms=10)
    task = await queue.head(THREAD)
    assert task is not None
    await TaskJournal(redis, SPACE).start(taken, task)
    outcome = await StopRequests(redis, SPACE).request(THREAD, "U0BOB")
    assert outcome.worker == "worker.2"
    assert await redis.llen(keys.stop_notices("worker.1")) == 0


async def test_a_second_request_changes_nothing_and_names_the_first_asker(redis: RedisClient) -> None:
    """Asked twice: the second finds it stopping already, by whom, and tells the worker again (in case the first
    notice was lost)."""
    _, task = await running(redis)
    stops = StopRequests(redis, SPACE)
    await stops.request(THREAD, "U0BOB")
    again = await stops.request(THREAD, "U0CAROL")
    assert (again.result, again.task_id, again.by) == (StopResult.ALREADY_STOPPING, task.task_id, "U0BOB")
    assert again.stopping
    notice = StopNotice(THREAD.encode(), task.task_id, "U0BOB")
    assert await redis.lrange(keys.stop_notices("worker.1"), 0, -1) == [notice.to_json()] * 2
    assert await redis.hget(SPACE.task(THREAD, task.task_id), "stop_by") == "U0BOB"


async def test_the_journal_refuses_a_stopped_answer_its_next_step_and_its_start(redis: RedisClient) -> None:
    """After a stop the answer's next model or tool step and a new start raise TaskStopped; a summary step is kept."""
    lease, task = await running(redis)
    journal = TaskJournal(redis, SPACE)
    await journal.steps(task, attempt=1)
    await journal.record_step(lease, task, {"kind": "model", "n": 0}, stoppable=True)
    await StopRequests(redis, SPACE).request(THREAD, "U0BOB")
    with pytest.raises(TaskStopped) as refused:
        await journal.record_step(lease, task, {"kind": "model", "n": 1}, stoppable=True)
    assert refused.value.by == "U0BOB"
    await journal.record_step(lease, task, {"kind": "summary", "n": 1})
    assert await redis.hget(SPACE.task(THREAD, task.task_id), "step:1") == '{"kind":"summary","n":1}'
    attempts = await redis.hget(SPACE.task(THREAD, task.task_id), "attempts")
    with pytest.raises(TaskStopped):
        await journal.start(lease, task)
    assert await redis.hget(SPACE.task(THREAD, task.task_id), "attempts") == attempts  # refused: nothing written


async def test_a_stopped_answer_is_counted_as_stopped_and_the_next_task_runs(redis: RedisClient) -> None:
    """FINISH with status stopped keeps the turns, counts tasks_stopped (not failed) and keeps the thread's lease
    while another task waits."""
    lease, task = await running(redis, TaskKind.ANSWER, TaskKind.ANSWER)
    journal = TaskJournal(redis, SPACE)
    await journal.steps(task, attempt=1)
    await journal.record_step(lease, task, {"kind": "model"}, stoppable=True)
    await StopRequests(redis, SPACE).request(THREAD, "U0BOB")
    turns = [Turn("user", "q"), Turn("assistant", "partial\n\n_Stopped by <@U0BOB>._")]
    assert await journal.finish(lease, task, TaskStatus.STOPPED, turns=turns)
    assert not journal.released(lease)  # the second answer waits: the thread is kept
    state = await redis.hgetall(SPACE.state(THREAD))
    assert (state["tasks_stopped"], state.get("tasks_failed", "0"), state.get("tasks_done", "0")) == ("1", "0", "0")
    assert state["turn:1"] == turns[1].to_json()
    fields = await redis.hgetall(SPACE.task(THREAD, task.task_id))
    assert fields["status"] == "stopped"
    assert not [name for name in fields if name.startswith("step:")]
    following = await TaskQueue(redis, SPACE).head(THREAD)
    assert following is not None and following.task_id == "Ev1" and following.stop_by is None
