"""TaskQueue against a real Redis: intake, claiming, leases and release."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from store import keys
from store.errors import CorruptRecord, LeaseLost
from store.journal import TaskJournal
from store.models import TaskKind, TaskStatus, ThreadRef
from store.tasks import SubmitResult, TaskQueue
from tests.unit.store.conftest import OTHER, THREAD, lease_on, make_task


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


async def test_one_queue_entry_per_thread_and_inbox_in_arrival_order(queue: TaskQueue, journal: TaskJournal) -> None:
    """Several tasks of one thread share one queue entry and come out oldest first."""
    for task_id in ("Ev1", "Ev2", "Ev3"):
        await queue.submit(make_task(task_id))
    await queue.submit(make_task("Ev9", thread=OTHER))
    leases = await queue.claim_new("web.1", count=10, block_ms=10)
    assert sorted(lease.thread.thread_ts for lease in leases) == [THREAD.thread_ts, OTHER.thread_ts]
    [lease] = [lease for lease in leases if lease.thread == THREAD]
    seen = []
    while (task := await queue.head(THREAD)) is not None:
        seen.append(task.task_id)
        await journal.finish(lease, task, TaskStatus.DONE)
    assert seen == ["Ev1", "Ev2", "Ev3"]


async def test_release_keeps_the_entry_while_work_remains(queue: TaskQueue, journal: TaskJournal, redis: Redis) -> None:
    """A thread is given back only once its inbox is empty; a task submitted later gets a new entry."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    await queue.submit(make_task("Ev2"))
    task = await queue.head(THREAD)
    assert task is not None
    await journal.finish(lease, task, TaskStatus.DONE)
    assert await queue.release(lease) is False
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    await journal.finish(lease, task, TaskStatus.DONE)
    assert await queue.release(lease) is True
    assert await redis.xlen(keys.QUEUE) == 0
    await queue.submit(make_task("Ev3"))
    assert [lease.thread for lease in await queue.claim_new("web.1", count=10, block_ms=10)] == [THREAD]


async def test_own_pending_entries_come_back_to_the_same_consumer(queue: TaskQueue) -> None:
    """A restarted process with the same consumer name gets the threads it held, and nobody else does."""
    await queue.submit(make_task("Ev1"))
    lease = await lease_on(queue)
    assert await queue.claim_own_pending("web.2") == []
    assert await queue.claim_own_pending("web.1") == [lease]


async def test_stale_entries_move_to_a_live_consumer_and_the_old_owner_is_fenced(
    queue: TaskQueue, journal: TaskJournal
) -> None:
    """After the lease another consumer takes the thread; the old owner's heartbeat and writes are refused."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue)
    assert await queue.claim_stale("web.2", min_idle_ms=60_000) == []
    assert await queue.heartbeat("web.1", [old.entry_id]) == []
    [new] = await queue.claim_stale("web.2", min_idle_ms=0)
    assert new.consumer == "web.2" and new.thread == THREAD
    assert await queue.heartbeat("web.1", [old.entry_id]) == [old.entry_id]
    task = await queue.head(THREAD)
    assert task is not None
    with pytest.raises(LeaseLost):
        await journal.start(old, task)
    with pytest.raises(LeaseLost):
        await journal.finish(old, task, TaskStatus.DONE)
    with pytest.raises(LeaseLost):
        await queue.release(old)
    assert await journal.start(new, task) == 1


async def test_head_skips_a_corrupt_task_and_marks_it_failed(queue: TaskQueue, redis: Redis) -> None:
    """A task hash that does not parse is failed and skipped instead of blocking its thread."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    await redis.hset(keys.task("T1", "Ev1"), "kind", "nonsense")
    task = await queue.head(THREAD)
    assert task is not None and task.task_id == "Ev2"
    assert await redis.hget(keys.task("T1", "Ev1"), "status") == "failed"


def test_thread_ref_rejects_values_that_would_break_keys() -> None:
    """Ids with the key separator are refused at the edge, and a bad encoded ref is a CorruptRecord."""
    with pytest.raises(ValueError, match="channel_id"):
        ThreadRef("T1", "C1:x", "1.0")
    with pytest.raises(CorruptRecord):
        ThreadRef.decode("T1:C1")


async def test_a_heartbeat_reports_entries_revoked_by_a_reset(queue: TaskQueue) -> None:
    """The worker of a thread that was reset learns it at its next heartbeat, and stops that work."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    leases = {lease.thread: lease for lease in await queue.claim_new("web.1", 10, None)}
    lease, other = leases[THREAD], leases[OTHER]
    assert await queue.heartbeat("web.1", [lease.entry_id, other.entry_id]) == []
    await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert await queue.heartbeat("web.1", [lease.entry_id, other.entry_id]) == [lease.entry_id]


async def test_reset_cancels_the_threads_work_and_queues_the_reset_first(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Queued and running tasks are cancelled, the agent's keys go, and the old lease can write nothing more."""
    await queue.submit(make_task("Ev1"))
    await queue.submit(make_task("Ev2"))
    await queue.submit(make_task("EvOther", thread=OTHER))
    old = await lease_on(queue)
    running = await queue.head(THREAD)
    assert running is not None
    await journal.start(old, running)
    await journal.set_reply_ts(old, running, "1700000002.000100")
    await journal.set_reply_ts(old, running, "1700000003.000100", part=1)  # a long answer's second message
    await journal.record_step(old, running, {"kind": "model", "content": []})

    result = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert result.outcome is SubmitResult.ACCEPTED
    assert result.cancelled_replies == ["1700000002.000100", "1700000003.000100"]
    for task_id in ("Ev1", "Ev2"):
        assert await redis.hget(keys.task("T1", task_id), "status") == TaskStatus.CANCELLED.value
    assert not await redis.exists(keys.state(THREAD), keys.turns(THREAD), keys.steps("T1", "Ev1"))
    assert await redis.lrange(keys.inbox(THREAD), 0, -1) == ["Reset1"]
    with pytest.raises(LeaseLost):
        await journal.record_step(old, running, {"kind": "model", "content": []})
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    # The reset runs under a fresh entry any worker can take; the other thread keeps its work.
    fresh = await lease_on(queue, consumer="web.2")
    assert fresh.entry_id != old.entry_id
    assert await redis.lrange(keys.inbox(OTHER), 0, -1) == ["EvOther"]
    cleanup = await journal.reset_cleanup(make_task("Reset1", TaskKind.RESET))
    assert cleanup is not None and cleanup.reply_ts == ["1700000002.000100", "1700000003.000100"]
    assert cleanup.unrecorded_task_ids == []

    again = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert again.outcome is SubmitResult.DUPLICATE and await redis.llen(keys.inbox(THREAD)) == 1


async def test_reset_finds_the_entry_of_a_flag_written_before_flags_held_ids(
    queue: TaskQueue, journal: TaskJournal, redis: Redis
) -> None:
    """Flags set by an older release hold "1", not the entry id: the reset still revokes the entry."""
    await queue.submit(make_task("Ev1"))
    old = await lease_on(queue)
    await redis.set(keys.queued(THREAD), "1")
    await queue.reset(make_task("Reset1", TaskKind.RESET))
    with pytest.raises(LeaseLost):
        await journal.check_lease(old)
    assert await redis.xlen(keys.QUEUE) == 1  # only the reset's own entry


async def test_reset_of_a_thread_without_work_leaves_no_key_without_a_ttl_but_the_queue_pair(
    queue: TaskQueue, redis: Redis
) -> None:
    result = await queue.reset(make_task("Reset1", TaskKind.RESET))
    assert result.outcome is SubmitResult.ACCEPTED and result.cancelled_replies == []
    for key in await redis.keys("*"):
        if key not in (keys.QUEUE, keys.queued(THREAD)):
            assert await redis.ttl(key) > 0, key


async def test_workers_are_alive_while_they_say_so(queue: TaskQueue, redis: Redis) -> None:
    await queue.mark_alive("web.1")
    await queue.mark_alive("worker.1")
    await redis.zadd(keys.WORKERS, {"worker.2": time.time() - 30})  # silent for 30 s: presumed dead
    assert await queue.live_workers() == ["web.1", "worker.1"]
    assert 0 < await redis.ttl(keys.WORKERS) <= keys.WORKERS_TTL
    await queue.mark_stopped("web.1")
    assert await queue.live_workers() == ["worker.1"]
