"""TaskQueue against a real Redis."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import CorruptRecord
from store.models import Task, TaskKind, TaskStatus, ThreadRef, Turn, Usage
from store.tasks import SubmitResult, TaskQueue
from store.threads import ThreadStore

THREAD = ThreadRef("T1", "C1", "1700000000.000100")
OTHER = ThreadRef("T1", "C1", "1700000099.000100")


def make_task(task_id: str, kind: TaskKind = TaskKind.ANSWER, thread: ThreadRef = THREAD, text: str = "hi") -> Task:
    return Task(task_id, kind, thread, text, "U1", "1700000001.000100", time.time())


@pytest.fixture
async def queue(redis: Redis) -> TaskQueue:
    queue = TaskQueue(redis)
    await queue.ensure_group()
    return queue


async def test_submit_records_task_once_per_event_id(queue: TaskQueue, redis: Redis) -> None:
    """The same Slack event submitted twice gives one task and one inbox entry."""
    assert await queue.submit(make_task("Ev1")) is SubmitResult.ACCEPTED
    assert await queue.submit(make_task("Ev1")) is SubmitResult.DUPLICATE
    assert await redis.lrange(keys.inbox(THREAD), 0, -1) == ["Ev1"]
    assert await redis.xlen(keys.QUEUE) == 1


async def test_every_key_written_by_submit_has_a_ttl_except_the_queue_pair(queue: TaskQueue, redis: Redis) -> None:
    """Task, inbox and state expire; only the queue stream and its per-thread flag live without a TTL."""
    await queue.submit(make_task("Ev1"))
    for key in await redis.keys("*"):
        ttl = await redis.ttl(key)
        if key in (keys.QUEUE, keys.queued(THREAD)):
            assert ttl == -1
        else:
            assert ttl > 0, key


async def test_note_is_dropped_for_a_thread_without_an_agent(queue: TaskQueue, redis: Redis) -> None:
    """A plain thread message is only remembered where an agent exists."""
    assert await queue.submit(make_task("Ev1", TaskKind.NOTE)) is SubmitResult.NO_AGENT
    assert await redis.exists(keys.task("T1", "Ev1")) == 0
    assert await queue.submit(make_task("Ev2", TaskKind.ANSWER)) is SubmitResult.ACCEPTED
    assert await queue.submit(make_task("Ev3", TaskKind.NOTE)) is SubmitResult.ACCEPTED


async def test_one_queue_entry_per_thread_and_inbox_in_arrival_order(queue: TaskQueue) -> None:
    """Several tasks of one thread share one queue entry and come out oldest first."""
    for task_id in ("Ev1", "Ev2", "Ev3"):
        await queue.submit(make_task(task_id))
    await queue.submit(make_task("Ev9", thread=OTHER))
    entries = await queue.claim_new("web.1", count=10, block_ms=10)
    assert sorted(entry.thread.thread_ts for entry in entries) == [THREAD.thread_ts, OTHER.thread_ts]
    seen = []
    while (task := await queue.head(THREAD)) is not None:
        seen.append(task.task_id)
        await queue.finish(task, TaskStatus.DONE)
    assert seen == ["Ev1", "Ev2", "Ev3"]


async def test_release_keeps_the_entry_while_work_remains(queue: TaskQueue, redis: Redis) -> None:
    """A thread is given back only once its inbox is empty; a task submitted later gets a new entry."""
    await queue.submit(make_task("Ev1"))
    [entry] = await queue.claim_new("web.1", count=10, block_ms=10)
    await queue.submit(make_task("Ev2"))
    task = await queue.head(THREAD)
    assert task is not None
    await queue.finish(task, TaskStatus.DONE)
    assert await queue.release(entry) is False
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    await queue.finish(task, TaskStatus.DONE)
    assert await queue.release(entry) is True
    assert await redis.xlen(keys.QUEUE) == 0
    await queue.submit(make_task("Ev3"))
    assert [e.thread for e in await queue.claim_new("web.1", count=10, block_ms=10)] == [THREAD]


async def test_finish_writes_turns_and_usage_once(queue: TaskQueue, redis: Redis) -> None:
    """Finishing a task twice (a resumed task) writes its turns and counts its usage only once."""
    await queue.submit(make_task("Ev1"))
    task = await queue.head(THREAD)
    assert task is not None
    turns = [Turn("user", "q", user_id="U1"), Turn("assistant", "a")]
    assert await queue.finish(task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is True
    assert await queue.finish(task, TaskStatus.DONE, turns=turns, usage=Usage(10, 5, 1)) is False
    store = ThreadStore(redis)
    assert await store.turns(THREAD) == turns
    state = await store.state(THREAD)
    assert state is not None
    assert (state.turns, state.tasks_done, state.input_tokens, state.output_tokens) == (2, 1, 10, 5)


async def test_own_pending_entries_come_back_to_the_same_consumer(queue: TaskQueue) -> None:
    """A restarted process with the same consumer name gets the threads it held, and nobody else does."""
    await queue.submit(make_task("Ev1"))
    [entry] = await queue.claim_new("web.1", count=10, block_ms=10)
    assert await queue.claim_own_pending("web.2") == []
    assert await queue.claim_own_pending("web.1") == [entry]


async def test_stale_entries_move_to_a_live_consumer_and_the_old_owner_learns_it(queue: TaskQueue) -> None:
    """After the lease, another consumer takes the thread and the old owner's heartbeat reports it lost."""
    await queue.submit(make_task("Ev1"))
    [entry] = await queue.claim_new("web.1", count=10, block_ms=10)
    assert await queue.claim_stale("web.2", min_idle_ms=60_000) == []
    assert await queue.heartbeat("web.1", [entry.entry_id]) == []
    assert await queue.claim_stale("web.2", min_idle_ms=0) == [entry]
    assert await queue.heartbeat("web.1", [entry.entry_id]) == [entry.entry_id]


async def test_head_skips_a_corrupt_task_and_marks_it_failed(queue: TaskQueue, redis: Redis) -> None:
    """A task hash that does not parse is failed and skipped instead of blocking its thread."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    await redis.hset(keys.task("T1", "Ev1"), "kind", "nonsense")
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    assert await redis.hget(keys.task("T1", "Ev1"), "status") == "failed"


async def test_reset_clears_the_agent(queue: TaskQueue, redis: Redis) -> None:
    """Finishing a reset task deletes the thread's state and turns."""
    await queue.submit(make_task("Ev1"))
    task = await queue.head(THREAD)
    assert task is not None
    await queue.finish(task, TaskStatus.DONE, turns=[Turn("user", "q")])
    await queue.submit(make_task("Ev2", TaskKind.RESET))
    reset = await queue.head(THREAD)
    assert reset is not None
    await queue.finish(reset, TaskStatus.DONE, clear_agent=True)
    assert await ThreadStore(redis).state(THREAD) is None
    assert await redis.exists(keys.turns(THREAD)) == 0


def test_thread_ref_rejects_values_that_would_break_keys() -> None:
    """Ids with the key separator are refused at the edge, and a bad encoded ref is a CorruptRecord."""
    with pytest.raises(ValueError, match="channel_id"):
        ThreadRef("T1", "C1:x", "1.0")
    with pytest.raises(CorruptRecord):
        ThreadRef.decode("T1:C1")


async def test_no_key_is_left_without_a_ttl_after_reset_then_more_work(queue: TaskQueue, redis: Redis) -> None:
    """A reset followed by a note and an answer leaves every per-team key with a TTL."""
    await queue.submit(make_task("Ev1"))
    first = await queue.head(THREAD)
    assert first is not None
    await queue.mark_running(first)
    await queue.finish(first, TaskStatus.DONE, turns=[Turn("user", "q")])
    for task in (make_task("Ev2", TaskKind.RESET), make_task("Ev3", TaskKind.NOTE), make_task("Ev4")):
        await queue.submit(task)
    while (task := await queue.head(THREAD)) is not None:
        await queue.mark_running(task)
        await queue.finish(task, TaskStatus.DONE, turns=[Turn("user", task.text)], clear_agent=task.task_id == "Ev2")
    for key in await redis.keys("*"):
        if key not in (keys.QUEUE, keys.queued(THREAD)):
            assert await redis.ttl(key) > 0, key
    state = await ThreadStore(redis).state(THREAD)
    assert state is not None and state.turns == 2


async def test_channel_index_lists_agents_newest_first(queue: TaskQueue, redis: Redis) -> None:
    """Finished tasks put their thread in the channel's index; a reset takes it out."""
    for task_id, thread in (("Ev1", THREAD), ("Ev2", OTHER)):
        await queue.submit(make_task(task_id, thread=thread))
        task = await queue.head(thread)
        assert task is not None
        await queue.finish(task, TaskStatus.DONE, turns=[Turn("user", "q")])
    store = ThreadStore(redis)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [OTHER, THREAD]
    await queue.submit(make_task("Ev3", TaskKind.RESET, thread=OTHER))
    reset = await queue.head(OTHER)
    assert reset is not None
    await queue.finish(reset, TaskStatus.DONE, clear_agent=True)
    assert [ref for ref, _ in await store.channel_agents("T1", "C1")] == [THREAD]
